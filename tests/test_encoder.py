"""SequenceEncoder and embedding initialisation: packing invariance, copy, missing, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError
from pipeline.seq.encoder import (
    EncoderConfig,
    SequenceEncoder,
    detach_hidden,
    init_embedding_matrix,
)


class FakeEmbeddings:
    """Duck-typed stand-in for pipeline.embeddings.vectors.Embeddings (words, vectors, dim, index)."""

    def __init__(self, words, vectors):
        self.words = list(words)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self._ix = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self):
        return self.vectors.shape[1]

    def __len__(self):
        return len(self.words)

    def index(self, word):
        return self._ix.get(word)


def _embeddings():
    try:  # the real artifact type when it exists
        from pipeline.embeddings.vectors import Embeddings

        return Embeddings
    except ImportError:
        return FakeEmbeddings


def test_init_copies_known_rows_counts_missing_and_zero_pad():
    Emb = _embeddings()
    emb = Emb(["good", "bad", "movie"], np.arange(9, dtype=np.float32).reshape(3, 3))
    tokens = ["<pad>", "<unk>", "<eos>", "good", "Bad", "plot", "twist"]
    matrix, missing = init_embedding_matrix(tokens, emb, dim=3, seed=0)
    assert matrix.shape == (7, 3)
    assert torch.equal(matrix[3], torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(matrix[4], torch.tensor([3.0, 4.0, 5.0]))  # case-insensitive fallback
    assert torch.count_nonzero(matrix[0]) == 0
    assert missing == 2  # plot, twist; specials are not words
    again, _ = init_embedding_matrix(tokens, emb, dim=3, seed=0)
    assert torch.equal(matrix, again)
    other, _ = init_embedding_matrix(tokens, emb, dim=3, seed=1)
    assert not torch.equal(matrix[5], other[5])


def test_init_dim_mismatch_names_key():
    emb = _embeddings()(["a"], np.ones((1, 5), dtype=np.float32))
    with pytest.raises(ConfigError, match="sentiment.embedding_dim"):
        init_embedding_matrix(["<pad>", "a"], emb, dim=4, seed=0, key="sentiment.embedding_dim")


def test_random_init_small_std():
    matrix, missing = init_embedding_matrix(["<pad>"] + [f"w{i}" for i in range(500)], None, 20, 3)
    assert missing == 0
    assert 0.05 < float(matrix[1:].std()) < 0.2


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_a_result(cell, bidirectional):
    torch.manual_seed(0)
    cfg = EncoderConfig(
        cell=cell,
        embedding_dim=6,
        hidden_size=5,
        num_layers=2,
        bidirectional=bidirectional,
        dropout=0.3,
    )
    enc = SequenceEncoder(cfg, vocab_size=20, extra_features_dim=2).eval()
    sent = torch.tensor([[4, 7, 9]])
    feats = torch.randn(1, 3, 2)
    alone = enc(sent, torch.tensor([3]), feats)  # (1, 3, H*dirs)
    assert alone.shape == (1, 3, 5 * (2 if bidirectional else 1))
    # the same sentence in a batch with a longer one, padded to length 8, in 2nd place
    ids = torch.zeros(2, 8, dtype=torch.long)
    ids[0] = torch.arange(1, 9)
    ids[1, :3] = sent[0]
    f = torch.randn(2, 8, 2)
    f[1, :3] = feats[0]
    batched = enc(ids, torch.tensor([8, 3]), f)
    torch.testing.assert_close(batched[1, :3], alone[0], rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(batched[1, 3:]) == 0


def test_rnn_cell_is_tanh_recurrence():
    torch.manual_seed(0)
    enc = SequenceEncoder(EncoderConfig(cell="rnn", embedding_dim=3, hidden_size=4), 10).eval()
    ids = torch.tensor([[1, 2, 3]])
    out = enc(ids)
    x = enc.embedding(ids)[0]
    r = enc.rnn
    a = torch.zeros(4)
    for t in range(3):
        a = torch.tanh(r.weight_hh_l0 @ a + r.weight_ih_l0 @ x[t] + r.bias_hh_l0 + r.bias_ih_l0)
        torch.testing.assert_close(out[0, t], a)


def test_hidden_state_carries_across_calls():
    torch.manual_seed(0)
    enc = SequenceEncoder(EncoderConfig(cell="lstm", embedding_dim=4, hidden_size=4), 10).eval()
    ids = torch.randint(1, 10, (2, 6))
    full = enc(ids)
    first, h = enc(ids[:, :3], return_hidden=True)
    second, _ = enc(ids[:, 3:], hidden=detach_hidden(h), return_hidden=True)
    torch.testing.assert_close(torch.cat([first, second], 1), full)


def test_frozen_embeddings_get_no_gradient():
    enc = SequenceEncoder(EncoderConfig(embedding_dim=4, hidden_size=4, freeze_embeddings=True), 10)
    assert not enc.embedding.weight.requires_grad
    with pytest.raises(ConfigError, match="embedding_dim"):
        SequenceEncoder(EncoderConfig(embedding_dim=4), 10, embedding_matrix=torch.zeros(10, 3))


def test_partly_frozen_embedding_trains_only_listed_rows():
    from pipeline.seq.encoder import PartlyFrozenEmbedding

    torch.manual_seed(0)
    matrix = torch.randn(6, 3)
    matrix[0] = 0.0
    emb = PartlyFrozenEmbedding(matrix, [2, 4, 0])  # the padding row is never tuned
    assert [n for n, p in emb.named_parameters()] == ["delta.weight"]
    assert emb.delta.weight.shape == (3, 3)  # entry 0 (untuned) + two tuned rows
    ids = torch.tensor([[1, 2], [0, 5]])
    torch.testing.assert_close(emb(ids), matrix[ids])
    opt = torch.optim.Adam(emb.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        emb(torch.arange(6)).pow(2).sum().backward()
        opt.step()
    moved = (emb.weight - matrix).abs().sum(1) > 1e-6
    assert moved.tolist() == [False, False, True, False, True, False]
    with pytest.raises(ConfigError, match="tuned_rows"):
        PartlyFrozenEmbedding(matrix, [6])


def test_encoder_with_listed_rows_and_vocabulary_extension():
    from pipeline.data.vocab import Vocabulary
    from pipeline.seq.encoder import PartlyFrozenEmbedding, add_pretrained_words, training_rows

    vocab = Vocabulary.from_counts({"bank": 3, "river": 1})
    wide = add_pretrained_words(vocab, ["the", "Bank", "river", "<unk>", "shore"], str.islower)
    assert wide.tokens[len(vocab) :] == ["the", "shore"]  # specials, duplicates, rejects out
    assert training_rows(wide) == [1, 2, 3, 4]  # <unk>, <eos>, bank, river
    cfg = EncoderConfig(embedding_dim=4, hidden_size=4, tune_embeddings="listed")
    with pytest.raises(ConfigError, match="tune_embeddings"):
        SequenceEncoder(cfg, len(wide))
    enc = SequenceEncoder(cfg, len(wide), torch.ones(len(wide), 4), tuned_rows=training_rows(wide))
    assert isinstance(enc.embedding, PartlyFrozenEmbedding)
    n_emb = sum(p.numel() for n, p in enc.named_parameters() if n.startswith("embedding"))
    assert n_emb == (len(training_rows(wide)) + 1) * 4  # never the whole vocabulary
    frozen = SequenceEncoder(
        EncoderConfig(embedding_dim=4, hidden_size=4, tune_embeddings="listed",
                      freeze_embeddings=True), len(wide), torch.ones(len(wide), 4),
    )  # fmt: skip
    assert not any(p.requires_grad for p in frozen.embedding.parameters())

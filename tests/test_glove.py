"""GloVe trainer: weighting, planted structure, determinism, resume, divergence."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.core.errors import TrainingDivergedError
from pipeline.glove import train as glove
from pipeline.glove.cooccur import count_cooccurrences, load_cooccur
from pipeline.glove.train import GloveConfig, train_glove, weighting

TOPICS, PER_TOPIC = 3, 8
VOCAB = 3 + TOPICS * PER_TOPIC


def topic_of(word_id: int) -> int:
    return (word_id - 3) // PER_TOPIC


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Paragraphs each drawn from one topic's words: words of a topic share contexts."""
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(600):
        k = rng.integers(TOPICS)
        words = 3 + k * PER_TOPIC + rng.integers(PER_TOPIC, size=10)
        parts.append(np.append(words, 2))
    ids = np.concatenate(parts).astype(np.int32)
    path = tmp_path_factory.mktemp("planted") / "c.npz"
    count_cooccurrences(ids, VOCAB, path, window=5)
    return load_cooccur(path)[:3]


def cfg(tmp_path=None, **kw) -> GloveConfig:
    base = GloveConfig(dim=8, epochs=20, x_max=10.0, seed=3, device="cpu",
                       checkpoint_dir=str(tmp_path / "ckpt") if tmp_path else None)  # fmt: skip
    return replace(base, **kw)


def nearest_topic_accuracy(vectors: np.ndarray) -> float:
    v = vectors[3:] / np.linalg.norm(vectors[3:], axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1) + 3
    return float(np.mean([topic_of(w + 3) == topic_of(n) for w, n in enumerate(nearest)]))


def test_weighting_function():
    x = np.array([0.5, 10.0, 50.0, 100.0, 1000.0])
    f = weighting(x, x_max=100.0, alpha=0.75)
    np.testing.assert_allclose(f[:3], (x[:3] / 100.0) ** 0.75)
    assert f[3] == 1.0 and f[4] == 1.0  # capped at 1 from x_max on
    assert np.all(np.diff(f) >= 0)
    np.testing.assert_allclose(weighting(x, 10.0, 0.0), 1.0)  # alpha 0: unweighted


@pytest.mark.parametrize("threads", [1, 2])
def test_planted_topics_are_nearest_neighbours(planted, threads):
    rows, cols, values = planted
    res = train_glove(rows, cols, values, VOCAB, cfg(threads=threads), progress=False)
    assert res.vectors.shape == (VOCAB, 8) and res.vectors.dtype == np.float32
    assert (res.vectors[:3] == 0).all()  # specials never co-occur: zero rows
    assert nearest_topic_accuracy(res.vectors) == 1.0
    assert res.losses[-1] < 0.5 * res.losses[0]  # it learned something


def test_torch_backend_on_cpu(planted, monkeypatch):
    """The GPU code path (torch minibatches), run on the CPU."""
    monkeypatch.setitem(glove._BACKENDS, "cpu", glove._TorchEpoch)
    rows, cols, values = planted
    res = train_glove(rows, cols, values, VOCAB, cfg(batch_size=64, epochs=30), progress=False)
    assert nearest_topic_accuracy(res.vectors) == 1.0
    assert res.losses[-1] < 0.5 * res.losses[0]


@pytest.mark.gpu
def test_cuda_backend(planted):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rows, cols, values = planted
    c = cfg(device="auto", batch_size=64, epochs=30)
    res = train_glove(rows, cols, values, VOCAB, c, progress=False)
    assert res.device == "cuda"
    assert nearest_topic_accuracy(res.vectors) == 1.0


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_identical_other_seed_different(planted, threads):
    rows, cols, values = planted
    c = cfg(epochs=3, threads=threads)
    a = train_glove(rows, cols, values, VOCAB, c, progress=False)
    b = train_glove(rows, cols, values, VOCAB, c, progress=False)
    d = train_glove(rows, cols, values, VOCAB, replace(c, seed=4), progress=False)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.losses == b.losses
    assert not np.array_equal(a.vectors, d.vectors)


def test_output_modes(planted):
    rows, cols, values = planted
    base = train_glove(rows, cols, values, VOCAB, cfg(epochs=2), progress=False)
    w = train_glove(rows, cols, values, VOCAB, cfg(epochs=2, output="w"), progress=False)
    cat = train_glove(rows, cols, values, VOCAB, cfg(epochs=2, output="concat"), progress=False)
    np.testing.assert_allclose(base.vectors[3:], base.params["W"][3:] + base.params["C"][3:])
    np.testing.assert_array_equal(w.vectors[3:], w.params["W"][3:])
    assert cat.vectors.shape == (VOCAB, 16)


def test_resume_equals_uninterrupted(planted, tmp_path):
    rows, cols, values = planted
    straight = train_glove(rows, cols, values, VOCAB, cfg(epochs=4, threads=1), progress=False)

    # 2 epochs, then the same run asked for 4 resumes from the checkpoint
    c = cfg(tmp_path, epochs=2)
    train_glove(rows, cols, values, VOCAB, c, progress=False)
    seen = []
    res = train_glove(rows, cols, values, VOCAB, replace(c, epochs=4), progress=False,
                      on_epoch_end=lambda e, loss: seen.append((e, loss)))  # fmt: skip
    assert res.resumed_from == 2 and len(res.seconds_per_epoch) == 2
    np.testing.assert_array_equal(res.vectors, straight.vectors)
    assert res.losses == straight.losses and [e for e, _ in seen] == [1, 2, 3, 4]

    # killed during epoch 3 (after 2 checkpoints), restarted: same vectors
    class Killed(Exception):
        pass

    def kill_after_2(epoch, loss):
        if epoch == 2:
            raise Killed

    c = cfg(tmp_path / "b", epochs=4)
    with pytest.raises(Killed):
        train_glove(rows, cols, values, VOCAB, c, progress=False, on_epoch_end=kill_after_2)
    res = train_glove(rows, cols, values, VOCAB, c, progress=False)
    assert res.resumed_from == 2
    np.testing.assert_array_equal(res.vectors, straight.vectors)

    # another seed does not pick up the checkpoint
    other = train_glove(rows, cols, values, VOCAB, replace(c, seed=9), progress=False)
    assert other.resumed_from == 0


def test_absurd_learning_rate_diverges_with_clear_error(planted):
    rows, cols, values = planted
    with pytest.raises(TrainingDivergedError, match=r"epoch 1 .*glove\.lr = 1e\+30"):
        train_glove(rows, cols, values, VOCAB, cfg(lr=1e30), progress=False)


@pytest.mark.parametrize("lr", [100.0, 3.0])
def test_diverged_but_finite_run_stops_before_writing_a_checkpoint(planted, tmp_path, lr):
    rows, cols, values = planted
    with pytest.raises(TrainingDivergedError, match=r"glove: training diverged in epoch 1: .*"
                       rf"\(glove\.lr = {lr:g}\); lower glove\.lr"):  # fmt: skip
        train_glove(rows, cols, values, VOCAB, cfg(tmp_path, lr=lr, epochs=2), progress=False)
    assert not (tmp_path / "ckpt" / glove.CHECKPOINT_FILE).exists()


def test_sane_learning_rates_stay_below_the_divergence_bounds(planted):
    rows, cols, values = planted
    res = train_glove(rows, cols, values, VOCAB, cfg(lr=0.2), progress=False)
    logx = np.log(values.astype(np.float64))
    untrained = glove.untrained_loss(logx, weighting(values, 10.0, 0.75))
    assert res.losses[0] < untrained and res.losses[-1] < 0.2 * untrained
    assert np.abs(res.vectors).max() < 10

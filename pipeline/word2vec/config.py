"""Settings and results of the word2vec trainer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class SkipGramConfig:
    """Settings of the word2vec trainer (defaults: word2vec / gensim).

    ``architecture``: ``sg`` (skip-gram) or ``cbow``. ``output``: ``ns`` (negative
    sampling), ``hs`` (hierarchical softmax over a Huffman tree) or ``softmax`` (full
    softmax, O(V) per update: for small vocabularies). ``lr`` None = 0.025 (sg) / 0.05
    (cbow); it decays linearly to ``min_lr_ratio * lr``. ``workers`` 0 = one per core.
    ``backend`` auto = numba on CPU, torch on CUDA; ``torch_*`` tune the batched torch
    path (:mod:`pipeline.word2vec.torch_backend`): ``torch_batch_pairs`` examples per step,
    ``torch_dup_cap`` most summed updates of one row per step (0 = no cap),
    ``torch_negatives`` ``pair`` (k own negatives per example, as word2vec) or ``shared``
    (``torch_shared_negatives`` negatives per block of ``torch_shared_block`` examples,
    weighted k / N: one matmul per block; output ns only), ``torch_damping`` (both
    modes) ``cap`` or ``curvature`` (summed steps of a row shrunk to what as many
    sequential SGD steps would move it; see :func:`pipeline.word2vec.torch_backend.curvature_damping`),
    ``torch_scatter`` how curvature damping sums the updates of each row (``atomic``
    ``index_add_`` or ``sorted`` segment sums: :class:`pipeline.word2vec.torch_backend.RowSums`),
    ``torch_precision``
    ``fp32``/``tf32``/``bf16`` (matmuls; weights stay fp32), ``torch_compile``
    (``torch.compile`` the shared step), ``torch_softmax_logits`` most (B x V) logits per
    full-softmax step, ``torch_kernel`` ``torch`` (the ops above) or ``triton`` (fused
    Triton kernels, :mod:`pipeline.word2vec.triton_kernels`: CUDA, output ns or hs with
    cap damping). ``context``: ``symmetric`` (window words on both sides) or ``left``
    (only the words before the centre, as a left-to-right language model sees them;
    numba backend only). ``negative_draw`` (numba backend, skip-gram with ``ns``): ``pair``
    (each (context, centre) pair draws its own noise words, as word2vec) or ``centre``
    (one draw per centre word, shared by its context words, the output rows updated in a
    worker's own copy and written back once per centre word: far fewer writes to rows
    other workers are using, so more workers speed it up more).
    ``max_vocab``: train only the N most frequent ids (specials
    included; rarer words are dropped like ``<unk>``), e.g. to make the full softmax
    affordable; None = all. ``corpus`` names the processed corpus the stage reads (not used
    by the library).
    """

    corpus: str = "sotu"
    architecture: Literal["sg", "cbow"] = "sg"
    output: Literal["ns", "hs", "softmax"] = "ns"
    dim: int = field(default=100, metadata={"min": 1})
    window: int = field(default=5, metadata={"min": 1})
    context: Literal["symmetric", "left"] = "symmetric"
    max_vocab: int | None = field(default=None, metadata={"min": 4})
    negative: int = field(default=5, metadata={"min": 1})
    negative_draw: Literal["pair", "centre"] = "pair"
    ns_exponent: float = 0.75
    sample: float = field(default=1e-3, metadata={"min": 0.0})
    epochs: int = field(default=5, metadata={"min": 1})
    lr: float | None = field(default=None, metadata={"gt": 0.0})
    min_lr_ratio: float = field(default=1e-4, metadata={"min": 0.0, "max": 1.0})
    cbow_mean: bool = True
    max_sentence_length: int = field(default=10000, metadata={"min": 1})
    batch_words: int = field(default=10000, metadata={"min": 1})
    workers: int = field(default=0, metadata={"min": 0})
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "numba", "torch"] = "auto"
    torch_batch_pairs: int = field(default=16384, metadata={"min": 1})
    torch_chunk_words: int = field(default=1_000_000, metadata={"min": 1})
    torch_dup_cap: float = field(default=64.0, metadata={"min": 0.0})
    torch_negatives: Literal["pair", "shared"] = "pair"
    torch_shared_block: int = field(default=256, metadata={"min": 1})
    torch_shared_negatives: int = field(default=64, metadata={"min": 1})
    torch_damping: Literal["cap", "curvature"] = "cap"
    torch_scatter: Literal["atomic", "sorted"] = "atomic"
    torch_precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    torch_compile: bool = False
    torch_softmax_logits: int = field(default=1 << 24, metadata={"min": 1})
    torch_kernel: Literal["torch", "triton"] = "torch"

    @property
    def start_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.architecture == "cbow" else 0.025

    @property
    def min_lr(self) -> float:
        return self.start_lr * self.min_lr_ratio

    @property
    def name(self) -> str:
        """Short model name: sgns, sghs, sgsoftmax, cbowns, cbowhs, cbowsoftmax."""
        return f"{self.architecture}{self.output}"


def check_combination(cfg: SkipGramConfig, backend: str) -> None:
    """Refuse settings that no back end trains together, naming the key.

    ``backend`` is the resolved one (``numba`` / ``torch``), or ``cfg.backend`` when the
    device is not known yet (``auto`` then checks what does not depend on it).
    """
    if backend == "torch" and cfg.context != "symmetric":
        raise ConfigError("skipgram.context: 'left' is implemented by the numba backend only")
    if cfg.negative_draw == "centre" and (
        backend == "torch" or cfg.architecture != "sg" or cfg.output != "ns"
    ):
        raise ConfigError(
            "skipgram.negative_draw: 'centre' is for architecture sg with output ns on the "
            "numba backend (torch: see torch_negatives)"
        )


@dataclass
class TrainResult:
    """Trained weights and the numbers of one run.

    ``vectors`` float32 (V, D) input vectors (row i = vocab id i); ``loss_per_epoch`` the
    word2vec objective summed over each epoch's updates (float64, reset each epoch).
    """

    vectors: np.ndarray
    loss_per_epoch: list[float]
    seconds: float
    raw_words: int
    effective_words: int
    updates: int
    device: str
    backend: str
    workers: int
    vocab_size: int
    config: SkipGramConfig
    resumed_from_epoch: int = 0
    epoch_stats: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """Flat metrics for ``metrics/skipgram.json`` (this run's epochs only for speed)."""
        secs = max(self.seconds, 1e-9)
        return {
            "loss_per_epoch": list(self.loss_per_epoch),
            "final_loss": self.loss_per_epoch[-1] if self.loss_per_epoch else None,
            "seconds": self.seconds,
            "effective_words": self.effective_words,
            "raw_words": self.raw_words,
            "effective_words_per_sec": self.effective_words / secs,
            "raw_words_per_sec": self.raw_words / secs,
            "updates_per_sec": self.updates / secs,
            "vocab_size": self.vocab_size,
            "device": self.device,
            "backend": self.backend,
            "workers": self.workers,
            "resumed_from_epoch": self.resumed_from_epoch,
            "model": self.config.name,
            "settings": {
                **dataclasses.asdict(self.config),
                "lr": self.config.start_lr,
                "min_lr": self.config.min_lr,
            },
        }

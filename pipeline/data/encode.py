"""Streaming preparation of a corpus: count, build the vocabulary, encode to int32 ``.npy``.

Two engines give the same files byte for byte. ``fast`` (the default) tokenizes the
corpus once, with a compiled scanner for plain ASCII text, into a temporary file of
provisional ids (:mod:`pipeline.data.fast_encode`). ``reference``, described below,
is the plain-Python definition the fast path is tested against.

The reference makes two passes over a re-iterable :class:`~pipeline.data.corpora.Corpus` (three for ``tail10``,
whose first pass only counts tokens to place the split): memory grows with the
vocabulary, not with the corpus. Lines are grouped into blocks of about
``chunk_chars`` characters so that normalization, the tokenizer regex,
``Counter.update`` and the id lookup all run in C over many tokens at once.

Splits (the vocabulary is always built from the training part only):

- ``none``: everything is ``train``; ``valid`` and ``test`` are empty arrays;
- ``bengio2003``: the first 800,000 words train, the next 200,000 valid, the rest test
  (Bengio et al. 2003 on Brown; words = tokens other than ``<eos>``);
  ``split_sizes=[train, valid]`` changes the two sizes (tiny smoke runs);
- ``tail10``: the last 10% of the tokens (``<eos>`` included: for characters, line
  breaks count) is held out, its first half ``valid``, its second half ``test``.

Outputs (``out_dir``): ``train.npy``, ``valid.npy``, ``test.npy`` (1-D int32, each
line ends with ``<eos>`` = 2, OOV = ``<unk>`` = 1) and ``vocab.tsv``; all four are
written to temporary files and renamed into place only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from pipeline.core.atomic import atomic_path
from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.data.corpora import ConcatCorpus, ConfigReaderName, Corpus, OnDecodeError, open_corpus
from pipeline.data.fast_encode import (
    BlockTokenizer,
    fast_blocks,
    scan_to_ids,
    tail_counts,
    word_index,
    write_splits,
)
from pipeline.data.scan import EOL_ID, TokenTable
from pipeline.data.text import EOL, Level, NormalizeConfig, TokenizerName, normalize, tokenize
from pipeline.data.vocab import EOS, SPECIALS, UNK, Vocabulary

SplitName = Literal["none", "bengio2003", "tail10"]
Engine = Literal["fast", "reference"]
SPLITS = ("train", "valid", "test")
BENGIO2003_SIZES = (800_000, 200_000)
TAIL_FRACTION = 0.1


ALL_DATASETS = "."  # the ``dataset`` of a concat corpus: all of data/raw


@dataclass(frozen=True)
class CorpusConfig:
    """One entry of ``prepare.corpora``: where the corpus is and how to prepare it.

    ``min_count``/``max_size``/``normalize`` left out (None) take the global
    ``prepare.*`` values; ``normalize`` overrides single keys of the global mapping.

    ``reader: concat`` joins the lines of the entries named in ``parts`` (their
    ``dataset``, ``reader``, ``files``, ``on_decode_error`` and ``max_lines`` are reused;
    this entry's level, tokenizer, normalization, vocabulary and split apply to the
    whole). Its ``dataset`` must be ``"."``: ``dvc.yaml`` depends on
    ``data/raw/<dataset>``, and ``data/raw/.`` holds every part's raw folder, so a change
    in any part re-runs it. Its ``max_lines`` caps the total.
    """

    dataset: str
    reader: ConfigReaderName
    level: Level = "word"
    tokenizer: TokenizerName = "regex"
    split: SplitName = "none"
    split_sizes: list[int] | None = None
    min_count: int | None = field(default=None, metadata={"min": 1})
    max_size: int | None = field(default=None, metadata={"min": 4})
    normalize: dict[str, Any] | None = None
    max_lines: int | None = field(default=None, metadata={"min": 1})
    on_decode_error: OnDecodeError = "fail"
    files: str | None = None
    parts: list[str] | None = None


@dataclass(frozen=True)
class PrepareSection:
    """The ``prepare`` section of ``params.yaml``."""

    normalize: dict[str, Any] = field(default_factory=dict)
    min_count: int = field(default=5, metadata={"min": 1})
    max_size: int | None = field(default=None, metadata={"min": 4})
    corpora: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunk_chars: int = field(default=1 << 20, metadata={"min": 1})


@dataclass(frozen=True)
class EncodeSettings:
    """Everything :func:`prepare_corpus` needs, resolved from global and per-corpus values.

    ``*_key`` name the config keys, so errors point at the line of ``conf/`` to fix.
    ``engine``: ``fast`` or ``reference`` (same outputs; see the module docstring).
    """

    level: Level = "word"
    tokenizer: TokenizerName = "regex"
    normalize: NormalizeConfig = NormalizeConfig()
    min_count: int = 1
    max_size: int | None = None
    split: SplitName = "none"
    split_sizes: tuple[int, int] | None = None
    chunk_chars: int = 1 << 20
    min_count_key: str = "min_count"
    max_size_key: str = "max_size"
    progress: bool | None = None
    engine: Engine = "fast"


def resolve(section: PrepareSection, name: str) -> tuple[CorpusConfig, EncodeSettings]:
    """Validate ``prepare.corpora.<name>`` and merge it with the global values."""
    where = f"prepare.corpora.{name}"
    if name not in section.corpora:
        known = ", ".join(sorted(section.corpora)) or "none"
        raise ConfigError(f"{where}: no such corpus (configured: {known})")
    cfg = from_mapping(CorpusConfig, section.corpora[name], where=where)
    norm = from_mapping(
        NormalizeConfig,
        {**section.normalize, **(cfg.normalize or {})},
        where=f"{where}.normalize" if cfg.normalize else "prepare.normalize",
    )
    _check_parts(section, name, cfg)
    sizes = None
    if cfg.split_sizes is not None:
        if len(cfg.split_sizes) != 2 or min(cfg.split_sizes) < 1:
            raise ConfigError(f"{where}.split_sizes: expected [train, valid] positive counts")
        sizes = (cfg.split_sizes[0], cfg.split_sizes[1])
    settings = EncodeSettings(
        level=cfg.level,
        tokenizer=cfg.tokenizer,
        normalize=norm,
        min_count=cfg.min_count if cfg.min_count is not None else section.min_count,
        max_size=cfg.max_size if cfg.max_size is not None else section.max_size,
        split=cfg.split,
        split_sizes=sizes,
        chunk_chars=section.chunk_chars,
        min_count_key=f"{where}.min_count" if cfg.min_count is not None else "prepare.min_count",
        max_size_key=f"{where}.max_size" if cfg.max_size is not None else "prepare.max_size",
    )
    return cfg, settings


def _check_parts(section: PrepareSection, name: str, cfg: CorpusConfig) -> list[CorpusConfig]:
    """The configs of a ``concat`` entry's parts (validated); ``[]`` for other readers."""
    where = f"prepare.corpora.{name}.parts"
    if cfg.reader != "concat":
        if cfg.parts is not None:
            raise ConfigError(f"{where}: only a corpus with reader: concat has parts")
        return []
    if not cfg.parts:
        raise ConfigError(f"{where}: reader concat needs a list of corpora (e.g. [sotu, brown])")
    parts = []
    for part in cfg.parts:
        if part not in section.corpora:
            known = ", ".join(sorted(k for k in section.corpora if k != name)) or "none"
            raise ConfigError(f"{where}: unknown corpus {part!r} (configured: {known})")
        part_cfg = from_mapping(
            CorpusConfig, section.corpora[part], where=f"prepare.corpora.{part}"
        )
        if part_cfg.reader == "concat":
            raise ConfigError(f"{where}: {part!r} is itself a concat corpus (not supported)")
        parts.append(part_cfg)
    if cfg.dataset != ALL_DATASETS:
        raise ConfigError(
            f"prepare.corpora.{name}.dataset: {cfg.dataset!r} must be {ALL_DATASETS!r} for "
            "reader concat (dvc.yaml depends on data/raw/<dataset>: data/raw/. holds "
            "every part)"
        )
    return parts


def open_configured(
    section: PrepareSection, name: str, raw_dir: str | os.PathLike
) -> Corpus | ConcatCorpus:
    """The corpus of ``prepare.corpora.<name>`` with its files under ``raw_dir/<dataset>/``.

    Files are listed now (a missing folder is a :class:`DataError`); a ``concat`` entry
    becomes a :class:`ConcatCorpus` of its parts, read as they are configured.
    """
    raw_dir = Path(raw_dir)
    cfg, _ = resolve(section, name)

    def _open(c: CorpusConfig, max_lines: int | None) -> Corpus:
        return open_corpus(
            c.reader,  # type: ignore[arg-type]  # never "concat" here
            raw_dir / c.dataset,
            files=c.files,
            on_decode_error=c.on_decode_error,
            max_lines=max_lines,
        )

    if cfg.reader != "concat":
        return _open(cfg, cfg.max_lines)
    parts = _check_parts(section, name, cfg)
    return ConcatCorpus([_open(p, p.max_lines) for p in parts], max_lines=cfg.max_lines)


# ---------------------------------------------------------------------------- streaming
def iter_blocks(lines: Iterable[str], chunk_chars: int = 1 << 20) -> Iterator[str]:
    """Join lines into blocks of about ``chunk_chars`` characters, each line ending in ``\\n``."""
    buf: list[str] = []
    size = 0
    for line in lines:
        buf.append(line)
        size += len(line) + 1
        if size >= chunk_chars:
            buf.append("")
            yield "\n".join(buf)
            buf, size = [], 0
    if buf:
        buf.append("")
        yield "\n".join(buf)


def token_blocks(lines: Iterable[str], settings: EncodeSettings) -> Iterator[list[str]]:
    """Normalized tokens, block by block; :data:`~pipeline.data.text.EOL` marks each line end."""
    for block in iter_blocks(lines, settings.chunk_chars):
        yield tokenize(normalize(block, settings.normalize), settings.level, settings.tokenizer)


def _units(tokens: list[str], unit: str) -> int:
    """Split units in ``tokens``: all tokens, or words (tokens other than EOL)."""
    return len(tokens) if unit == "tokens" else len(tokens) - tokens.count(EOL)


def _cut(tokens: list[str], need: int, unit: str) -> int:
    """Where the next split starts in ``tokens`` after ``need`` more units.

    For ``tokens``: index ``need``. For ``words``: index of the word after the
    ``need``-th one, so the ``<eos>`` that follows a split's last word stays with it
    (the result is then the same however the lines are grouped into blocks).
    """
    if need <= 0 and unit == "tokens":
        return 0
    if unit == "tokens":
        return min(need, len(tokens))
    seen = 0
    for i, tok in enumerate(tokens):
        if tok != EOL:
            if seen == need:
                return i
            seen += 1
    return len(tokens)


def _block_cut(tokens: list[str], pos: int, n: int, end: float, unit: str) -> int:
    """Index in a block (starting at unit ``pos``, holding ``n`` units) where ``end`` falls."""
    if pos + n <= end:
        return len(tokens)
    if pos > end:
        return 0
    return _cut(tokens, int(end - pos), unit)


@dataclass
class _Bounds:
    unit: str  # "tokens" or "words"
    train_end: float
    valid_end: float


def _bounds(corpus: Corpus | ConcatCorpus, settings: EncodeSettings) -> _Bounds:
    if settings.split == "none":
        return _Bounds("tokens", math.inf, math.inf)
    if settings.split == "bengio2003":
        n_train, n_valid = settings.split_sizes or BENGIO2003_SIZES
        return _Bounds("words", n_train, n_train + n_valid)
    # tail10: a first pass counts the tokens to place the held-out tail.
    total = 0
    for tokens in _progress(token_blocks(corpus, settings), settings, "size"):
        total += len(tokens)
    held = round(total * TAIL_FRACTION)
    return _Bounds("tokens", total - held, total - held + held // 2)


def _progress(it: Iterable, settings: EncodeSettings, desc: str) -> Iterable:
    disable = None if settings.progress is None else not settings.progress
    return tqdm(it, desc=desc, unit="block", disable=disable, leave=False)


# ---------------------------------------------------------------------------- counting
@dataclass
class Counts:
    """Result of the counting pass over the training split."""

    counter: Counter
    eos: int
    words: int
    lines: int
    rare: tuple[int, int, int] = (0, 0, 0)  # left out of counter: see Vocabulary.from_counts


def count_train(
    corpus: Corpus | ConcatCorpus, settings: EncodeSettings, bounds: _Bounds | None = None
) -> Counts:
    """Count the tokens of the training split (memory ~ number of types)."""
    bounds = bounds or _bounds(corpus, settings)
    counter: Counter = Counter()
    pos = 0
    for tokens in _progress(token_blocks(corpus, settings), settings, "count"):
        n = _units(tokens, bounds.unit)
        if pos + n > bounds.train_end:
            tokens = tokens[: _cut(tokens, int(bounds.train_end - pos), bounds.unit)]
            counter.update(tokens)
            break
        counter.update(tokens)
        pos += n
    eos = counter.pop(EOL, 0)
    return Counts(counter, eos, sum(counter.values()), eos)


def build_vocab(counts: Counts, settings: EncodeSettings, source: str = "corpus") -> Vocabulary:
    """Vocabulary of the training counts; errors name the config key at fault."""
    if counts.words == 0:
        raise DataError(
            f"{source}: corpus is empty (no {settings.level} tokens in the training split)"
        )
    try:
        return Vocabulary.from_counts(
            counts.counter,
            min_count=settings.min_count,
            max_size=settings.max_size,
            eos_count=counts.eos,
            rare=counts.rare,
        )
    except ConfigError as exc:
        msg = str(exc)
        key = settings.max_size_key if msg.startswith("max_size") else settings.min_count_key
        raise ConfigError(f"{key}{msg[msg.index(':') :]} ({source})") from None


# ---------------------------------------------------------------------------- encoding
_NPY_HEADER = 128  # bytes; fixed so the header can be written after the data


def _npy_header(n: int) -> bytes:
    """A version 1.0 ``.npy`` header for a 1-D little-endian int32 array of length ``n``."""
    text = f"{{'descr': '<i4', 'fortran_order': False, 'shape': ({n},), }}"
    magic = b"\x93NUMPY\x01\x00"
    pad = _NPY_HEADER - len(magic) - 2 - len(text) - 1
    body = (text + " " * pad + "\n").encode("latin1")
    return magic + struct.pack("<H", len(body)) + body


@dataclass
class SplitStats:
    """Per-split numbers: tokens (``<eos>`` included), words, ``<unk>`` words, lines."""

    tokens: int = 0
    words: int = 0
    unk: int = 0
    lines: int = 0

    @property
    def oov_rate(self) -> float:
        return self.unk / self.words if self.words else 0.0


def encode_corpus(
    corpus: Corpus | ConcatCorpus,
    vocab: Vocabulary,
    settings: EncodeSettings,
    outputs: Mapping[str, Path],
    bounds: _Bounds | None = None,
) -> dict[str, SplitStats]:
    """Encode ``corpus`` into the ``.npy`` files ``outputs[split]`` (paths written as given).

    The ids are appended to each file after a fixed-size header, which is filled in at
    the end, so no split is ever held in memory.
    """
    bounds = bounds or _bounds(corpus, settings)
    lookup = dict(vocab.index)
    lookup[EOL] = EOS  # line ends -> <eos>
    get = lookup.get
    stats = {s: SplitStats() for s in SPLITS}
    with contextlib.ExitStack() as stack:
        handles = {s: stack.enter_context(open(outputs[s], "wb")) for s in SPLITS}
        for fh in handles.values():
            fh.write(b"\0" * _NPY_HEADER)
        pos = 0
        for tokens in _progress(token_blocks(corpus, settings), settings, "encode"):
            ids = np.fromiter(map(get, tokens, repeat(UNK)), dtype="<i4", count=len(tokens))
            n = _units(tokens, bounds.unit)
            # train | valid | test boundaries inside this block (c1 <= c2)
            c1 = _block_cut(tokens, pos, n, bounds.train_end, bounds.unit)
            c2 = _block_cut(tokens, pos, n, bounds.valid_end, bounds.unit)
            pieces = (ids[:c1], ids[c1:c2], ids[c2:])
            for split, piece in zip(SPLITS, pieces, strict=True):
                if len(piece):
                    piece.tofile(handles[split])
                    st = stats[split]
                    eos = int(np.count_nonzero(piece == EOS))
                    st.tokens += len(piece)
                    st.lines += eos
                    st.words += len(piece) - eos
                    st.unk += int(np.count_nonzero(piece == UNK))
            pos += n
        for split, fh in handles.items():
            fh.seek(0)
            fh.write(_npy_header(stats[split].tokens))
    return stats


@dataclass
class PrepareResult:
    """What :func:`prepare_corpus` did (turned into ``metrics/prepare_<corpus>.json``)."""

    vocab: Vocabulary
    splits: dict[str, SplitStats]
    types: int
    lines: int
    decode_errors: int
    seconds: float
    count_seconds: float = 0.0
    encode_seconds: float = 0.0

    def metrics(self) -> dict[str, Any]:
        """Flat metrics: totals, then ``<split>_tokens`` / ``<split>_oov_rate`` / ..."""
        words = sum(s.words for s in self.splits.values())
        unk = sum(s.unk for s in self.splits.values())
        out: dict[str, Any] = {
            "tokens": sum(s.tokens for s in self.splits.values()),
            "words": words,
            "types": self.types,
            "vocab_size": len(self.vocab),
            "oov_rate": unk / words if words else 0.0,
            "lines": self.lines,
            "decode_errors": self.decode_errors,
            "seconds": round(self.seconds, 3),
            "count_seconds": round(self.count_seconds, 3),
            "encode_seconds": round(self.encode_seconds, 3),
        }
        tokens = out["tokens"]
        out["tokens_per_second"] = tokens / self.seconds if self.seconds > 0 else None
        for name, st in self.splits.items():
            out[f"{name}_tokens"] = st.tokens
            out[f"{name}_words"] = st.words
            out[f"{name}_oov_rate"] = st.oov_rate
        return out


def prepare_corpus(
    corpus: Corpus | ConcatCorpus, settings: EncodeSettings, out_dir: str | os.PathLike
) -> PrepareResult:
    """Count, build the vocabulary and encode ``corpus`` into ``out_dir`` (atomically).

    Raises :class:`DataError` (missing/empty/undecodable input) or :class:`ConfigError`
    (``min_count``/``max_size`` leave no word) before anything is written.
    """
    if settings.engine == "fast":
        return _prepare_fast(corpus, settings, Path(out_dir))
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    bounds = _bounds(corpus, settings)
    counts = count_train(corpus, settings, bounds)
    vocab = build_vocab(counts, settings, source=str(corpus.root))
    t1 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # Renamed into place (in reverse order) only if the whole block succeeds.
        tmp = {s: stack.enter_context(atomic_path(out_dir / f"{s}.npy")) for s in SPLITS}
        vocab_tmp = stack.enter_context(atomic_path(out_dir / "vocab.tsv"))
        splits = encode_corpus(corpus, vocab, settings, tmp, bounds)
        vocab.save_tsv(vocab_tmp)
    t2 = time.perf_counter()
    return PrepareResult(
        vocab=vocab,
        splits=splits,
        types=len(counts.counter),
        lines=corpus.lines,
        decode_errors=corpus.decode_errors,
        seconds=t2 - t0,
        count_seconds=t1 - t0,
        encode_seconds=t2 - t1,
    )


def _fast_cuts(ids_path: Path, total: int, settings: EncodeSettings) -> tuple[int, int]:
    """Where ``valid`` and ``test`` start in the id stream (see :func:`_bounds`)."""
    if settings.split == "none":
        return total, total
    if settings.split == "bengio2003":
        n_train, n_valid = settings.split_sizes or BENGIO2003_SIZES
        c1 = word_index(ids_path, total, n_train)
        return c1, word_index(ids_path, total, n_train + n_valid)
    held = round(total * TAIL_FRACTION)
    return total - held, total - held + held // 2


def _prepare_fast(
    corpus: Corpus | ConcatCorpus, settings: EncodeSettings, out_dir: Path
) -> PrepareResult:
    """:func:`prepare_corpus` with the ``fast`` engine (same outputs)."""
    t0 = time.perf_counter()
    table = TokenTable()
    tokenize_block = BlockTokenizer(settings.level, settings.tokenizer, settings.normalize, table)
    # The id file lives next to the outputs (same disk); folders made for it go again
    # if the stage fails, so a failure leaves nothing behind.
    made = [d for d in (out_dir, *out_dir.parents) if not d.exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".ids.", suffix=".tmp", dir=out_dir)
    ids_path = Path(name)
    ok = False
    try:
        with os.fdopen(fd, "wb") as fh:
            pieces = corpus.pieces(raw_ascii=tokenize_block.raw_ascii)
            blocks = _progress(fast_blocks(pieces, settings.chunk_chars), settings, "scan")
            total = scan_to_ids(blocks, tokenize_block, fh)
        c1, c2 = _fast_cuts(ids_path, total, settings)
        n = len(table)
        counts = table.counts()
        if c1 < total:
            counts -= tail_counts(ids_path, c1, n)
        eos = int(counts[EOL_ID])
        counts[EOL_ID] = 0
        # Only tokens that can enter the vocabulary become Python strings: those seen
        # min_count times, and the specials' spellings (their counts go to the special).
        special = {t: p for t in SPECIALS if (p := table.find(t)) >= 0}
        special_ids = np.array(list(special.values()), dtype=np.int64)
        keep = counts >= settings.min_count
        keep[special_ids] = True
        keep &= counts > 0
        rare = (counts > 0) & ~keep
        kept = np.flatnonzero(keep)
        counter = Counter(dict(zip(table.tokens(kept), counts[kept].tolist(), strict=True)))
        rare_counts = counts[rare]
        summary = (int(rare_counts.size), int(rare_counts.sum()), int(rare_counts.max(initial=0)))
        words = int(counts.sum())
        vocab = build_vocab(
            Counts(counter, eos, words, eos, summary), settings, source=str(corpus.root)
        )
        types = len(counter) + summary[0]
        del counter
        t1 = time.perf_counter()
        index = vocab.index
        perm = np.full(n, UNK, dtype=np.int32)
        perm[kept] = [index.get(t, UNK) for t in table.tokens(kept)]
        for t, p in special.items():
            perm[p] = index[t]
        perm[EOL_ID] = EOS
        cuts = [0, c1, c2, total]
        with contextlib.ExitStack() as stack:
            tmp = {s: stack.enter_context(atomic_path(out_dir / f"{s}.npy")) for s in SPLITS}
            vocab_tmp = stack.enter_context(atomic_path(out_dir / "vocab.tsv"))
            handles = [stack.enter_context(open(tmp[s], "wb")) for s in SPLITS]
            for k, fh in enumerate(handles):
                fh.write(_npy_header(cuts[k + 1] - cuts[k]))
            written = write_splits(ids_path, perm, cuts, handles, EOS, UNK)
            for fh in handles:
                fh.close()
            vocab.save_tsv(vocab_tmp)
        ok = True
    finally:
        ids_path.unlink(missing_ok=True)
        if not ok:
            for d in made:
                with contextlib.suppress(OSError):
                    d.rmdir()
    splits = {
        s: SplitStats(tokens=t, words=t - e, unk=u, lines=e)
        for s, (t, e, u) in zip(SPLITS, written, strict=True)
    }
    t2 = time.perf_counter()
    return PrepareResult(
        vocab=vocab,
        splits=splits,
        types=types,
        lines=corpus.lines,
        decode_errors=corpus.decode_errors,
        seconds=t2 - t0,
        count_seconds=t1 - t0,
        encode_seconds=t2 - t1,
    )


__all__ = [
    "BENGIO2003_SIZES",
    "CorpusConfig",
    "EncodeSettings",
    "PrepareResult",
    "PrepareSection",
    "SplitStats",
    "build_vocab",
    "count_train",
    "encode_corpus",
    "iter_blocks",
    "open_configured",
    "prepare_corpus",
    "resolve",
    "token_blocks",
]

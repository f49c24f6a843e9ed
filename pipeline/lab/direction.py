"""Unidirectional against bidirectional NER: the same tagger, one flag apart.

A unidirectional encoder tags word t from words 1..t only, so "Teddy" gets the same tag
in "Teddy Roosevelt was president" and "Teddy bears are on sale"; a bidirectional one
also reads the words to the right. :func:`tagger_config` derives both settings from the
main ``ner`` settings, and :func:`probe_tags` tags the probe sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pipeline.seq import ner
from pipeline.seq.ner_lit import NerConfig


@dataclass(frozen=True)
class DirectionStudy:
    """Overrides of the ``ner`` settings for the side-by-side runs, and the probes."""

    max_train_sentences: int = field(default=4000, metadata={"min": 0})
    max_epochs: int = field(default=2, metadata={"min": 1})
    output: Literal["softmax", "crf"] = "softmax"
    embedding: str = "random"
    probes: list[str] = field(default_factory=list)


def tagger_config(
    base: NerConfig, study: DirectionStudy, bidirectional: bool, checkpoint_dir: str
) -> NerConfig:
    """``base`` with the study's overrides and the encoder's direction set."""
    return replace(
        base,
        embedding=study.embedding,
        checkpoint_dir=checkpoint_dir,
        resume=False,
        data=replace(base.data, max_train_sentences=study.max_train_sentences),
        model=replace(base.model, output=study.output),
        encoder=replace(base.encoder, bidirectional=bidirectional),
        trainer=replace(base.trainer, max_epochs=study.max_epochs, patience=0, progress_bar=False),
    )


def probe_tags(
    model: ner.NerTagger, vocabs: ner.Vocabularies, cfg: ner.NerDataConfig, probes: Sequence[str]
) -> list[list[tuple[str, str]]]:
    """(word, predicted tag) for each whitespace-separated probe sentence."""
    sentences = [ner.Sentence(tuple(p.split()), tuple("O" for _ in p.split())) for p in probes]
    encoded = ner.encode_sentences(sentences, vocabs, cfg, where="lab.ner.probes")
    tags = ner.predict(model, encoded)
    return [list(zip(s.words, t, strict=True)) for s, t in zip(sentences, tags, strict=True)]

"""Stage lab_ner_direction: NER with a unidirectional and a bidirectional encoder.

Trains the ``ner`` tagger twice with the overrides of ``lab.ner`` (fewer sentences and
epochs, softmax output so no tag sees the tags to its right), once per direction, and
tags the probe sentences ("Teddy Roosevelt ..." / "Teddy bears ..."): does the first word
get its type before the words that decide it arrive? Writes
``reports/lab/ner_direction/report.md`` and ``metrics/lab_ner_direction.json``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import DataError
from pipeline.lab.direction import DirectionStudy
from pipeline.seq.ner_lit import NerConfig
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

REPORTS = Path("reports/lab/ner_direction")


def run(args) -> None:
    params = load_params()
    base = section(params, "ner", NerConfig)
    study = section(params, "lab.ner", DirectionStudy)
    start = time.perf_counter()
    with stage_run("lab_ner_direction", study) as tracker:
        import torch

        from pipeline.lab.direction import probe_tags, tagger_config
        from pipeline.lab.plots import markdown_table
        from pipeline.seq import conlleval, ner
        from pipeline.seq.encoder import init_embedding_matrix, resolve_embedding_dim
        from pipeline.seq.ner_lit import fingerprint, train_tagger

        if lookup(params, "lab.num_threads"):
            torch.set_num_threads(lookup(params, "lab.num_threads"))
        files = [Path(base.data_dir) / f"{s}.txt" for s in ("train", "valid", "test")]
        train, valid, test = (ner.read_conll(f) for f in files)
        if study.max_train_sentences:
            train = train[: study.max_train_sentences]
        emb = None
        if study.embedding != "random":
            from pipeline.embeddings.vectors import Embeddings

            emb_dir = Path(base.embeddings_dir) / study.embedding
            if not emb_dir.is_dir():
                raise DataError(f"{emb_dir}: embeddings not found (lab.ner.embedding)")
            emb = Embeddings.load(emb_dir)
        metrics, probes, rows = {}, {}, []
        for direction, bi in (("uni", False), ("bi", True)):
            cfg = tagger_config(base, study, bi, f"data/interim/lab_ner_{direction}")
            dim = resolve_embedding_dim(cfg.encoder.embedding_dim, emb)  # null: the artifact's
            cfg = replace(cfg, encoder=replace(cfg.encoder, embedding_dim=dim))
            vocabs = ner.build_vocabularies(train, cfg.data, emb.words if emb else ())
            matrix, _ = init_embedding_matrix(
                vocabs.words.tokens, emb, cfg.encoder.embedding_dim, cfg.trainer.seed,
                key="ner.encoder.embedding_dim",
            )  # fmt: skip
            enc = {n: ner.encode_sentences(s, vocabs, cfg.data, where=str(f))
                   for n, s, f in zip(("train", "valid", "test"), (train, valid, test), files, strict=True)}  # fmt: skip
            torch.manual_seed(cfg.trainer.seed)
            model = ner.NerTagger(cfg.model, cfg.encoder, vocabs, matrix)
            result = train_tagger(model, enc["train"], enc["valid"], cfg, fingerprint(cfg, files))
            pred = ner.predict(result.model, enc["test"], cfg.data.eval_batch_size)
            score = conlleval.evaluate([list(s.tags) for s in test], pred)
            seconds = sum(result.epoch_times) / max(len(result.epoch_times), 1)
            metrics[f"f1_{direction}"] = score.f1
            metrics[f"time_per_epoch_{direction}"] = seconds
            rows.append([direction, score.f1, score.precision, score.recall, seconds])
            probes[direction] = probe_tags(result.model, vocabs, cfg.data, study.probes)
        lines = ["# NER: unidirectional vs bidirectional encoder", "",
                 f"{len(train)} training sentences, {study.max_epochs} epochs, "
                 f"{study.output} output, {study.embedding} embeddings; CoNLL-2003 test.", "",
                 markdown_table(["encoder", "F1", "precision", "recall", "s/epoch"], rows),
                 "## Probe sentences (word/tag)", ""]  # fmt: skip
        for i, text in enumerate(study.probes):
            lines.append(f"- `{text}`")
            for direction in probes:
                tagged = " ".join(f"{w}/{t}" for w, t in probes[direction][i])
                lines.append(f"  - {direction}: {tagged}")
        # probes sharing their first word: uni must tag it alike (it has seen nothing else)
        groups: dict[str, list[int]] = {}
        for i, text in enumerate(study.probes):
            groups.setdefault(text.split()[0], []).append(i)
        for d in probes:
            metrics[f"probe_first_word_split_{d}"] = sum(
                len({probes[d][i][0][1] for i in idx}) > 1 for idx in groups.values()
            )
        metrics["probe_groups"] = sum(len(idx) > 1 for idx in groups.values())
        with atomic_dir(REPORTS) as rep:
            (rep / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        metrics["seconds"] = time.perf_counter() - start
        write_metrics("lab_ner_direction", metrics, tracker)
    print((REPORTS / "report.md").read_text(encoding="utf-8"))


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()

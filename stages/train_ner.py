"""Stage train_ner: BiLSTM(-CRF) named-entity tagger on CoNLL-2003, scored with conlleval.

Reads ``ner`` from params.yaml; writes ``<model_dir>/`` (model.ckpt, vocab.tsv, chars.tsv,
tags.json, hparams.json), ``<reports_dir>/`` (predictions.txt in CoNLL format,
conlleval.txt, confusion.png) and ``metrics/train_ner.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

from pipeline.core.atomic import atomic_dir, atomic_open, write_json
from pipeline.core.distributed import is_rank_zero
from pipeline.core.errors import DataError
from stages._common import load_params, section, stage_main, stage_run, write_metrics


def run(args) -> None:
    start = time.perf_counter()
    params = load_params()
    from pipeline.seq.ner_lit import NerConfig

    cfg = section(params, "ner", NerConfig)
    with stage_run("train_ner", cfg) as tracker:
        import torch

        from pipeline.seq import conlleval, ner
        from pipeline.seq.encoder import init_embedding_matrix, resolve_embedding_dim
        from pipeline.seq.ner_lit import fingerprint, train_tagger
        from pipeline.seq.training import export_weights

        if cfg.trainer.num_threads:
            torch.set_num_threads(cfg.trainer.num_threads)
        files = [Path(cfg.data_dir) / f"{split}.txt" for split in ("train", "valid", "test")]
        train, valid, test = (ner.read_conll(f) for f in files)
        if cfg.data.max_train_sentences:
            train = train[: cfg.data.max_train_sentences]
        emb = None
        if cfg.embedding != "random":
            from pipeline.embeddings.vectors import Embeddings

            emb_dir = Path(cfg.embeddings_dir) / cfg.embedding
            if not emb_dir.is_dir():
                raise DataError(f"{emb_dir}: embeddings not found (ner.embedding={cfg.embedding})")
            emb = Embeddings.load(emb_dir)
            files += sorted(p for p in emb_dir.iterdir() if p.is_file())
        dim = resolve_embedding_dim(cfg.encoder.embedding_dim, emb)
        cfg = replace(cfg, encoder=replace(cfg.encoder, embedding_dim=dim))
        vocabs = ner.build_vocabularies(train, cfg.data, emb.words if emb is not None else ())
        matrix, missing = init_embedding_matrix(
            vocabs.words.tokens, emb, cfg.encoder.embedding_dim, cfg.trainer.seed,
            key="ner.encoder.embedding_dim",
        )  # fmt: skip
        enc = {
            name: ner.encode_sentences(sents, vocabs, cfg.data, where=str(f))
            for name, sents, f in zip(
                ("train", "valid", "test"), (train, valid, test), files[:3], strict=True
            )
        }
        torch.manual_seed(cfg.trainer.seed)
        model = ner.NerTagger(cfg.model, cfg.encoder, vocabs, matrix)
        result = train_tagger(
            model, enc["train"], enc["valid"], cfg, fingerprint(cfg, files),
            logger=tracker.lightning_logger(),
        )  # fmt: skip
        if not is_rank_zero():  # the other processes of a distributed run only train
            return

        scores, preds = {}, {}
        for name, sents in (("valid", valid), ("test", test)):
            preds[name] = ner.predict(result.model, enc[name], cfg.data.eval_batch_size)
            scores[name] = conlleval.evaluate([list(s.tags) for s in sents], preds[name])

        with atomic_dir(cfg.model_dir) as out:
            export_weights(result.best_checkpoint, out / "model.ckpt")
            vocabs.words.save_tsv(out / "vocab.tsv")
            vocabs.chars.save_tsv(out / "chars.tsv")
            write_json(out / "tags.json", list(vocabs.tags))
            write_json(out / "hparams.json", asdict(cfg))
        gold_test = [list(s.tags) for s in test]
        with atomic_dir(cfg.reports_dir) as rep:
            with atomic_open(rep / "predictions.txt") as fh:
                conlleval.write_conll(fh, [s.words for s in test], gold_test, preds["test"])
            (rep / "conlleval.txt").write_text(conlleval.format_report(scores["test"]))
            matrix_counts = ner.confusion_matrix(gold_test, preds["test"], vocabs.tags)
            title = f"NER test tags (entity F1 {scores['test'].f1:.2f}, {cfg.model.output})"
            ner.plot_confusion(matrix_counts, vocabs.tags, rep / "confusion.png", title)

        times = result.epoch_times
        metrics = {
            **scores["valid"].as_dict("valid_"),
            **scores["test"].as_dict("test_"),
            "embedding": cfg.embedding,
            "embedding_missing": missing,
            "vocab_size": len(vocabs.words),
            "train_sentences": len(train),
            "epochs": result.epochs_run,
            "resumed": result.resumed,
            "time_per_epoch_s": sum(times) / len(times) if times else None,
            "train_time_s": sum(times),
            "total_time_s": time.perf_counter() - start,
            "device": result.device,
        }
        tracker.log_text(conlleval.format_report(scores["test"]), "conlleval_test.txt")
        tracker.log_artifact(Path(cfg.reports_dir) / "confusion.png", "reports")
        tracker.log_params({"n_params": sum(p.numel() for p in model.parameters())})
        write_metrics("train_ner", metrics, tracker)
        print(conlleval.format_report(scores["test"]), end="")


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()

"""Stage `train_lm`: a recurrent language model on a prepared corpus (word or char level).

    python -m stages.train_lm word     # Brown, Bengio et al. 2003 split -> perplexity
    python -m stages.train_lm char     # Shakespeare, characters -> bits / nats per char

Reads data/processed/<corpus>/{train,valid,test}.npy + vocab.tsv; writes
data/processed/models/lm_<level>/ (model.ckpt, vocab.tsv, hparams.json),
reports/lm/<level>/samples.txt and metrics/train_lm_<level>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.atomic import atomic_dir, atomic_open, load_npy, write_json
from pipeline.core.config import from_mapping
from pipeline.core.distributed import is_rank_zero
from pipeline.core.errors import DataError
from pipeline.data.vocab import Vocabulary
from stages._common import Timer, load_params, lookup, stage_main, stage_run, write_metrics

MODELS_DIR = Path("data/processed/models")


def model_dir(level: str) -> Path:
    return MODELS_DIR / f"lm_{level}"


def run(args: argparse.Namespace) -> None:
    from pipeline.seq import lm
    from pipeline.seq.training import export_weights

    params = load_params()
    levels = lookup(params, "lm.levels")
    if args.level not in levels:
        raise DataError(f"lm.levels: no level {args.level!r} (known: {', '.join(levels)})")
    merged = lm.merge_sections(lookup(params, "lm.common"), levels[args.level])
    cfg = from_mapping(lm.LMConfig, merged, where=f"lm.levels.{args.level}")
    name = f"train_lm_{args.level}"
    corpus = Path("data/processed") / cfg.corpus
    vocab = Vocabulary.load_tsv(corpus / "vocab.tsv")
    streams = {}
    for split in ("train", "valid", "test"):
        path = corpus / f"{split}.npy"
        if not path.is_file():
            raise DataError(f"{path}: not found (run the prepare stage for {cfg.corpus})")
        ids = lm.check_stream(load_npy(path), len(vocab), str(path))
        limit = cfg.max_train_tokens if split == "train" else cfg.max_eval_tokens
        streams[split] = ids[:limit] if limit else ids
        if streams[split].size < 2 * max(cfg.batch_size, cfg.eval_batch_size):
            raise DataError(f"{path}: only {streams[split].size} tokens, too few to train on")

    with stage_run(name, cfg) as tracker:
        with Timer() as t:
            model, info = lm.train_language_model(
                cfg,
                streams["train"],
                streams["valid"],
                len(vocab),
                Path("data/interim") / name,
                logger=tracker.lightning_logger(),
                lr_key=f"lm.levels.{args.level}.lr"
                if "lr" in levels[args.level]
                else "lm.common.lr",
            )
        if not is_rank_zero():  # the other processes of a distributed run only train
            return
        evals = {
            split: lm.evaluate_stream(model, streams[split], cfg.eval_batch_size, cfg.bptt)
            for split in ("valid", "test")
        }

        samples = lm.samples_report(
            model,
            list(vocab.tokens),
            "char" if args.level == "char" else "word",
            cfg.sample,
            title=f"Samples of the {args.level} language model ({cfg.corpus})",
        )
        report = Path("reports/lm") / args.level / "samples.txt"
        with atomic_open(report) as fh:
            fh.write(samples)
        tracker.log_text(samples, f"samples_{args.level}.txt")

        with atomic_dir(model_dir(args.level)) as tmp:
            if info["checkpoint"] is None:
                raise DataError(f"{name}: training wrote no checkpoint")
            export_weights(info["checkpoint"], tmp / "model.ckpt")
            vocab.save_tsv(tmp / "vocab.tsv")
            hp = {"level": args.level, "vocab_size": len(vocab), "arch": cfg.arch.to_dict()}
            write_json(tmp / "hparams.json", hp)

        metrics = {
            "epochs": info["epochs"],
            "time_per_epoch_s": info["time_per_epoch_s"],
            "train_time_s": t.seconds,
            "parameters": info["parameters"],
            "resumed": info["resumed"],
            "train_tokens": int(streams["train"].size),
        }
        for split, ev in evals.items():
            metrics[f"{split}_tokens"] = ev["tokens"]
            metrics[f"{split}_nll"] = ev["nll"]
            if args.level == "char":
                metrics[f"{split}_bpc"] = ev["bits"]
                metrics[f"{split}_nats_per_char"] = ev["nll"]
            else:
                metrics[f"{split}_ppl"] = ev["ppl"]
        write_metrics(name, metrics, tracker)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("level", help="a key of lm.levels in params.yaml (word or char)")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()

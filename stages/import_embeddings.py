"""Stage import_embeddings: turn pretrained word vectors into a pipeline artifact.

    python -m stages.import_embeddings gnews

Reads the file of ``pretrained.sources.<name>`` (word2vec text or binary, e.g. the
GoogleNews vectors Bolukbasi et al. debiased); writes data/processed/embeddings/<name>/
(vectors.npy + vocab.tsv, zero rows for <pad>/<unk>/<eos>, then the file's words in its
order) and metrics/import_embeddings_<name>.json. Evaluate, debias, NER and sentiment
then take it by name like the vectors the pipeline trains itself.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import ConfigError
from pipeline.embeddings.pretrained import PretrainedConfig, import_pretrained
from stages._common import load_params, section, stage_main, stage_run, write_metrics

EMBEDDINGS = Path("data/processed/embeddings")


def run(args: argparse.Namespace) -> None:
    name = args.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"import_embeddings: bad artifact name {name!r} (a folder name)")
    params = load_params()
    cfg = section(params, "pretrained", PretrainedConfig)
    if name not in cfg.sources:
        known = ", ".join(sorted(cfg.sources)) or "none"
        raise ConfigError(f"pretrained.sources.{name}: not configured (known: {known})")
    source = cfg.sources[name]
    with stage_run(f"import_embeddings@{name}", source) as tracker:
        tracker.set_tags({"embedding": name})
        t0 = time.perf_counter()
        emb, stats = import_pretrained(source)
        with atomic_dir(EMBEDDINGS / name) as tmp:
            emb.save(tmp)
        stats["seconds"] = time.perf_counter() - t0
        write_metrics(f"import_embeddings_{name}", {"embedding": name, **stats}, tracker)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="an entry of pretrained.sources (e.g. gnews)")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_arguments)


if __name__ == "__main__":
    main()

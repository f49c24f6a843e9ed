"""Stage lab_scores: sentence probability under the word LM, for the pairs in ``conf/``.

For each pair of ``lab.scores.pairs`` (homophone choices of a speech recogniser,
agreement, word order; add your own), the log-probability of both sentences and the
surprisal of every token; writes ``reports/lm/scores.md`` and ``metrics/lab_scores.json``
(pairs, and how many the model ranks as expected).
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.core.atomic import atomic_open
from pipeline.core.errors import ConfigError
from pipeline.lab.scoring import ScoresConfig
from stages._common import load_params, section, stage_main, stage_run, write_metrics

REPORT = Path("reports/lm/scores.md")


def run(args) -> None:
    params = load_params()
    cfg = section(params, "lab.scores", ScoresConfig)
    if not cfg.pairs:
        raise ConfigError("lab.scores.pairs: no sentence pairs to score")
    start = time.perf_counter()
    with stage_run("lab_scores", cfg) as tracker:
        from pipeline.lab.scoring import pairs_markdown, score_pair
        from pipeline.seq.lm import load_language_model

        model, tokens, level = load_language_model(cfg.model_dir)
        if level != "word":
            raise ConfigError(f"lab.scores.model_dir: {cfg.model_dir} is a {level}-level model")
        scored = [score_pair(model, tokens, pair) for pair in cfg.pairs]
        with atomic_open(REPORT) as fh:
            fh.write(pairs_markdown(scored))
        judged = [s for s in scored if s["correct"] is not None]
        metrics = {
            "pairs": len(scored),
            "pairs_with_expectation": len(judged),
            "pairs_correct": sum(bool(s["correct"]) for s in judged),
            "seconds": time.perf_counter() - start,
        }
        write_metrics("lab_scores", metrics, tracker)
    print(f"{metrics['pairs_correct']} of {len(judged)} pairs ranked as expected -> {REPORT}")


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()

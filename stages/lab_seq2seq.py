"""Stage lab_seq2seq: many-to-many with Tx != Ty, English number words -> digits.

Trains an encoder-decoder (GRU or LSTM, dot attention) on numbers below
``lab.seq2seq.task.max_number`` and scores held-out numbers it never saw by exact match,
decoded greedily and with beam search. Writes ``reports/lab/seq2seq/examples.md`` and
``metrics/lab_seq2seq.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.lab.seq2seq import Seq2SeqStudy
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

REPORTS = Path("reports/lab/seq2seq")


def run(args) -> None:
    params = load_params()
    cfg = section(params, "lab.seq2seq", Seq2SeqStudy)
    start = time.perf_counter()
    with stage_run("lab_seq2seq", cfg) as tracker:
        import torch

        from pipeline.lab import seq2seq as s2s
        from pipeline.lab.plots import markdown_table

        if lookup(params, "lab.num_threads"):
            torch.set_num_threads(lookup(params, "lab.num_threads"))
        train_numbers, test_numbers = s2s.split_numbers(cfg.task)
        src, tgt = s2s.encode_pairs(train_numbers)
        test_src, _ = s2s.encode_pairs(test_numbers)
        torch.manual_seed(cfg.model.seed)
        model = s2s.Seq2Seq(cfg.model, len(s2s.input_vocabulary()))
        t0 = time.perf_counter()
        losses = s2s.train_seq2seq(model, src, tgt, cfg.model)
        train_s = time.perf_counter() - t0
        greedy = [s2s.digits_of(o) for o in s2s.greedy_decode(model, test_src, cfg.max_len)]
        beam = [
            s2s.digits_of(s2s.beam_search(model, s, cfg.beam_width, cfg.max_len)[0])
            for s in test_src
        ]
        em_greedy = s2s.exact_match(greedy, test_numbers)
        em_beam = s2s.exact_match(beam, test_numbers)
        wrong = [i for i, n in enumerate(test_numbers) if beam[i] != str(n)]
        shown = (wrong + [i for i in range(len(test_numbers)) if i not in set(wrong)])[
            : cfg.examples
        ]
        rows = [
            [
                " ".join(s2s.number_words(int(test_numbers[i]))),
                int(test_numbers[i]),
                greedy[i],
                beam[i],
            ]
            for i in shown
        ]
        with atomic_dir(REPORTS) as rep:
            (rep / "examples.md").write_text(
                "# Number words -> digits (held-out numbers)\n\n"
                f"{len(train_numbers)} training numbers, {len(test_numbers)} held out; "
                f"exact match greedy {em_greedy:.4f}, beam (width {cfg.beam_width}) {em_beam:.4f}.\n"
                "Errors first.\n\n"
                + markdown_table(["words (Tx)", "digits", "greedy", "beam"], rows),
                encoding="utf-8",
            )
        metrics = {
            "exact_match_greedy": em_greedy,
            "exact_match_beam": em_beam,
            "beam_width": cfg.beam_width,
            "train_examples": len(train_numbers),
            "test_examples": len(test_numbers),
            "final_train_loss": losses[-1],
            "train_seconds": train_s,
            "seconds": time.perf_counter() - start,
        }
        write_metrics("lab_seq2seq", metrics, tracker)
    print(f"exact match: greedy {em_greedy:.4f}, beam {em_beam:.4f}")


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()

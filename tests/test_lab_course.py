"""The course page: every line links a real output, and the checker finds a missing one."""

from __future__ import annotations

import json

from pipeline.lab.course import SYLLABUS, Evidence, Idea, broken_links, course_page


def test_syllabus_has_the_twenty_ideas():
    assert len(SYLLABUS) == 20
    assert all(idea.evidence for idea in SYLLABUS)


def _repo(tmp_path):
    (tmp_path / "reports/a").mkdir(parents=True)
    (tmp_path / "reports/a/plot.png").write_bytes(b"png")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/a.json").write_text(json.dumps({"acc": 0.91234, "n": 3}))
    return [
        Idea("GRU", (Evidence("reports/a/plot.png", "accuracy", "metrics/a.json", "acc"),)),
        Idea("LSTM", (Evidence("reports/b/missing.png", "never made", "metrics/a.json", "n"),)),
        Idea("Notation", (Evidence("reports/a/plot.png", "no number"),)),
    ]


def test_page_links_existing_outputs_and_lists_missing_ones(tmp_path):
    syllabus = _repo(tmp_path)
    text, missing = course_page(tmp_path, "reports/course/index.md", syllabus)
    assert missing == ["reports/b/missing.png"]
    assert "[reports/a/plot.png](../a/plot.png)" in text
    assert "**0.9123**" in text and "`metrics/a.json`: `acc`" in text
    assert "missing `reports/b/missing.png`" in text and "(../b/missing.png)" not in text
    page = tmp_path / "reports/course/index.md"
    page.parent.mkdir(parents=True)
    page.write_text(text)
    assert broken_links(page) == []


def test_a_removed_output_is_a_broken_link(tmp_path):
    syllabus = _repo(tmp_path)
    text, _ = course_page(tmp_path, "reports/course/index.md", syllabus)
    page = tmp_path / "reports/course/index.md"
    page.parent.mkdir(parents=True)
    page.write_text(text + "\n[web](https://example.org) [here](#top)\n")
    (tmp_path / "reports/a/plot.png").unlink()
    assert broken_links(page) == ["../a/plot.png", "../a/plot.png"]


def test_a_missing_metric_key_is_not_linked(tmp_path):
    syllabus = [Idea("x", (Evidence("reports/a/plot.png", "acc", "metrics/a.json", "nope"),))]
    _repo(tmp_path)
    text, missing = course_page(tmp_path, "index.md", syllabus)
    assert missing == ["metrics/a.json"] and "](" not in text

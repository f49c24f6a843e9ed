"""Stage lab_course: the course page, ``reports/course/index.md``.

Maps each idea of a sequence-models course (:data:`pipeline.lab.course.SYLLABUS`) to the
output of this run that shows it and its number (outputs of ``make run`` and of the
lab). An output not produced yet is listed as missing, not linked; then every link of
the written page is checked, and a broken one fails the stage.
"""

from __future__ import annotations

from pipeline.core.atomic import atomic_open
from pipeline.core.errors import DataError
from pipeline.lab.course import CourseConfig
from stages._common import load_params, section, stage_main, stage_run, write_metrics


def run(args) -> None:
    params = load_params()
    cfg = section(params, "lab.course", CourseConfig)
    with stage_run("lab_course", cfg) as tracker:
        from pipeline.lab.course import SYLLABUS, broken_links, course_page

        text, missing = course_page(".", cfg.page)
        with atomic_open(cfg.page) as fh:
            fh.write(text)
        broken = broken_links(cfg.page)
        if broken:
            raise DataError(f"{cfg.page}: links to missing outputs: {', '.join(broken)}")
        linked = sum(len(i.evidence) for i in SYLLABUS) - len(missing)
        metrics = {"ideas": len(SYLLABUS), "linked": linked, "missing": len(missing)}
        write_metrics("lab_course", metrics, tracker)
    print(text, end="")
    if missing:
        print(f"not produced by this run (run `make run` first): {', '.join(sorted(set(missing)))}")


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()

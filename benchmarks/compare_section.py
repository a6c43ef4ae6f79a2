"""Collect the comparison-suite reports (benchmarks/compare/*.md, made by run_compare.sh) into RESULTS.md."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, single_thread, write_section  # noqa: E402

TITLE = "## Comparison suite"
DESIGNS = ("lowdim", "demand", "demand_proxy")


def main() -> None:
    single_thread()
    parts = [
        TITLE,
        "",
        "Made by `bash benchmarks/run_compare.sh` (every applicable method, n = 5,000, seeds 0, 1, 2, one thread; "
        f"full per-fit tables in `benchmarks/compare/`). Machine: {machine()}. `lowdim` is the sin variant. "
        "econml's estimators give effects only; they are completed into structural functions as the "
        "`deepcausal.baselines` docstrings describe.",
        "",
    ]
    for design in DESIGNS:
        text = (RESULTS.parent / "compare" / f"{design}.md").read_text()
        summary = text.split("Every fit:")[0].strip()
        parts += [f"### {design}", "", summary, "", f"![{design}](compare/{design}.png)", ""]
    write_section(TITLE, "\n".join(parts))


if __name__ == "__main__":
    main()

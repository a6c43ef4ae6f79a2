"""Shared by the benchmark scripts: write one section of RESULTS.md, describe the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def single_thread() -> None:
    """One thread for torch and OpenMP/BLAS: 2-core machines slow down badly when oversubscribed."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}")


def write_section(title: str, text: str, path: Path = RESULTS, first: bool = False) -> None:
    """Replace (or append) the section headed ``title`` (e.g. "## DFIV") leaving the others alone.

    ``first``: a new section goes before every other section (after the file's introduction), not last.
    """
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == title), None)
    if start is None and first:
        at = next((i for i, ln in enumerate(lines) if ln.startswith("## ")), len(lines))
        new = "".join(lines[:at]).rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n\n" + "".join(lines[at:])
    elif start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    path.write_text(new)


def markdown_table(df) -> str:
    """A pandas DataFrame as a GitHub markdown table (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def diagnostic_main(doc: str, title: str, run, summarise, argv=None) -> None:
    """The command line a resumable diagnostic shares: fit what its CSV lacks (``run``) unless ``--summarise-only``,
    then write its section of RESULTS.md (``summarise`` returns the text) and print it."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        run()
    text = summarise()
    write_section(title, text)
    print(text)


def append_row(csv: Path, row: dict, columns) -> None:
    """Append one row to a resumable CSV; the first writer creates it with its header (opened in exclusive mode, so
    two shards that start together cannot both write one)."""
    import pandas as pd

    try:
        with open(csv, "x") as fh:
            fh.write(",".join(columns) + "\n")
    except FileExistsError:
        pass
    pd.DataFrame([row])[list(columns)].to_csv(csv, mode="a", header=False, index=False)


def sharded_main(doc: str, title: str, run, summarise, argv=None) -> None:
    """The command line of a diagnostic whose fits split between processes: ``--shard i/k`` fits every k-th item
    from the i-th (``run(i, k)``); the RESULTS section is written by an unsharded run or by ``--summarise-only``
    (after every shard has finished), never from one shard's part of the rows."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--shard", default="0/1", help="i/k: this process fits every k-th item from the i-th")
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        i, k = (int(v) for v in a.shard.split("/"))
        run(i, k)
        if k > 1:
            print("this shard is done; once every shard is, write the RESULTS section with --summarise-only")
            return
    text = summarise()
    write_section(title, text)
    print(text)


def bias_share(errors) -> float:
    """Squared bias over mean squared error, from R replications' errors at the same test points ((R, points) array:
    estimate − truth; NaN with fewer than two). The squared mean error over R replications overstates the squared
    bias by the mean's own variance, s²/R (s² the replications' variance at the point, ddof 1), which is taken off
    (at least 0)."""
    import numpy as np

    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or len(e) < 2:
        return float("nan")
    bias2 = np.maximum(e.mean(axis=0) ** 2 - e.var(axis=0, ddof=1) / len(e), 0.0)
    return float(np.mean(bias2) / np.mean(e**2))

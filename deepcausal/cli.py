"""The ``deepcausal`` console command.

    deepcausal bench --design demand --n 5000 --rho 0.5 --seeds 0,1,2 --methods dfiv,dmliv,naive \\
        --json out.json --markdown out.md --plot out.png
    deepcausal bench --design lowdim --methods all
    deepcausal bench --list
    deepcausal bench --list-designs

Results are rewritten to the JSON/markdown files after every fit, so an interrupted run keeps what
finished. Also runnable as ``python -m deepcausal.cli``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepcausal", description="deepcausal command-line tools")
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("bench", help="compare methods on benchmark designs",
                       description="Fit methods on benchmark designs and score the structural function.")
    b.add_argument("--list", action="store_true", help="list designs and methods, then exit")
    b.add_argument("--list-designs", action="store_true",
                   help="list each design with its kind and source (citation), one line each, then exit")
    b.add_argument("--design", default="demand",
                   help="design name(s), comma-separated, or 'all' (every design; default: demand)")
    b.add_argument("--methods", default="all", help="method names, comma-separated, or 'all' (default)")
    b.add_argument("--seeds", default="0", help="comma-separated integer seeds (default: 0)")
    b.add_argument("--n", type=int, default=5000, help="training rows (default: 5000)")
    b.add_argument("--rho", type=float, default=0.5, help="confounding strength of demand (default: 0.5)")
    b.add_argument("--json", help="write the results table here (JSON records), after every fit")
    b.add_argument("--markdown", help="write a markdown report here, after every fit")
    b.add_argument("--plot", help="write a PNG: estimates vs truth and MSE per method")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _list() -> str:
    """Designs, then one plain-text line per method: name, design kind, description, notes.

    The notes name what the method needs; a dependency that is not installed is marked NOT INSTALLED
    with the command that installs it.
    """
    from . import baselines
    from .benchmark import DESIGNS, design_kind

    lines = ["designs:"]
    lines += [f"  {d:<16} {design_kind(d)}" for d in DESIGNS]
    lines.append("methods:")
    for name, cls in baselines.REGISTRY.items():
        notes = []
        missing = baselines.missing_dependencies(name)
        if missing:
            notes.append(f"{', '.join(missing)} NOT INSTALLED: {baselines.install_command(missing)}")
        elif baselines.requires_econml(name):
            notes.append("econml")
        if cls.requires_covariates:
            notes.append("needs covariates")
        if getattr(cls, "single_instrument", False):
            notes.append("one instrument")
        if cls.tabular_only:
            notes.append("tabular only")
        lines.append(f"  {name:<16} {'/'.join(sorted(cls.kinds)):<6} {cls.description}"
                     + (f"  [{'; '.join(notes)}]" if notes else ""))
    return "\n".join(lines)


def _list_designs() -> str:
    """One plain-text line per design: name, kind ("iv"/"proxy") and the source it follows."""
    from .benchmark import DESIGNS, design_kind, design_source

    width = max(len(d) for d in DESIGNS)
    return "\n".join(f"{d:<{width}}  {design_kind(d):<5}  {design_source(d)}" for d in DESIGNS)


def _cell(v) -> str:
    """A table cell: floats to 4 significant digits, a missing value (e.g. no spread over one seed) as –."""
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    return str(v)


def _markdown(df, command: str) -> str:
    from .benchmark import summary

    def table(frame):
        cols = [str(c) for c in frame.columns]
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in frame.itertuples(index=False):
            out.append("| " + " | ".join(_cell(v) for v in r) + " |")
        return "\n".join(out)

    return (f"Command: `{command}`\n\nSummary (structural MSE over seeds; fit seconds: median; peak RSS: max "
            f"increase during a fit, MB):\n\n{table(summary(df))}\n\nEvery fit:\n\n{table(df)}\n")


def _write_atomic(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, path)


def _bench(args) -> int:
    from .baselines import NotApplicableError
    from .benchmark import resolve_methods, run

    designs = [d.strip() for d in args.design.split(",") if d.strip()]
    if designs == ["all"]:
        from .benchmark import all_designs

        designs = all_designs()
    methods = "all" if args.methods.strip() == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"deepcausal bench: error: --seeds must be comma-separated integers, got {args.seeds!r}", file=sys.stderr)
        return 2
    try:
        plan = resolve_methods(designs, methods)
    except (ValueError, NotApplicableError, ImportError) as exc:
        print(f"deepcausal bench: error: {exc}", file=sys.stderr)
        return 2
    for d, ms in plan.items():
        print(f"{d}: {', '.join(ms) if ms else '(no applicable method)'}", file=sys.stderr)
    if methods == "all":
        from . import baselines

        skipped = [m for m in baselines.REGISTRY if baselines.missing_dependencies(m)]
        if skipped:
            print(f"not installed, skipped: {', '.join(skipped)} (see deepcausal bench --list)", file=sys.stderr)

    import pandas as pd

    command = "deepcausal bench " + " ".join(args.argv)
    rows, predictions, drawn = [], {}, {}

    def on_result(row, pred, design):
        rows.append(row)
        predictions[(row["design"], row["method"], row["seed"])] = pred
        drawn[(row["design"], row["seed"])] = design
        df = pd.DataFrame(rows)
        if args.json:
            _write_atomic(args.json, json.dumps({"command": command, "results": df.to_dict("records")}, indent=1))
        if args.markdown:
            _write_atomic(args.markdown, _markdown(df, command))

    try:
        df = run(designs, methods, seeds, n=args.n, rho=args.rho, progress=not args.no_progress, on_result=on_result)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(rows)} finished fits are saved", file=sys.stderr)
        df = pd.DataFrame(rows)
        if df.empty:
            return 130
    except ImportError as exc:  # a dependency that is present but fails to import: one line, no traceback
        print(f"deepcausal bench: error: a method could not import what it needs ({exc}); "
              f"{len(rows)} finished fits are saved", file=sys.stderr)
        return 2
    if args.plot and not df.empty:
        from .benchmark import plot

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(df, predictions, drawn, args.plot)
    if not df.empty:
        from .benchmark import summary

        print(summary(df).to_string(index=False, na_rep="–"))
    return 0


def main(argv=None) -> int:
    """Entry point of the ``deepcausal`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "bench":
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv[1:]
    if args.list:
        print(_list())
        return 0
    if args.list_designs:
        print(_list_designs())
        return 0
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())

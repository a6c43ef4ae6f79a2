"""Generate the tutorial notebooks from their percent-format sources, and execute them at full size.

The ``NN_*.py`` files beside this script are the sources (jupytext's percent format: ``# %%`` starts a
code cell, ``# %% [markdown]`` a text cell). Each ``NN_*.ipynb`` is generated from its source and run top
to bottom in a fresh kernel (working directory ``tutorials/``, one thread), outputs saved. Needs the
``[notebooks]`` extra (jupytext, nbclient, ipykernel). From the repository root::

    python tutorials/build.py                # all the notebooks
    python tutorials/build.py 02 03          # those whose name contains 02 or 03
    python tutorials/build.py --no-execute   # regenerate without running (no outputs)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sources() -> list:
    """The notebook sources, in reading order."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def build(source: Path, execute: bool = True, timeout: int = 1800) -> Path:
    """Write ``source``'s notebook next to it (executed when ``execute``); returns its path."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    if execute:
        # The kernel inherits the environment: one thread (small networks run fastest so), full size,
        # and this checkout's deepcausal ahead of any other installed copy.
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ.pop("DEEPCAUSAL_NOTEBOOK_SMALL", None)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    target = source.with_suffix(".ipynb")
    jupytext.write(nb, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="only the notebooks whose file name contains one of these")
    parser.add_argument("--no-execute", action="store_true", help="generate the notebooks without running them")
    args = parser.parse_args(argv)
    for source in sources():
        if args.only and not any(s in source.name for s in args.only):
            continue
        start = time.perf_counter()
        target = build(source, execute=not args.no_execute)
        print(f"wrote {target.name} ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

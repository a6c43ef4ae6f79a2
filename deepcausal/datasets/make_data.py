"""Write the example CSVs of ``data/`` (bit-for-bit reproducible).

Run from the repository root::

    python -m deepcausal.datasets.make_data            # writes data/demand_iv.csv, data/demand_pcl.csv
    python -m deepcausal.datasets.make_data --out DIR  # somewhere else
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._demand import demand, demand_proxy

FLOAT_FORMAT = "%.10g"
N_ROWS = 5000


def example_frames():
    """The example data sets: file name → DataFrame."""
    return {
        "demand_iv.csv": demand(N_ROWS, rho=0.5, seed=0).train,
        "demand_pcl.csv": demand_proxy(N_ROWS, seed=0).train,
    }


def write_example_data(out_dir="data") -> list[Path]:
    """Write the example CSVs into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in example_frames().items():
        path = out / name
        # Fixed float format and line ending, so the bytes do not depend on the platform.
        frame.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        paths.append(path)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data", help="output folder (default: data)")
    args = parser.parse_args(argv)
    for path in write_example_data(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

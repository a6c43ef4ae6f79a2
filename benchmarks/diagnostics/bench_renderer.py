"""Speed (and, when the reference frames are present, fidelity) of the dSprites heart renderer.

Run from the repository root on one core::

    OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_renderer.py

Targets (issue 3): the 588-image test grid in under 2 s and 10,000 training images in under 10 s on one
core; against the 174 real frames, at least 99.8% of pixels agree and at least 80% of frames are
identical. Writes its figures to the "## Heart renderer" section of benchmarks/RESULTS.md (replacing
only that section).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _results import RESULTS, ROOT, write_section  # noqa: E402

from deepcausal.datasets import render_hearts  # noqa: E402
from deepcausal.datasets._dsprites import _test_ids  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference" / "dsprites_gif_hearts.npz"
SECTION = "## Heart renderer"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_renderer.py"


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def measure(repeats: int) -> dict:
    test_ids = _test_ids()
    rng = np.random.default_rng(0)
    n = 10_000
    train_ids = [rng.integers(0, 32, n), rng.integers(0, 32, n), rng.integers(0, 6, n), rng.integers(0, 40, n)]
    pos_x, pos_y, scale, orient = train_ids

    t0 = time.perf_counter()
    render_hearts(*test_ids.T)  # first (cold) call, includes building the outline
    cold = time.perf_counter() - t0
    grid = _time(lambda: render_hearts(*test_ids.T), repeats)
    train = _time(lambda: render_hearts(scale, orient, pos_x, pos_y), repeats)
    result = {"cold_grid": cold, "grid": grid, "train": train}

    if REFERENCE.exists():
        ref = np.load(REFERENCE)
        ids = ref["latents_classes_scale_orient_posX_posY"]
        differ = render_hearts(*ids.T) != ref["imgs"]
        result["fidelity"] = {
            "frames": len(ids),
            "pixels": differ.size,
            "pixels_differ": int(differ.sum()),
            "foreground": int(ref["imgs"].sum()),
            "pixel_agreement": 1.0 - differ.mean(),
            "identical": int(np.sum(differ.sum(axis=(1, 2)) == 0)),
        }
    return result


def render_section(r: dict, repeats: int) -> str:
    g, t = r["grid"], r["train"]
    lines = [
        SECTION,
        "",
        f"Command: `{COMMAND}` (from the repository root).",
        f"Machine: {_cpu_name()}, Python {platform.python_version()}, numpy {np.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {datetime.date.today().isoformat()}.",
        "",
        f"Speed, {repeats} repeats after a warm-up call (seconds):",
        "",
        "| workload | median | best | target |",
        "|---|---|---|---|",
        f"| 588-image test grid | {statistics.median(g):.3f} | {min(g):.3f} | < 2 |",
        f"| 10,000 random training images | {statistics.median(t):.3f} | {min(t):.3f} | < 10 |",
        "",
        f"First (cold) call on the test grid: {r['cold_grid']:.3f} s.",
        "",
    ]
    f = r.get("fidelity")
    if f is None:
        lines.append(f"Fidelity: reference frames not found at `{REFERENCE}`; not measured in this run.")
    else:
        lines += [
            f"Fidelity against {f['frames']} real dSprites heart frames (`../shared/reference/dsprites_gif_hearts.npz`):",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| pixels that agree | {100 * f['pixel_agreement']:.4f}% ({f['pixels_differ']} of {f['pixels']:,} differ;"
            f" {f['foreground']:,} foreground pixels) | ≥ 99.8% |",
            f"| pixel-identical frames | {f['identical']}/{f['frames']} ({100 * f['identical'] / f['frames']:.1f}%) | ≥ 80% |",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    r = measure(args.repeats)
    text = render_section(r, args.repeats)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote the '{SECTION}' section of {RESULTS}")
    ok = statistics.median(r["grid"]) < 2 and statistics.median(r["train"]) < 10
    if "fidelity" in r:
        f = r["fidelity"]
        ok = ok and f["pixel_agreement"] >= 0.998 and f["identical"] / f["frames"] >= 0.8
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

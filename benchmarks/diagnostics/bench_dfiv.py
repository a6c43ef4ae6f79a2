"""DFIV benchmarks of issue 4, written to benchmarks/RESULTS.md.

    python benchmarks/diagnostics/bench_dfiv.py demand              # demand rho 0.5/0.9 and lowdim, n = 5,000
    python benchmarks/diagnostics/bench_dfiv.py dsprites --seeds 0  # dSprites IV, n = 10,000, batch-size sweep

Every fit runs on one CPU thread. Hyper-parameters are the estimator's defaults (chosen on a held-out
split of the training rows, see the DFIV docstring); nothing here looks at the test truth except the
final score.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _results import RESULTS, machine, markdown_table, single_thread, write_section  # noqa: E402

single_thread()

from deepcausal import DFIV  # noqa: E402
from deepcausal.datasets import demand, dsprites, lowdim  # noqa: E402


def _fit(design, **params):
    start = time.perf_counter()
    est = DFIV(**params)
    if design.train is not None:
        est.fit(design.train, **design.fit_kwargs())
        inputs = (design.test_X,)
    else:
        est.fit(**design.array_kwargs())
        inputs = (design.test_X["treatment"],)
    seconds = time.perf_counter() - start
    return {
        "mse_refit": design.score(est.predict(*inputs)),
        "mse_current": design.score(est.predict(*inputs, heads="current")),
        "seconds": seconds,
    }


def _naive_lowdim(design) -> float:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(random_state=0).fit(design.train[["t"]], design.train["y"])
    return design.score(model.predict(design.test_X[["t"]]))


def _summary(df: pd.DataFrame, by: list, value: str = "mse_refit") -> pd.DataFrame:
    g = df.groupby(by, sort=False)
    return pd.DataFrame({
        "median MSE": g[value].median(), "min": g[value].min(), "max": g[value].max(),
        "median fit s": g["seconds"].median(), "seeds": g["seed"].count(),
    }).round(2).reset_index()


def run_demand(seeds, out_csv: Path) -> str:
    rows = []
    for rho in (0.5, 0.9):
        for seed in seeds:
            d = demand(n=5000, rho=rho, seed=seed)
            for label, params in (("default (proximal)", {}), ("ridge (full batch)", {"mode": "ridge"})):
                r = _fit(d, random_state=seed, **params)
                rows.append({"design": f"demand rho={rho}", "method": label, "seed": seed, **r})
                print(rows[-1], flush=True)
                pd.DataFrame(rows).to_csv(out_csv, index=False)
    for g in ("abs", "linear", "sin", "step"):
        for seed in seeds:
            d = lowdim(n=5000, g=g, seed=seed)
            rows.append({"design": f"lowdim {g}", "method": "default (proximal)", "seed": seed, **_fit(d, random_state=seed)})
            start = time.perf_counter()
            rows.append({"design": f"lowdim {g}", "method": "naive boosted trees (ignores z)", "seed": seed,
                         "mse_refit": _naive_lowdim(d), "mse_current": np.nan, "seconds": time.perf_counter() - start})
            print(rows[-2:], flush=True)
            pd.DataFrame(rows).to_csv(out_csv, index=False)
    df = pd.DataFrame(rows)
    table = _summary(df, ["design", "method"])
    return (
        "## DFIV: demand and lowdim\n\n"
        f"Command: `python benchmarks/diagnostics/bench_dfiv.py demand --seeds {','.join(map(str, seeds))}` "
        f"(raw rows: `{out_csv.relative_to(RESULTS.parent.parent)}`).\n"
        f"Machine: {machine()}.\n\n"
        "n = 5,000; structural MSE of the refit heads on the design's test set (demand: 2,800-point grid, "
        "Var f ≈ 32,644; lowdim: 1,000 draws). Target for the default on demand rho = 0.5: median MSE ≤ 40 and "
        "median fit ≤ 15 s; on every lowdim design the default must beat the naive regression.\n\n"
        + markdown_table(table) + "\n"
    )


def run_dsprites(seeds, epochs: int, out_csv: Path) -> str:
    configs = []
    for bs in (64, 256, 1024):
        configs.append((f"proximal, batch {bs}", dict(batch_size=bs, n_epochs=epochs)))
        configs.append((f"per-batch ridge (all λ = 0), batch {bs}",
                        dict(batch_size=bs, n_epochs=epochs, lam1=0.0, lam2=0.0, lam12=0.0)))
    configs.append(("full-batch ridge (mode='ridge')", dict(mode="ridge")))
    rows = []
    for seed in seeds:
        d = dsprites(n=10000, seed=seed)
        for label, params in configs:
            rows.append({"method": label, "seed": seed, **_fit(d, random_state=seed, **params)})
            print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(out_csv, index=False)
    df = pd.DataFrame(rows)
    g = df.groupby("method", sort=False)
    table = pd.DataFrame({
        "median MSE current heads": g["mse_current"].median(), "median MSE refit heads": g["mse_refit"].median(),
        "current / refit": (g["mse_current"].median() / g["mse_refit"].median()),
        "median wall s": g["seconds"].median(), "seeds": g["seed"].count(),
    }).round(3).reset_index()
    var_f = dsprites(n=100, seed=0).test_truth.var()
    return (
        "## DFIV: dSprites batch sizes\n\n"
        f"Command: `python benchmarks/diagnostics/bench_dfiv.py dsprites --seeds {','.join(map(str, seeds))} --epochs {epochs}` "
        f"(raw rows: `{out_csv.relative_to(RESULTS.parent.parent)}`).\n"
        f"Machine: {machine()}.\n\n"
        f"dSprites IV (position structural function), n = 10,000, 588 test images, Var f on the test grid = "
        f"{var_f:.2f}. Minibatch runs use {epochs} epochs; the full-batch ridge mode its default 100 epochs "
        "(20/20/1 steps per epoch).\n\n" + markdown_table(table) + "\n"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["demand", "dsprites"])
    parser.add_argument("--seeds", default=None, help="comma-separated (default: 0-4 demand, 0-2 dsprites)")
    parser.add_argument("--epochs", type=int, default=20, help="dSprites minibatch epochs")
    args = parser.parse_args(argv)
    default = "0,1,2,3,4" if args.part == "demand" else "0,1,2"
    seeds = [int(s) for s in (args.seeds or default).split(",")]
    out_csv = Path(__file__).resolve().parent / f"dfiv_{args.part}.csv"
    if args.part == "demand":
        text = run_demand(seeds, out_csv)
        title = "## DFIV: demand and lowdim"
    else:
        text = run_dsprites(seeds, args.epochs, out_csv)
        title = "## DFIV: dSprites batch sizes"
    print(text)
    write_section(title, text)


if __name__ == "__main__":
    main()

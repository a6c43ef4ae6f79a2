"""The DFIV paper's main figure, reproduced: dSprites structural MSE against training steps.

    python benchmarks/bench_figure.py --seed 0 --epochs 20

Trains DFIV on dSprites IV (n = 10,000) at batch sizes 64 / 256 / 1,024 with the proximal heads and
with per-batch ridge heads (all λ = 0), recording after every epoch the structural MSE on the 588 test
images with the current heads and with heads refit on all data (``history_`` with ``validation``; the
test truth is only recorded, never used for training or selection). Writes
``benchmarks/figure_dsprites_steps.png``, the numbers to ``benchmarks/figure_dsprites_steps.csv`` and a
section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, markdown_table, single_thread, write_section  # noqa: E402

single_thread()

from deepcausal import DFIV  # noqa: E402
from deepcausal.datasets import dsprites  # noqa: E402

OUT = RESULTS.parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args(argv)

    d = dsprites(n=args.n, seed=args.seed)
    kw = d.array_kwargs()
    validation = (d.test_X["treatment"], None, d.test_truth)
    rows = []
    for bs in (64, 256, 1024):
        for label, lam in (("proximal", {}), ("per-batch ridge", dict(lam1=0.0, lam2=0.0, lam12=0.0))):
            est = DFIV(batch_size=bs, n_epochs=args.epochs, random_state=args.seed, **lam)
            est.fit(kw["Y"], kw["T"], Z=kw["Z"], validation=validation)
            steps_per_epoch = math.ceil((args.n // 2) / bs)
            for _, h in est.history_.iterrows():
                rows.append({"batch": bs, "heads": label, "steps": int(h["epoch"]) * steps_per_epoch,
                             "mse_current": h["val_mse_current"], "mse_refit": h["val_mse_refit"]})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "figure_dsprites_steps.csv", index=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, bs in zip(axes, (64, 256, 1024)):
        sub = df[df["batch"] == bs]
        prox, ridge = sub[sub["heads"] == "proximal"], sub[sub["heads"] == "per-batch ridge"]
        ax.plot(ridge["steps"], ridge["mse_current"], label="per-batch ridge (current heads)")
        ax.plot(prox["steps"], prox["mse_current"], label="proximal (current heads)")
        ax.plot(prox["steps"], prox["mse_refit"], "--", label="proximal (refit heads)")
        ax.set(title=f"batch {bs}", xlabel="training steps", yscale="log")
    axes[0].set_ylabel("structural MSE (588 test images)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "figure_dsprites_steps.png", dpi=110)

    final = df.groupby(["batch", "heads"], sort=False).tail(1)[["batch", "heads", "steps", "mse_current", "mse_refit"]]
    text = (
        "## DFIV: MSE against training steps (the paper's main figure)\n\n"
        f"Command: `python benchmarks/bench_figure.py --seed {args.seed} --epochs {args.epochs} --n {args.n}` "
        "(numbers: `benchmarks/figure_dsprites_steps.csv`).\n"
        f"Machine: {machine()}.\n\n"
        f"dSprites IV, n = {args.n}, seed {args.seed}, {args.epochs} epochs at every batch size (so small batches "
        "take more steps). The test truth is only recorded after each epoch.\n\n"
        "![MSE against steps](figure_dsprites_steps.png)\n\nFinal values:\n\n" + markdown_table(final) + "\n"
    )
    print(text)
    write_section("## DFIV: MSE against training steps (the paper's main figure)", text)


if __name__ == "__main__":
    main()

"""Speed against the original code at equal accuracy (issue 29).

The like-for-like comparison a user makes: how long does one default deepcausal member take to reach the
accuracy the original research code reaches, against the original code's own fit time? Per design and seed:

* **Original fit.** As ``bench_reference.py`` runs it: the original repository's generator draws the training
  set, their trainer with their config fits it (timed to the end of its final head fit), and its structural MSE
  on their test set is the target.
* **deepcausal member.** ``DFIV(n_estimators=1, random_state=seed)`` / ``DFPV(...)`` on the same arrays, with the
  test truth tracked at every check (``validation=``: it records the structural MSE of the heads refit at that
  check and chooses nothing). The time to accuracy is the training time up to the first check whose MSE is at
  most the original's (the tracking's own time subtracted), plus what a fit does after training (refit,
  summaries, bootstrap; measured at the end of the same fit). A member that never reaches it counts with its
  whole fit time and is marked.

Ratio = original seconds / deepcausal seconds to accuracy, per seed; the table gives medians. One thread.
Clone the original repositories as ``bench_reference.py``'s docstring says, then::

    python benchmarks/bench_equal_accuracy.py --reference-dir ~/reference [--seeds 0,1,2] [--only dfiv|dfpv]

Writes ``## Speed against the original code at equal accuracy`` in RESULTS.md (raw rows:
``benchmarks/equal_accuracy.csv``).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before numpy/torch are imported
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reference import (NEEDED, REPOS, ROOT, _fit_reference_dfiv, _fit_reference_dfpv, _git_head,  # noqa: E402
                             _warm_up, check_reference_dir, machine, mse, reference_code, write_section)

TITLE = "## Speed against the original code at equal accuracy"
CSV = ROOT / "benchmarks" / "equal_accuracy.csv"


def time_to_accuracy(fit, target: float) -> dict:
    """Run ``fit()`` (a default member with ``validation=``) and find when its tracked MSE first reached ``target``.

    The tracking (``deepcausal._training.validation_mse``) is timed and subtracted; the time after the last check
    (the refit, summaries and bootstrap every fit does) is added to the time of the check that reached the target."""
    from deepcausal import _training

    original, spent, at_check = _training.validation_mse, [0.0], []
    start = time.perf_counter()

    def timed(*args, **kwargs):
        t = time.perf_counter()
        at_check.append(t - start - spent[0])
        out = original(*args, **kwargs)
        spent[0] += time.perf_counter() - t
        return out

    _training.validation_mse = timed
    try:
        est = fit()
    finally:
        _training.validation_mse = original
    total = time.perf_counter() - start - spent[0]
    mses = est.history_["val_mse_refit"].to_numpy()
    after = total - at_check[-1]  # refit, summaries and bootstrap after the last check
    hit = np.flatnonzero(mses <= target)
    reached = hit.size > 0
    seconds = (at_check[hit[0]] + after) if reached else total
    return dict(ours_s=seconds, ours_total_s=total, reached=reached, ours_mse_at=float(mses[hit[0]]) if reached else
                float(mses[-1]), ours_step=int(est.history_["step"].iloc[hit[0]]) if reached else
                int(est.history_["step"].iloc[-1]), ours_final_mse=float(mses[-1]))


def run(design: str, repo: Path, seeds) -> list:
    import deepcausal

    rows = []
    with reference_code(repo), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if design == "dfiv":
            config = json.loads((repo / NEEDED["dfiv"][1]).read_text())
            params = dict(config["train_params"])
            data_config = {"data_name": "demand", "data_size": 5000, "rho": 0.5}
            data_mod = importlib.import_module("src.data")
            trainer_mod = importlib.import_module("src.models.DFIV.trainer")
            test = data_mod.generate_test_data(**data_config)
        else:
            config = json.loads((repo / NEEDED["dfpv"][1]).read_text())
            params = {k: v for k, v in config["model"].items() if k != "name"}
            data_config = dict(config["data"], n_sample=5000)
            ate = importlib.import_module("src.data.ate")
            trainer_mod = importlib.import_module("src.models.DFPV.trainer")
            test_org = ate.generate_test_data_ate(data_config=data_config)
        for seed in seeds:
            if design == "dfiv":
                train = data_mod.generate_train_data(rand_seed=seed, **data_config)
                pred, sec, _ = _fit_reference_dfiv(trainer_mod, data_config, params, train, test, seed)
                target = mse(pred, test.structural)
                fit = lambda: deepcausal.DFIV(n_estimators=1, random_state=seed, verbose=False).fit(  # noqa: E731
                    train.outcome, train.treatment, X=train.covariate, Z=train.instrumental[:, :1],
                    validation=(test.treatment, test.covariate, test.structural))
            else:
                pre = ate.get_preprocessor_ate(data_config.get("preprocess", "Identity"))
                train = pre.preprocess_for_train(ate.generate_train_data_ate(data_config=data_config, rand_seed=seed))
                test = pre.preprocess_for_test_input(test_org)
                _, pred, sec = _fit_reference_dfpv(trainer_mod, data_config, params, train, test, pre, seed)
                target = mse(pred, test_org.structural)
                extra = {} if train.backdoor is None else {"X": train.backdoor}
                fit = lambda: deepcausal.DFPV(n_estimators=1, random_state=seed, verbose=False).fit(  # noqa: E731
                    train.outcome, train.treatment, Z=train.treatment_proxy, W=train.outcome_proxy, **extra,
                    validation=(test.treatment, None, test_org.structural))
            row = dict(design=design, seed=seed, original_s=sec, original_mse=target, **time_to_accuracy(fit, target))
            row["ratio"] = row["original_s"] / row["ours_s"]
            print(row, flush=True)
            rows.append(row)
    return rows


def section(df: pd.DataFrame, command: str, refs: dict) -> str:
    lines = [TITLE, "", f"Command: `{command}` (from the repository root).", f"Machine: {machine()}, OMP threads 1.", "",
             "One default member against the original code on the original repository's data and test set (script "
             "docstring): `to accuracy` is the member's training time until its tracked structural MSE (heads refit) "
             "first reaches the original fit's MSE of the same seed, plus its post-training time; `ratio` = original "
             "seconds / that time. Medians over seeds. Target (issue 29): ratio ≥ 5× for DFIV and for DFPV.", "",
             "| design | seeds | original s | original MSE | deepcausal to accuracy s | step reached | whole member s | "
             "member's final MSE | ratio | reached |", "|---|---|---|---|---|---|---|---|---|---|"]
    for design, g in df.groupby("design", sort=False):
        lines.append(f"| {design.upper()} | {len(g)} | {g['original_s'].median():.1f} | {g['original_mse'].median():.4g} | "
                     f"{g['ours_s'].median():.2f} | {int(g['ours_step'].median())} | {g['ours_total_s'].median():.1f} | "
                     f"{g['ours_final_mse'].median():.4g} | {g['ratio'].median():.1f}× | {int(g['reached'].sum())}/{len(g)} |")
    lines += ["", "Original code: " + "; ".join(f"[liyuan9988/{REPOS[d]}](https://github.com/liyuan9988/{REPOS[d]}) at "
                                                f"{refs[d]} with `{NEEDED[d][1]}`" for d in refs) + ".", "",
              "Per seed: " + "; ".join(f"{r.design} s{r.seed}: original {r.original_s:.1f} s (MSE {r.original_mse:.4g}), "
                                       f"deepcausal {r.ours_s:.2f} s to MSE {r.ours_mse_at:.4g} at step {r.ours_step}"
                                       for r in df.itertuples()) + ".", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-dir", required=True, type=Path)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", choices=sorted(REPOS))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    designs = [args.only] if args.only else ["dfiv", "dfpv"]
    problems = check_reference_dir(args.reference_dir, designs)
    if problems:
        raise SystemExit("\n".join(problems))
    torch.set_num_threads(1)
    _warm_up()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, refs = [], {}
    for design in designs:
        repo = args.reference_dir / REPOS[design]
        refs[design] = _git_head(repo)
        rows += run(design, repo, seeds)
    df = pd.DataFrame(rows)
    command = "python benchmarks/bench_equal_accuracy.py --reference-dir ~/reference --seeds " + args.seeds + (
        f" --only {args.only}" if args.only else "")
    text = section(df, command, refs)
    if not args.no_write:
        df.to_csv(CSV, index=False)
        write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()

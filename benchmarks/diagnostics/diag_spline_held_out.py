"""Can the held-out rows tell horowitz's wrong cubics from the good splines? (issue 35, information; no rule is stated
and no default changes)

On horowitz seeds 44 and 48 the default's shape step reports Lepski's cubic at MSE 0.877 and 0.072, where the line
scores about 0.017 ("The spline in t only where its first stage is strong"); on chen_christensen_severe, our kink
and smooth designs and kiv_sigmoid the spline it reports is the best curve. A cut on the spline's first-stage strength
could not tell the two kinds apart. This asks whether the members' held-out rows can: for each fit, the paired
difference of the spline's and the line's squared projected residuals on each member's stage-2 held-out rows (the
residuals the package already computes, ``candidates_["sieve"]["held_out"]`` and ``candidates_["held_out"][0]``),
pooled over the members whose Lepski choice is a spline, as z = mean / (sd / √n) (negative: the spline predicts the
held-out rows better). Also the reported curve at the ends of the test grid against the truth.

Fits: ``DFIV(random_state=seed, n_jobs=1)``, one each, at seeds where the default reported the spline in
``eval_outlier_members`` (44) or ``eval_spline_strength`` (47, 48). The truth only scores.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_spline_held_out.py`` (from the repository root; about a
minute; no CSV).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _continuous_iv import design  # noqa: E402
from _results import diagnostic_main, machine, markdown_table  # noqa: E402

TITLE = "## Diagnosis: the held-out rows and horowitz's wrong cubics (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_spline_held_out.py"
FITS = [("horowitz", 44), ("horowitz", 48), ("chen_christensen_severe", 47), ("kink_covariates", 47),
        ("kiv_sigmoid", 47), ("smooth_two_instruments", 47)]
ROWS: list = []


def run():
    from deepcausal import DFIV

    for name, seed in FITS:
        d = design(name, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DFIV(random_state=seed, n_jobs=1, verbose=False).fit(d.train, **d.fit_kwargs())
            pred = np.asarray(est.predict(d.test_X), dtype=np.float64).ravel()
        D = [s["held_out"].cpu().numpy() ** 2 - m.candidates_["held_out"][0].cpu().numpy() ** 2
             for m in est.estimators_ for s in [m.candidates_.get("sieve") or {}] if s.get("knots_count") is not None]
        D = np.concatenate(D) if D else np.array([])
        t = np.asarray(d.test_X[d.roles["treatment"][0]], dtype=np.float64)
        ends = [int(np.argmin(t)), int(np.argmax(t))]
        ROWS.append(dict(design=name, seed=seed, reported=est.complexity_["label"], mse=d.score(pred),
                         spline_members=sum(1 for m in est.estimators_
                                            if (m.candidates_.get("sieve") or {}).get("knots_count") is not None),
                         held_out_z=float(D.mean() / (D.std(ddof=1) / np.sqrt(len(D)))) if len(D) > 1 else np.nan,
                         ends=", ".join(f"t={t[i]:.3g}: {pred[i]:.3g} (truth {d.test_truth[i]:.3g})" for i in ends)))


def summarise() -> str:
    if not ROWS:
        run()
    df = pd.DataFrame(ROWS)
    bad = df[(df["design"] == "horowitz")]
    good = df[(df["design"] != "horowitz")]
    return "\n".join([
        TITLE, "", f"Command: `{COMMAND}`", "", f"Machine: {machine()}.", "",
        "See the script's docstring. held_out_z: the spline's squared projected residuals minus the line's on the "
        "members' held-out rows, pooled over the members whose choice is a spline (negative: the spline predicts them "
        "better); ends: the reported curve at the lowest and the highest test treatment.", "",
        markdown_table(df), "",
        f"- horowitz's reported cubics (MSE {', '.join(f'{v:.3g}' for v in bad['mse'])}) predict the held-out rows "
        f"better than the line (z {', '.join(f'{v:.2g}' for v in bad['held_out_z'])}); the good splines are "
        f"indistinguishable from it there (z {good['held_out_z'].min():.2g} to {good['held_out_z'].max():.2g}). A "
        "guard that asked the spline not to predict the held-out rows worse than the line would keep the wrong cubics "
        "and the good ones alike: what the projection sees (E[h(T) | Z]) the wrong cubic fits, and its error lies in "
        "the directions the instruments barely move, at the ends of t. No rule is stated.",
    ]) + "\n"


if __name__ == "__main__":
    diagnostic_main(__doc__, TITLE, run, summarise)

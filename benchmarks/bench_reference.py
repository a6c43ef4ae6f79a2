"""Speed against the original code: the DFIV and DFPV research code beside deepcausal's defaults.

The original implementations are not part of this repository and this script downloads nothing. Clone the two
public repositories into one directory (any directory outside this repository)::

    mkdir -p ~/reference && cd ~/reference
    git clone https://github.com/liyuan9988/DeepFeatureIV
    git clone https://github.com/liyuan9988/DeepFeatureProxyVariable

then run from the repository root (one torch/BLAS thread per fit is set by the script)::

    python benchmarks/bench_reference.py --reference-dir ~/reference [--seeds 0,1,2] [--only dfiv|dfpv]
        [--n 5000] [--n-epochs N] [--members-only] [--variants width8,width4,iter221] [--no-write]

What runs, per design and seed (implementations alternate: original s0, deepcausal s0, original s1, ...):

* **Data.** The original repository's own generator draws the training set for the seed (DFIV: its demand design,
  rho = 0.5; DFPV: its demand proxy design). deepcausal is fitted on exactly those arrays.
  DFIV roles: outcome, treatment = price, instrument Z = cost (column 0 of their ``instrumental``; its other
  columns are the covariates), covariates X = (time, customer type). DFPV roles: outcome, treatment A = price,
  treatment proxy Z = (cost1, cost2), outcome proxy W = views.
* **Original fit.** Their trainer class (``DFIVTrainer`` / ``DFPVTrainer``) with the training parameters of their
  own config file (``final_configs/dfiv_low_dim/configs.json``; ``configs/dfpv.json``), numpy's and torch's global
  seeds set to the seed first. DFIV's ``train()`` generates its data itself; the script hands it the same
  pre-generated arrays (and test set) so that data generation is not timed.
* **deepcausal fit.** One default member, ``DFIV(n_estimators=1, random_state=seed).fit(Y, T, X=X, Z=Z)`` and
  ``DFPV(n_estimators=1, random_state=seed).fit(Y, A, Z=Z, W=W)`` (the like-for-like comparison with the original,
  which fits one model), then the whole default fit: the same without ``n_estimators``, i.e. the default ensemble
  with its members in parallel processes (its wall time is what a user waits for). ``--variants`` adds, after the
  default member, one member per named non-default setting (``VARIANTS``: narrower DFPV networks, fewer DFIV
  gradient steps), each with its own row and speed ratio: what a faster setting would cost in accuracy. They are
  information for a decision about the defaults, not candidates chosen here (the test truth never chooses).
* **Timing.** Training only: from building the trainer / estimator to the end of its final head fit; no data
  generation, no scoring. One thread (``torch.set_num_threads(1)``, OMP/MKL/OPENBLAS_NUM_THREADS=1).
* **Score.** Both on the original repository's test set (its test generator and structural function), the same
  float64 MSE ``mean((prediction - structural)**2)`` for both.

Writes ``## Speed against the original code`` in ``benchmarks/RESULTS.md`` (only that section) and raw rows to
``benchmarks/reference_side_by_side.csv``. With ``--only``, the other design's rows already in the CSV are kept
and its table is written again from them.

Imports used by the original code only outside the benchmarked path are stubbed when missing: ``torchvision``
(imported by DeepFeatureIV's ``src/data`` for its MNIST demand design; the stub raises if used).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before numpy/torch are imported
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import ROOT, machine, write_section  # noqa: E402

if str(ROOT) not in sys.path:  # benchmark the deepcausal of this checkout, whatever is installed
    sys.path.insert(1, str(ROOT))

TITLE = "## Speed against the original code"
CSV = ROOT / "benchmarks" / "reference_side_by_side.csv"
REPOS = {"dfiv": "DeepFeatureIV", "dfpv": "DeepFeatureProxyVariable"}
# files the script needs in each checkout (their trainer and their config)
NEEDED = {
    "dfiv": ("src/models/DFIV/trainer.py", "final_configs/dfiv_low_dim/configs.json"),
    "dfpv": ("src/models/DFPV/trainer.py", "configs/dfpv.json"),
}
DESIGN_TITLE = {
    "dfiv": "Demand IV (DFIV), rho = 0.5",
    "dfpv": "Demand PCL (DFPV)",
}

# Non-default settings a user could choose, timed beside the default member (``--variants``) to show what speed
# costs in accuracy; never defaults. Each entry: design, description, constructor keywords (built on demand).
VARIANTS = {
    "width8": ("dfpv", "all four networks with 8 learned features instead of 16 (81-column heads instead of 289)",
               lambda: _dfpv_widths(8)),
    "width4": ("dfpv", "all four networks with 4 learned features instead of 16 (25-column heads)",
               lambda: _dfpv_widths(4)),
    "iter221": ("dfiv", "2 stage-1 and 2 covariate gradient steps per minibatch pair instead of 4 and 4",
                lambda: {"stage1_iter": 2, "covariate_iter": 2}),
}


def _dfpv_widths(width: int) -> dict:
    from functools import partial

    from deepcausal.nets import mlp

    net = partial(mlp, d_out=width)  # DFPV's default vector network is this MLP with d_out=16
    return {k: net for k in ("treatment_net", "stage1_treatment_net", "treatment_proxy_net", "outcome_proxy_net")}


CLONE_HELP = ("clone the original code first:\n"
              "    mkdir -p DIR && cd DIR\n"
              "    git clone https://github.com/liyuan9988/DeepFeatureIV\n"
              "    git clone https://github.com/liyuan9988/DeepFeatureProxyVariable\n"
              "and pass --reference-dir DIR")


# ---- command line ---------------------------------------------------------------------------------------------
def _seeds(text: str):
    try:
        seeds = [int(s) for s in text.split(",") if s.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_reference.py",
        description="Fit time and MSE of the original DFIV/DFPV code against deepcausal's defaults, side by side.",
        epilog=CLONE_HELP.replace("DIR", "~/reference"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference-dir", required=True, type=Path,
                   help="directory holding the DeepFeatureIV and DeepFeatureProxyVariable checkouts")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--only", choices=sorted(REPOS), help="run one design only (the other's CSV rows are kept)")
    p.add_argument("--n", type=_positive, default=5000, help="training rows (default 5000)")
    p.add_argument("--n-epochs", type=_positive, default=None,
                   help="override the epochs of BOTH implementations (smoke tests; default: each one's own)")
    p.add_argument("--csv", type=Path, default=CSV, help=f"raw rows (default {CSV.relative_to(ROOT)})")
    p.add_argument("--no-write", action="store_true", help="print only; write neither RESULTS.md nor the CSV")
    p.add_argument("--members-only", action="store_true",
                   help="time one default member only, not the whole default (ensemble) fit")
    p.add_argument("--variants", type=_variants, default=[],
                   help="comma-separated non-default settings to time beside the default member, one member each: "
                        + "; ".join(f"{k} ({d}): {text}" for k, (d, text, _) in VARIANTS.items()))
    return p


def _variants(text: str) -> list:
    names = [v for v in text.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.designs = [args.only] if args.only else ["dfiv", "dfpv"]
    args.reference_dir = args.reference_dir.expanduser().resolve()
    problems = check_reference_dir(args.reference_dir, args.designs)
    if problems:
        parser.error("--reference-dir " + str(args.reference_dir) + " does not hold the original code:\n  "
                     + "\n  ".join(problems) + "\n" + CLONE_HELP)
    return args


def check_reference_dir(ref: Path, designs) -> list:
    """One line per missing piece of the checkouts the chosen designs need (empty: all present)."""
    problems = []
    for d in designs:
        repo = ref / REPOS[d]
        if not repo.is_dir():
            problems.append(f"missing {repo}")
            continue
        problems += [f"missing {repo / f}" for f in NEEDED[d] if not (repo / f).is_file()]
    return problems


# ---- importing the original code --------------------------------------------------------------------------------
def _purge_src():
    for name in [m for m in sys.modules if m == "src" or m.startswith("src.")]:
        del sys.modules[name]


@contextlib.contextmanager
def reference_code(repo: Path):
    """Make ``import src...`` resolve to ``repo/src`` (both original repositories name their package ``src``)."""
    _purge_src()
    sys.path.insert(0, str(repo))
    stubbed = _stub_if_missing("torchvision", ("datasets", "transforms"))
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        _purge_src()
        for name in stubbed:
            sys.modules.pop(name, None)


def _stub_if_missing(name: str, submodules) -> list:
    """Insert an empty module (and submodules) whose attributes raise when used; only if ``name`` is missing."""
    try:
        importlib.import_module(name)
        return []
    except ImportError:
        pass

    def unavailable(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def fail(*_, **__):
            raise ImportError(f"{name}.{attr} is a stub made by bench_reference.py ({name} is not installed)")
        return fail

    made = []
    for full in [name] + [f"{name}.{s}" for s in submodules]:
        mod = types.ModuleType(full)
        mod.__getattr__ = unavailable  # any attribute (MNIST, transforms, ...) is a callable that raises
        sys.modules[full] = mod
        made.append(full)
    for s in submodules:
        setattr(sys.modules[name], s, sys.modules[f"{name}.{s}"])
    return made


def _git_head(repo: Path, dirty: bool = False) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=10", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        # only the package counts: the benchmark scripts rewrite RESULTS.md and their CSVs as they run
        if out and dirty and subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no",
                                             "--", "deepcausal"],
                                            capture_output=True, text=True, timeout=10).stdout.strip():
            out += " with uncommitted changes"
        return out or "unknown commit"
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"


# ---- helpers ------------------------------------------------------------------------------------------------------
def mse(pred, truth) -> float:
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1)
    if pred.shape != truth.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {truth.shape[0]} test rows")
    return float(np.mean((pred - truth) ** 2))


def _warm_up():
    """Pay torch's one-off start-up costs before the first timed fit (which is the original code's)."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.BatchNorm1d(16),
                              torch.nn.Linear(16, 4))
    opt = torch.optim.Adam(net.parameters())
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        f = net(x)
        a = f.T @ f + torch.eye(4)
        loss = (torch.inverse(a).sum() + torch.linalg.solve(a, f.T @ f).sum()
                + torch.cholesky_solve(f.T[:, :1], torch.linalg.cholesky(a)).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()


def _our_steps(est) -> dict:
    """Epochs, minibatch steps and gradient updates of a fitted deepcausal estimator (NaN where unknown).

    A step is one pair of minibatches (deepcausal/_estimator.py ``_train``: ceil(min(n1, n2) / batch) per epoch);
    within it, stage1_iter + covariate_iter (with a covariate network) + stage2_iter optimiser updates.
    """
    out = dict(epochs=math.nan, steps=math.nan, updates=math.nan, batch_size=math.nan)
    try:
        members = getattr(est, "estimators_", None) or [est]  # an ensemble: steps of all members
        steps = sum(m.stopping_["steps"] for m in members)
        epochs = float(np.median([m.stopping_["epochs"] for m in members]))
        out.update(epochs=epochs, steps=steps, batch_size=est.settings_["batch_size"])
        iters = est.settings_
        has_cov = "covariate" in members[0].nets_
        out["updates"] = steps * (iters["stage1_iter"] + (iters["covariate_iter"] if has_cov else 0)
                                  + iters["stage2_iter"])
    except Exception as exc:  # the estimator's internals may change; the timing and MSE still count
        print(f"  (could not count deepcausal's steps: {exc!r})", flush=True)
    return out


def _timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


# ---- DFIV, demand design ----------------------------------------------------------------------------------------
def run_dfiv(repo: Path, seeds, n: int, n_epochs=None, rho: float = 0.5, members_only: bool = False,
             variants=()):
    import deepcausal

    config = json.loads((repo / NEEDED["dfiv"][1]).read_text())
    train_params = dict(config["train_params"])
    if n_epochs is not None:
        train_params["n_epoch"] = n_epochs
    data_config = {"data_name": "demand", "data_size": n, "rho": rho}
    rows = []
    with reference_code(repo):
        data_mod = importlib.import_module("src.data")
        trainer_mod = importlib.import_module("src.models.DFIV.trainer")
        test = data_mod.generate_test_data(**data_config)
        for seed in seeds:
            train = data_mod.generate_train_data(rand_seed=seed, **data_config)
            Z = train.instrumental[:, :1]
            if not np.array_equal(train.instrumental[:, 1:], train.covariate):
                raise RuntimeError("DeepFeatureIV's demand instruments are no longer (cost, covariates)")

            # original code
            pred, sec, their_mse = _fit_reference_dfiv(trainer_mod, data_config, train_params, train, test, seed)
            it = train_params["stage1_iter"] + train_params["covariate_iter"] + train_params["stage2_iter"]
            ep = train_params["n_epoch"]
            rows.append(_row("dfiv", "original", seed, n, sec, mse(pred, test.structural), their_mse,
                             dict(epochs=ep, steps=ep, updates=ep * it, batch_size=math.nan)))

            # deepcausal, same arrays: one default member (the like-for-like comparison), then the whole
            # default fit (an ensemble, members in parallel processes)
            kwargs = {} if n_epochs is None else {"n_epochs": n_epochs}
            for impl, extra in _our_fits("dfiv", members_only, variants):
                est, sec = _timed(lambda: deepcausal.DFIV(random_state=seed, **kwargs, **extra).fit(
                    train.outcome, train.treatment, X=train.covariate, Z=Z))
                rows.append(_row("dfiv", impl, seed, n, sec, mse(est.predict(test.treatment, test.covariate),
                                                                 test.structural), math.nan, _our_steps(est)))
    return rows


def _our_fits(design: str, members_only: bool, variants) -> list:
    """(implementation label, constructor keywords) of deepcausal's fits per seed, in the order they run: one
    default member, each chosen variant of this design (one member), then the whole default fit."""
    fits = [("deepcausal", {"n_estimators": 1})]
    fits += [(f"deepcausal {v}", {"n_estimators": 1, **VARIANTS[v][2]()}) for v in variants if VARIANTS[v][0] == design]
    return fits if members_only else fits + [("deepcausal ensemble", {})]


def _fit_reference_dfiv(trainer_mod, data_config, train_params, train, test, seed):
    """Run their ``DFIVTrainer.train`` on pre-generated data; time it to the end of its final head fit."""
    captured = {}
    base = trainer_mod.DFIVModel

    class Captured(base):  # their model class, recording when its final fit ends and keeping the model
        def fit_t(self, *args, **kwargs):
            super().fit_t(*args, **kwargs)
            captured["end"] = time.perf_counter()
            captured["model"] = self

    def given_train(rand_seed, **_):
        assert rand_seed == seed
        return train

    saved = {k: getattr(trainer_mod, k) for k in ("generate_train_data", "generate_test_data", "DFIVModel")}
    trainer_mod.generate_train_data = given_train
    trainer_mod.generate_test_data = lambda **_: test
    trainer_mod.DFIVModel = Captured
    try:
        np.random.seed(seed)  # their train/test split uses numpy's global generator
        torch.manual_seed(seed)  # their networks' initialisation
        gc.collect()
        t0 = time.perf_counter()
        trainer = trainer_mod.DFIVTrainer(data_config, dict(train_params), False, None)
        their_mse = float(trainer.train(rand_seed=seed, verbose=0))
        sec = captured["end"] - t0
    finally:
        for k, v in saved.items():
            setattr(trainer_mod, k, v)
    with torch.no_grad():
        pred = captured["model"].predict(test.treatment, test.covariate)
    return pred, sec, their_mse


# ---- DFPV, demand proxy design ------------------------------------------------------------------------------------
def run_dfpv(repo: Path, seeds, n: int, n_epochs=None, members_only: bool = False, variants=()):
    import deepcausal

    config = json.loads((repo / NEEDED["dfpv"][1]).read_text())
    params = {k: v for k, v in config["model"].items() if k != "name"}
    if n_epochs is not None:
        params["n_epoch"] = n_epochs
    data_config = dict(config["data"], n_sample=n)
    if data_config.get("name") != "demand":
        raise RuntimeError(f"{NEEDED['dfpv'][1]} is no longer the demand design: {config['data']}")
    rows = []
    with reference_code(repo):
        ate = importlib.import_module("src.data.ate")
        trainer_mod = importlib.import_module("src.models.DFPV.trainer")
        test_org = ate.generate_test_data_ate(data_config=data_config)
        for seed in seeds:
            pre = ate.get_preprocessor_ate(data_config.get("preprocess", "Identity"))
            train = pre.preprocess_for_train(ate.generate_train_data_ate(data_config=data_config, rand_seed=seed))
            test = pre.preprocess_for_test_input(test_org)

            mdl, pred, sec = _fit_reference_dfpv(trainer_mod, data_config, params, train, test, pre, seed)
            it = params["stage1_iter"] + params["stage2_iter"]
            ep = params["n_epoch"]
            rows.append(_row("dfpv", "original", seed, n, sec, mse(pred, test_org.structural),
                             float(mdl.evaluate(test_org)), dict(epochs=ep, steps=ep, updates=ep * it,
                                                                 batch_size=math.nan)))

            # deepcausal, same arrays
            kwargs = {} if n_epochs is None else {"n_epochs": n_epochs}
            extra = {} if train.backdoor is None else {"X": train.backdoor}
            for impl, members in _our_fits("dfpv", members_only, variants):
                est, sec = _timed(lambda: deepcausal.DFPV(random_state=seed, **kwargs, **members).fit(
                    train.outcome, train.treatment, Z=train.treatment_proxy, W=train.outcome_proxy, **extra))
                rows.append(_row("dfpv", impl, seed, n, sec, mse(est.predict(test.treatment), test_org.structural),
                                 math.nan, _our_steps(est)))
    return rows


def _fit_reference_dfpv(trainer_mod, data_config, params, train, test, pre, seed):
    """Their ``DFPVTrainer.train`` as their dfpv_experiments runs it (seeds, then the trainer), timed;
    returns the model, its predictions on the test treatments and the seconds."""
    np.random.seed(seed)  # their train/test split uses numpy's global generator
    torch.manual_seed(seed)
    mdl, sec = _timed(lambda: trainer_mod.DFPVTrainer(data_config, dict(params), False, None).train(train, 0))
    with torch.no_grad():
        pred = mdl.predict_t(torch.tensor(test.treatment, dtype=torch.float32)).numpy()
    return mdl, pre.postprocess_for_prediction(pred), sec


def _row(design, impl, seed, n, sec, value, their_mse, steps) -> dict:
    row = dict(design=design, implementation=impl, seed=seed, n=n, fit_s=sec, mse=value,
               mse_by_their_evaluate=their_mse, **steps, load_1min=os.getloadavg()[0])
    row["steps_per_s"] = row["steps"] / sec
    row["updates_per_s"] = row["updates"] / sec
    theirs = "" if not math.isfinite(their_mse) else f" (their own evaluation: {their_mse:.3f})"
    print(f"  {design} {impl:10s} seed {seed}: fit {sec:7.2f} s, MSE {value:9.3f}{theirs}, "
          f"{row['steps_per_s']:8.1f} steps/s, {row['updates_per_s']:8.1f} updates/s", flush=True)
    return row


# ---- report -----------------------------------------------------------------------------------------------------
def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def design_markdown(df: pd.DataFrame, design: str) -> str:
    """The table of one design from its raw rows (original and deepcausal, per seed)."""
    d = df[df["design"] == design]
    ref, ours = (d[d["implementation"] == k].set_index("seed") for k in ("original", "deepcausal"))
    ens = d[d["implementation"] == "deepcausal ensemble"].set_index("seed")
    seeds = sorted(set(ref.index) & set(ours.index))
    if not seeds:
        raise ValueError(f"no seed has both implementations for {design}")
    ref, ours = ref.loc[seeds], ours.loc[seeds]
    first = d.iloc[0]
    ratio = ref["fit_s"].median() / ours["fit_s"].median()
    lines = [f"### {DESIGN_TITLE[design]}, n = {int(first['n']):,}", "",
             f"Command: `{first['command']}`; {first['date']}.",
             f"Machine: {first['machine']}; 1-minute load average after each fit "
             f"{d['load_1min'].min():.1f}–{d['load_1min'].max():.1f} (2 = both cores busy).",
             f"deepcausal: {first['deepcausal']}.",
             f"Original code: {first['reference']}. Test set: {first['test_set']}.", "",
             "| implementation | median fit s | median MSE | speed ratio (original s / deepcausal s) | "
             "epochs | steps per fit | steps/s | gradient updates/s |",
             "|---|---|---|---|---|---|---|---|"]
    parts = [("original code", ref, "–"), ("deepcausal, one default member", ours, f"{ratio:.2f}×")]
    for name, (design_of, text, _) in VARIANTS.items():
        var = d[d["implementation"] == f"deepcausal {name}"].set_index("seed")
        if design_of == design and len(var):
            parts.append((f"deepcausal, one member, not the default: {text} (`{name}`)", var,
                          f"{ref['fit_s'].median() / var['fit_s'].median():.2f}×"))
    if len(ens):
        parts.append(("deepcausal default fit (ensemble, default n_jobs)", ens,
                      f"{ref['fit_s'].median() / ens['fit_s'].median():.2f}×"))
    for label, part, r in parts:
        lines.append(f"| {label} | {part['fit_s'].median():.1f} | {_fmt(part['mse'].median(), 4)} | {r} | "
                     f"{_fmt(part['epochs'].median())} | {_fmt(part['steps'].median())} | "
                     f"{_fmt(part['steps_per_s'].median())} | {_fmt(part['updates_per_s'].median())} |")
    lines += ["", "| seed | original fit s | original MSE | deepcausal fit s | deepcausal MSE | speed ratio |",
              "|---|---|---|---|---|---|"]
    for s in seeds:
        lines.append(f"| {s} | {ref.at[s, 'fit_s']:.1f} | {_fmt(ref.at[s, 'mse'], 4)} | "
                     f"{ours.at[s, 'fit_s']:.1f} | {_fmt(ours.at[s, 'mse'], 4)} | "
                     f"{ref.at[s, 'fit_s'] / ours.at[s, 'fit_s']:.2f}× |")
    return "\n".join(lines) + "\n"


def section_markdown(df: pd.DataFrame) -> str:
    head = [TITLE, "",
            "Written by `benchmarks/bench_reference.py` (raw rows: `benchmarks/reference_side_by_side.csv`); the "
            "script's docstring says how to clone the original repositories. Per design and seed the original "
            "code and deepcausal alternate (original s0, deepcausal s0, original s1, ...), one thread each, on "
            "the same training arrays drawn by the original repository's generator; fit seconds count training "
            "only; both are scored on the original repository's test set by the same float64 MSE. A *step* is "
            "one minibatch pair for deepcausal (ceil(min(n1, n2) / batch) per epoch) and one full-batch epoch "
            "for the original code; *gradient updates* count optimiser steps (original DFIV: 20 + 20 + 1 per "
            "epoch, original DFPV: 20 + 1). The speed ratio is the ratio of the median fit seconds.", ""]
    impl = df["implementation"]
    if (impl.str.startswith("deepcausal ") & (impl != "deepcausal ensemble")).any():
        head += ["Rows marked *not the default* (`--variants`) are one member with a faster non-default setting, "
                 "fitted right after the default member on the same arrays: what that speed would cost in accuracy. "
                 "They inform a decision about the defaults; nothing was chosen from them (their MSE is test truth).",
                 ""]
    parts = [design_markdown(df, d) for d in ("dfiv", "dfpv") if (df["design"] == d).any()]
    return "\n".join(head + parts)


def merge_rows(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Replace the designs present in ``new``; keep the other designs' rows of ``old``."""
    if old is None or old.empty:
        return new.reset_index(drop=True)
    kept = old[~old["design"].isin(set(new["design"]))]
    return pd.concat([kept, new], ignore_index=True).sort_values(["design", "seed"], kind="stable",
                                                                 ignore_index=True)


def main(argv=None) -> pd.DataFrame:
    args = parse_args(argv)
    torch.set_num_threads(1)
    import deepcausal

    command = "python benchmarks/bench_reference.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    info = dict(command=command, date=str(datetime.date.today()),
                deepcausal=f"{getattr(deepcausal, '__version__', '?')} at commit "
                           f"{_git_head(Path(deepcausal.__file__).parent, dirty=True)}",
                machine=f"{machine()}, OMP/MKL/OPENBLAS threads {os.environ.get('OMP_NUM_THREADS', 'unset')}, "
                        f"load average at start {os.getloadavg()[0]:.2f}")
    print(info["machine"], f"\ndeepcausal {info['deepcausal']} ({Path(deepcausal.__file__).parent})", flush=True)
    _warm_up()
    frames = []
    for design in args.designs:
        repo = args.reference_dir / REPOS[design]
        ref_info = f"[liyuan9988/{REPOS[design]}](https://github.com/liyuan9988/{REPOS[design]}) at {_git_head(repo)}"
        print(f"{design}: {ref_info}", flush=True)
        if design == "dfiv":
            rows = run_dfiv(repo, args.seeds, args.n, args.n_epochs, members_only=args.members_only,
                            variants=args.variants)
            params = json.loads((repo / NEEDED["dfiv"][1]).read_text())["train_params"]
            test_set = "their `generate_test_demand_design()`: 20 prices × 20 times × 7 customer types = 2,800 rows"
        else:
            rows = run_dfpv(repo, args.seeds, args.n, args.n_epochs, members_only=args.members_only,
                            variants=args.variants)
            params = {k: v for k, v in json.loads((repo / NEEDED["dfpv"][1]).read_text())["model"].items()
                      if k != "name"}
            test_set = ("their `generate_test_demand_pv()`: 10 prices in [10, 30], structural values by a "
                        "10,000-draw Monte Carlo")
        if args.n_epochs is not None:
            params = dict(params, n_epoch=args.n_epochs)
        cfg = f"`{NEEDED[design][1]}`, training parameters {json.dumps(params)}"
        if args.n_epochs is not None:
            cfg += f"; deepcausal n_epochs={args.n_epochs}"
        frame = pd.DataFrame(rows)
        for k, v in dict(info, reference=f"{ref_info}, {cfg}", test_set=test_set).items():
            frame[k] = v
        frames.append(frame)
    new = pd.concat(frames, ignore_index=True)
    if args.no_write:
        print(section_markdown(new))
        return new
    old = pd.read_csv(args.csv) if args.csv.exists() else None
    df = merge_rows(old, new)
    df.to_csv(args.csv, index=False)
    text = section_markdown(df)
    write_section(TITLE, text)
    print(text)
    return df


if __name__ == "__main__":
    main()

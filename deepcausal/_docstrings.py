"""Parameter documentation DFIV and DFPV share, written once (numpydoc, 4-space indented).

One line of meaning per parameter; what a default rests on is on the method page of the API reference
("The defaults, and the measurements behind them").
"""

from __future__ import annotations

__all__ = ["fill_shared_docs"]

_SHARED_DOCS = {
    "n_epochs_parameter": """n_epochs : int, optional
        Most passes over the data. Default: a step cap of 1,000·√(n_half / 2,500) minibatch steps
        (100 epochs in ridge mode); early stopping usually ends training first.""",
    "training_parameters": """lr : float, default=1e-3
        Adam learning rate of every network.
    lr_schedule : {"auto", "annealed", "constant"}, default="auto"
        "annealed": ``lr`` for half the step budget, then falling linearly to ``lr / 50``. "auto":
        annealed for DFIV with the default budget in proximal mode, else constant.
    treatment_weight_decay : float, default=0.0
        L2 penalty on the treatment network's weights (consider 0.001–0.01 for very long DFIV fits).
    split_ratio : float, default=0.5
        Fraction of the rows in the stage-1 half.
    validation_fraction : float, default=0.1
        Fraction of each half held out for the held-out stage losses (early stopping).
    early_stopping : bool, default=True
        Stop when the held-out stage-2 loss stops improving and keep the best check's model.
    n_iter_no_change : int, default=10
        Patience of early stopping, in checks.
    refit_heads : bool or "full", default=True
        Re-solve both heads at the end of training: on all rows of their halves (True), on every row,
        both stages (``"full"``: 2SLS on the learned features, without the split), or not at all.
        With True, where DFIV's held-out rule (``complexity``) keeps the trained head after choosing on
        the halves' heads, the reported head is that head re-solved on every row.
    complexity : {"auto", "trained", "linear", "lepski", "discrepancy", "projected", "held_out", "sieve"}, default="auto"
        How nonlinear a curve to report (``complexity_``): the trained head (``"trained"``), the
        simplest curve, a line in the treatment fitted by 2SLS with the covariates' learned features as
        controls (``"linear"``; DFIV with its default treatment network only, an error otherwise), or
        the simplest of a family from that line to the trained curve that a rule accepts
        (``"lepski"``, ``"discrepancy"``). ``"auto"`` (DFIV): ``"linear"`` when the instruments take at
        most d_t + 1 distinct values (one binary instrument identifies a slope in t for each x, not a
        shape), ``"lepski"`` for discrete instruments of up to 10 values, ``"held_out"`` for continuous
        instruments, else ``"trained"`` (always for DFPV). ``"held_out"``: the trained head unless the
        line predicts each member's held-out rows significantly better and its linear first-stage F is at
        least 37.4 (DFIV; needs ``validation_fraction`` > 0); then a shape step reports Lepski's spline in
        t (``"sieve"``) or the line instead where the curves' departures from the line say so (the method
        page). ``"projected"``: the line unless the trained head's out-of-fold projected fit is
        significantly better (DFIV; measured, not a default).
        ``"sieve"`` (DFIV, one treatment column): a cubic spline in t by 2SLS, its knots chosen by
        Lepski's method as npiv chooses them (``complexity_["sieve_knots"]``; None: the line).
    n_estimators : int, default=5
        Members of the ensemble, each with its own seed and split; predictions are their average.
    n_bootstrap : int, default=100
        Score-bootstrap draws of the heads per member, for the bands (0: none).
    n_jobs : int or None, default=-1
        Processes fitting the members in parallel (−1: every core); results do not depend on it. With
        the default networks, members train as stacks of up to three, one stack per process.
    random_state : int or None
        Seed of the splits, batches, initialisation and draws; fits are bit-reproducible on CPU.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the networks train.
    verbose : bool or "auto", default="auto"
        One progress bar over every member's steps; "auto": for fits of 1,000 steps or more.""",
    "covariate_selection_parameter": """Which covariates the networks read (``covariate_selection_``): those that predict the outcome,
        the treatment or another role (DFIV: an instrument; DFPV: a proxy) in a group lasso with a
        penalty set by theory (each covariate's group: its hinge basis, or a categorical one's
        indicators; the controls Chernozhukov, Hansen & Spindler 2015 keep in IV). The others are
        left out of every network; ``predict`` still takes all of them. None, custom networks that
        read the covariates, and image inputs: every covariate.""",
    "covariate_selection_attribute": """covariate_selection_ : dict or None
        The covariate screen: ``names`` and ``kept_names`` (covariates), ``kept`` (the encoded columns
        the networks read; None where it did not apply, with the ``reason``) and what each equation
        selected (``outcome``, ``treatment``, ``instrument``); None without covariates or with
        ``covariate_selection=None``.""",
    "results_attributes": """summary : FitResults
        The results: estimates with std. errors, intervals and p-values, first stage, fit, settings.
    estimators_ : list
        The fitted members (an ensemble); each has the attributes below of its own.
    nets_, heads_, current_heads_ : ModuleDict, TwoStageHeads, TwoStageHeads
        Trained networks; the heads ``predict`` uses (refit when ``refit_heads``); the heads as trained.
    identification_ : dict
        How well the data identify the curve: ``status`` ("identified", "weak", "not identified")
        and the ``reasons``; weak or none makes ``dose_response`` and the intervals warn.
    complexity_ : dict
        The curve reported: ``rule``, the ``chosen`` candidate and its ``label`` (None: the trained
        head), the ``candidates`` and, when ``"auto"`` chose the line, the ``reason``; with the spline in
        t, ``sieve_knots``, ``departs``, ``shape_step``, ``spline`` and ``band`` (the method page). A member
        that reports the spline, or keeps it beside the line for the band, holds ``sieve_``.
    history_ : DataFrame
        One row per check: steps, training and held-out stage losses, the kept check.
    stopping_ : dict
        How training ended: ``reason``, ``steps``, ``kept_step``, ``recoveries``.""",
}


def fill_shared_docs(doc: str) -> str:
    """Insert the shared parameter documentation at its ``%(name)s`` placeholders."""
    for name, text in _SHARED_DOCS.items():
        doc = doc.replace(f"%({name})s", text)
    return doc

"""Parameter documentation DFIV and DFPV share, written once (numpydoc, 4-space indented)."""

from __future__ import annotations

__all__ = ["fill_shared_docs"]

_SHARED_DOCS = {
    "n_epochs_parameter": """n_epochs : int, optional
        The most passes over the data. Default: 100 in ridge mode; in proximal mode at most 200
        epochs and at most 1,000·√(n_half / 2,500) minibatch steps, a cap that grows with the data
        (about 7,000 steps, 15 epochs, at a million rows). With ``early_stopping`` training usually
        ends before the cap, when the held-out stage-2 loss stops improving.""",
    "training_parameters": """lr : float, default=1e-3
        Adam learning rate of every network.
    lr_schedule : {"auto", "annealed", "constant"}, default="auto"
        How the learning rate moves over the step budget (the cap of ``n_epochs``). "annealed": ``lr``
        for the first half of the budget, then falling linearly to ``lr / 50`` at the cap, so that
        the last iterates settle instead of wandering with the minibatch noise (measured in
        benchmarks/RESULTS.md, "Learning-rate schedule"). "constant": ``lr`` throughout. "auto":
        DFIV anneals in proximal mode with the default budget (``n_epochs=None``, a cap sized for the
        data) and is constant otherwise: an ``n_epochs`` you chose may be too short to spend half of
        it annealing, and ridge mode's full-batch steps have no minibatch noise (it stays the
        original algorithm). DFPV is constant: annealing did not lower its held-out stage-2 loss
        and its default ensemble was less accurate with it. Early stopping can end training
        before the annealing starts. ``history_`` records the rate at each check.
    treatment_weight_decay : float, default=0.0
        L2 penalty on the treatment network's weights, added to their gradients as
        ``torch.optim.Adam``'s ``weight_decay`` does (the original DFIV/DFPV code's knob of the same
        name). Without it DFIV's treatment features grow steadily over long fits (the stage-2 loss
        takes the ridge-shrunk head as fixed and the gradient makes up for the shrinkage); 0.001–0.01
        stopped that and a divergence at 10⁶ rows in benchmarks/RESULTS.md, "Diagnosis: treatment-
        feature drift". Not a default: on the held-out losses of every design it did not pay
        (RESULTS.md, "Treatment-network weight decay"); consider it for very large DFIV fits. The
        other remedy measured there removes the scale instead of penalising it:
        ``treatment_net=partial(deepcausal.nets.SkipMLP, d_out=4, normalize=True)`` (DFIV at 10⁶ rows:
        MSE 4–9 against 14–29; not a default either, see "Treatment-feature normalisation (DFIV)").
    split_ratio : float, default=0.5
        Fraction of rows in the stage-1 half.
    validation_fraction : float, default=0.1
        Fraction of each stage half held out of training to compute the held-out stage losses
        (recorded in ``history_``, used by ``early_stopping``). 0 holds out nothing (then
        ``early_stopping`` must be False). The held-out rows rejoin the halves for the final
        re-estimation of the heads (``refit_heads``).
    early_stopping : bool, default=True
        Stop when the held-out stage-2 loss has not improved for ``n_iter_no_change`` checks and
        restore the networks and heads of the best check. Checks happen at the end of each epoch, or
        every 200 minibatch steps when an epoch is longer. If training diverges (a non-finite loss)
        after a check was kept, training goes back to that check at half the learning rate, with a
        ``RuntimeWarning`` (``stopping_["recoveries"]`` lists the steps); after two such restarts a
        third divergence ends training with that check's model (``stopping_["reason"] == "diverged"``).
        Before any check a divergence is an error, as without early stopping.
    n_iter_no_change : int, default=10
        Patience of early stopping, in checks.
    refit_heads : bool, default=True
        After training, re-estimate both heads on the full stage halves by streaming statistics.
    n_estimators : int, default=5
        Members of the ensemble. Each member is a full fit with its own seed, hence its own random
        S1/S2 split, initialisation and batch order; predictions are the member average, and the
        members' spread enters the confidence bands. Fitted members are kept in ``estimators_``.
        Why 5: on the lowdim designs (n = 1,000, 20 replications; benchmarks/RESULTS.md, "Confidence
        bands") single fits' 95% bands covered 50-65% of the truth and 3 members 88-99%, 5 members
        93-100%, and the ensemble's error was lower than a single fit's. It costs 5 fits, run in
        parallel processes (``n_jobs``). Use 1 for a single fit (then bands come from the bootstrap
        of the heads alone and are too narrow).
    n_bootstrap : int, default=100
        Score-bootstrap draws of the heads per member, for the confidence bands
        (:mod:`deepcausal.inference`); 0 skips them (then intervals need ``n_estimators`` > 1).
    n_jobs : int or None, default=-1
        Processes that fit ensemble members in parallel (joblib: −1 all cores, None or 1 one after
        another, also respecting a ``joblib.parallel_config`` context). Results do not depend on
        it, nor on joblib's backend (processes or threads): every member fits on one torch thread
        with its own seed.
    random_state : int or None
        Seeds the split, the batches, the network initialisation, the bootstrap draws and the
        members' seeds; fits are bit-reproducible on CPU. None draws a seed from the operating
        system (one shared by all ranks of a distributed fit).
    device : {"cpu", "cuda", "auto"}, default="cpu"
    verbose : bool, default=False
        Show a progress bar over epochs (over members, for an ensemble).""",
}


def fill_shared_docs(doc: str) -> str:
    """Insert the shared parameter documentation at its ``%(name)s`` placeholders."""
    for name, text in _SHARED_DOCS.items():
        doc = doc.replace(f"%({name})s", text)
    return doc

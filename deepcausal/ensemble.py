"""Ensembles of two-stage fits: member seeds, parallel fitting, and the threads each member uses.

An ensemble of K members is K independent fits of the same estimator on the same data, each with
its own seed, hence its own random S1/S2 split (so across members every row serves both stages:
cross-fitting), its own initialisation and batch order. Predictions are the member average; the
members' spread feeds the bands of :mod:`deepcausal.inference`.

Members are fitted through joblib, so ``n_jobs`` runs them in parallel processes and a user can
switch joblib's backend (dask, ray) without code changes. Each member fits with one torch thread
whatever ``n_jobs`` is, so the result is bit-identical for a given ``random_state`` whether members
run one after another or in parallel. Members whose networks allow it train as stacks, one
computation for several members (:mod:`deepcausal._stacked`, which uses this module's helpers); the
stacks too are the same whatever ``n_jobs`` is, but a member trained in a stack is not bit-identical
to the same member trained alone (float32 batched products round differently, and training amplifies
the difference: see that module for what is and is not invariant).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import List

import numpy as np
import torch
from joblib import Parallel, delayed

from ._warnings import recording

__all__ = ["member_seeds", "fit_members", "check_n_jobs", "one_torch_thread"]


def member_seeds(seed: int, n_members: int) -> List[int]:
    """Independent 62-bit seeds for the members, derived from one seed (numpy ``SeedSequence``).

    With a single member the seed is used as given, so ``n_estimators=1`` reproduces a plain fit.
    """
    if n_members == 1:
        return [int(seed)]
    children = np.random.SeedSequence(int(seed)).spawn(n_members)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(2)) for c in children]


def check_n_jobs(n_jobs) -> None:
    """``n_jobs`` must be None or a non-zero integer (joblib's convention: −1 is every core)."""
    if n_jobs is None:
        return
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive integer or a negative one (-1: all cores), got {n_jobs!r}")


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = 0  # blocks inside one_torch_thread, in any thread of this process
_THREADS_BEFORE = 1  # torch's thread count before the first of them


@contextmanager
def one_torch_thread():
    """One torch thread inside the block; the count before is restored when the last block ends.

    ``torch.set_num_threads`` is process-wide: with members fitted in threads, a plain save/restore
    per member would let one member restore several threads while another is still fitting, and
    leave the count changed at the end. Counting the blocks open makes it safe.
    """
    global _THREADS_USERS, _THREADS_BEFORE
    with _THREADS_LOCK:
        if _THREADS_USERS == 0:
            _THREADS_BEFORE = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_USERS += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS -= 1
            if _THREADS_USERS == 0:
                torch.set_num_threads(_THREADS_BEFORE)


def _fit_one(member, prepared, seed, index, validation, progress=None):
    with one_torch_thread(), recording() as caught:
        try:
            member._fit_member(prepared, seed, validation, progress)
        except FloatingPointError as exc:
            raise FloatingPointError(f"ensemble member {index} (seed {seed}): {exc}") from exc
    member.fit_warnings_ = list(caught)  # the member's own: a worker's warnings do not reach the parent
    return member


def fit_members(estimator, prepared, seeds, validation, n_jobs, channel=None):
    """Fit one member per seed: clones of ``estimator`` with one member each, in parallel.

    ``channel(i)`` gives member i's line to the progress bar (:mod:`deepcausal._progress`). A member
    that diverges raises a ``FloatingPointError`` naming the member and its seed.
    """
    from sklearn.base import clone

    template = clone(estimator).set_params(n_estimators=1, n_jobs=None, verbose=False)
    jobs = (delayed(_fit_one)(clone(template), prepared, s, i, validation, channel(i) if channel else None)
            for i, s in enumerate(seeds))
    return Parallel(n_jobs=n_jobs)(jobs)

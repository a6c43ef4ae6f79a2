"""Which covariates enter the networks (DFIV, DFPV): a group-lasso screen with a penalty set by theory (DESIGN §9).

Covariates that predict nothing still enter every network that reads X, and their weights fit noise: on
``demand_highdim`` the 45 irrelevant columns make DFIV 16× worse than it is given only the relevant seven
(benchmarks/RESULTS.md, "Diagnosis: DFIV on demand_highdim"). The screen keeps a covariate when it predicts the
outcome, the treatment or an instrument; the union of those three selections is what Chernozhukov, Hansen &
Spindler (2015) keep as controls in IV with many controls (the IV form of Belloni, Chernozhukov & Hansen's 2014
double selection), so leaving the rest out costs neither validity of the instruments nor a confounder.

Each equation is a group lasso, one group per covariate (its basis b(x_j) below), on standardised data::

    outcome       Y   ~ [1, b(T_k)]  + Σ_j [b(x_j), b(x_j)·T_k]   (also an effect only through the treatment;
                                                             with more than 2 treatment columns the
                                                             estimators read every covariate)
    treatment     T_k ~ [1]          + Σ_j b(x_j)
    instrument    Z_l ~ [1]          + Σ_j b(x_j)                 (DFPV: each proxy column, W and Z)

    b(x) = [x, (x + 0.674)₊, x₊, (x − 0.674)₊]   (hinges at the standard normal's quartiles: monotone, convex
                                                 and kinked effects all load on the group; constant or
                                                 collinear columns of a binary x drop out)

A categorical covariate's group is its indicator columns, so it is kept or left out whole (a formula's term, its
columns).

What the screen cannot see: each equation is additive over the covariates, so a covariate whose effect runs only
through its product with another covariate (and not through its own hinge basis), or only through a product with
a nonlinear function of the treatment, is left out; the selection also reads the outcomes of the rows the
held-out rule later calls unseen, and the bands do not account for it. The penalty is set for homoskedastic
noise; under heteroskedasticity it is only approximately the noise's level.

The bracketed first columns are unpenalised and partialled out; each group is then orthonormalised (G_jᵀG_j/n = I),
so that under "x_j has no effect" the score n·‖G_jᵀε/n‖²/σ² is χ² with d_j degrees of freedom, and the penalty
that a noise group exceeds with probability at most γ/p is (Belloni, Chen, Chernozhukov & Hansen 2012's
rigorous penalty, for groups)::

    minimise  ‖r − Σ_j G_j b_j‖² / 2n + Σ_j λ_j ‖b_j‖,    λ_j = c σ̂ √(χ²_{d_j}⁻¹(1 − γ/p) / n),
    c = 1.1,  γ = 0.1 / log n,  p = number of covariates;

σ̂ starts at the partialled target's standard deviation and is re-estimated from the least-squares residual on
the selected groups until the selection repeats (at most ten times). Everything works on the Gram matrix of the
columns (summed over ranks in a distributed fit, so every rank keeps the same covariates), on at most
``MAX_ROWS`` rows (a seeded subsample beyond).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
from scipy import linalg, stats

__all__ = ["screen_covariates", "screen_record", "covariate_groups", "net_dims", "hinge_basis", "group_lasso", "KNOTS",
           "MAX_ROWS", "SCREEN_C"]

KNOTS = (-0.6745, 0.0, 0.6745)  # the standard normal's quartiles, on standardised columns
SCREEN_C = 1.1  # slack over the noise's largest score (Belloni, Chen, Chernozhukov & Hansen 2012)
MAX_ROWS = 100_000  # rows the screen reads at most (its Gram matrices cost n·p²)
MAX_INTERACTED = 2  # treatment columns the outcome equation's groups interact with at most
_MAX_SIGMA_ITER = 10
_CHUNK = 20_000


def hinge_basis(x: np.ndarray) -> np.ndarray:
    """b(x) of each standardised column: (n, d) → (n, d, 4) = [x, (x − k)₊ for k in KNOTS]."""
    return np.concatenate([x[:, :, None]] + [np.maximum(x - k, 0.0)[:, :, None] for k in KNOTS], axis=2)


def group_basis(X: np.ndarray, groups: list) -> tuple:
    """Each covariate's basis, side by side: (n, Σ d_g) and the column slice of each covariate. A covariate of one
    column gets its hinge basis b(x); a categorical one (several indicator columns) its indicators."""
    blocks = [hinge_basis(X[:, g]).reshape(len(X), -1) if len(g) == 1 else X[:, g] for g in groups]
    ends = np.cumsum([b.shape[1] for b in blocks])
    return np.concatenate(blocks, axis=1), [slice(e - b.shape[1], e) for e, b in zip(ends, blocks)]


def _equations(T: np.ndarray, Z: np.ndarray, X: np.ndarray, Y: np.ndarray, groups: list):
    """The two Gram layouts on one chunk of rows: ``[(unpenalised, groups side by side, targets, slices)]``, the
    outcome equation's, then the one the treatment and instrument equations share."""
    ones = np.ones((len(X), 1))
    bx, slices = group_basis(X, groups)
    # The outcome equation's group j: b(x_j) and its products with each treatment column (up to
    # MAX_INTERACTED columns: the group's width, and the Gram's cost, grow with them).
    inter = range(T.shape[1]) if T.shape[1] <= MAX_INTERACTED else range(0)
    by = np.concatenate([np.concatenate([bx[:, sl]] + [bx[:, sl] * T[:, k, None] for k in inter], axis=1)
                         for sl in slices], axis=1)
    widths = [(sl.stop - sl.start) * (1 + len(inter)) for sl in slices]
    ends = np.cumsum(widths)
    y_slices = [slice(e - w, e) for e, w in zip(ends, widths)]
    bt = hinge_basis(T).reshape(len(T), -1)
    return [(np.c_[ones, bt], by, Y, y_slices), (ones, bx, np.c_[T, Z], slices)]


def _gram(chunks, reduce_sum) -> tuple:
    """Σ over rows of AᵀA with A = [unpenalised, groups flattened, targets], and the row count."""
    total, n = None, 0
    for U, G, targets, _ in chunks:
        A = np.c_[U, G, targets]
        part = A.T @ A
        total = part if total is None else total + part
        n += len(A)
    if reduce_sum is not None:
        total = reduce_sum(total)
        n = int(reduce_sum(np.array([float(n)]))[0])
    return total / n, n


def group_lasso(C: np.ndarray, c: np.ndarray, lam: np.ndarray, groups: list, tol: float = 1e-8,
                max_sweeps: int = 1000) -> np.ndarray:
    """Block coordinate descent of ``½ bᵀCb − cᵀb + Σ_j λ_j ‖b_j‖`` (the group lasso in Gram form, C = GᵀG/n,
    c = Gᵀr/n) with every diagonal block C_jj = I, so each block's step is a soft threshold:
    b_j ← g_j · max(0, 1 − λ_j / ‖g_j‖), g_j = c_j − (Cb)_j + b_j."""
    b = np.zeros_like(c)
    Cb = np.zeros_like(c)
    for _ in range(max_sweeps):
        largest = 0.0
        for j, idx in enumerate(groups):
            g = c[idx] - Cb[idx] + b[idx]
            norm = float(np.linalg.norm(g))
            new = g * max(0.0, 1.0 - lam[j] / norm) if norm > 0 else np.zeros_like(g)
            step = new - b[idx]
            if np.any(step):
                Cb += C[:, idx] @ step
                b[idx] = new
                largest = max(largest, float(np.abs(step).max()))
        if largest < tol:
            break
    return b


def _select(M: np.ndarray, n: int, n_u: int, slices: list, n_targets: int) -> list:
    """Per target column of one equation (Gram ``M`` of [U, G, targets] / n, covariate j's columns of G at
    ``slices[j]``): the selected covariates' indices."""
    k_g, p = slices[-1].stop, len(slices)
    u = slice(0, n_u)
    # Partial out the unpenalised columns: the Schur complement of M_UU (jitter only against exact collinearity).
    Muu = M[u, u] + 1e-10 * np.trace(M[u, u]) / n_u * np.eye(n_u)
    L = linalg.cholesky(Muu, lower=True)
    W = linalg.solve_triangular(L, M[u, n_u:], lower=True)
    S = M[n_u:, n_u:] - W.T @ W
    Sg, Sgy, Syy = S[:k_g, :k_g], S[:k_g, k_g:], np.diag(S[k_g:, k_g:])
    # Orthonormalise each group: G_j Q_j with Q_jᵀ S_jj Q_j = I (directions of no variance dropped).
    blocks, groups, start = [], [], 0
    for sl in slices:
        e, V = np.linalg.eigh(Sg[sl, sl])
        keep = e > 1e-9 * max(1.0, float(e.max()) if e.size else 1.0)
        Q = np.zeros((k_g, int(keep.sum())))
        Q[sl] = V[:, keep] / np.sqrt(e[keep])
        blocks.append(Q)
        groups.append(np.arange(start, start + Q.shape[1]))
        start += Q.shape[1]
    Q = np.concatenate(blocks, axis=1)
    C, cross = Q.T @ Sg @ Q, Q.T @ Sgy
    gamma = 0.1 / math.log(max(n, 3))
    quantile = np.array([stats.chi2.ppf(1.0 - gamma / p, max(len(idx), 1)) for idx in groups])
    out = []
    for t in range(n_targets):
        sigma2, chosen, previous = max(float(Syy[t]), 0.0), [], None
        for _ in range(_MAX_SIGMA_ITER):
            lam = SCREEN_C * np.sqrt(sigma2 * quantile / n)
            lam[[len(idx) == 0 for idx in groups]] = np.inf
            b = group_lasso(C, cross[:, t], lam, groups)
            chosen = [j for j, idx in enumerate(groups) if len(idx) and np.any(b[idx] != 0)]
            if chosen == previous:
                break
            previous = chosen
            cols = np.concatenate([groups[j] for j in chosen]) if chosen else np.array([], dtype=int)
            dof = n - n_u - len(cols)
            if dof <= 10:
                break
            fit = 0.0
            if len(cols):  # the least-squares fit on the selected groups (post-lasso), for σ̂
                Ls = linalg.cho_factor(C[np.ix_(cols, cols)] + 1e-10 * np.eye(len(cols)))
                fit = float(cross[cols, t] @ linalg.cho_solve(Ls, cross[cols, t]))
            sigma2 = max(float(Syy[t]) - fit, 0.0) * n / dof
        out.append(chosen)
    return out


def screen_covariates(X: np.ndarray, T: np.ndarray, Z: np.ndarray, Y: np.ndarray,
                      reduce_sum: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                      groups: Optional[list] = None) -> dict:
    """The covariates the screen keeps, from standardised training data (n rows of each role, float64).

    ``groups``: the columns of X that make up each covariate (a categorical covariate's indicators); default: one
    column each. Returns a dict: ``kept`` (sorted column indices of X, every column of each kept covariate),
    ``outcome``, ``treatment``, ``instrument`` (the covariates, as indices into ``groups``, that each kind of
    equation selected; treatment and instrument pooled over their columns) and ``rows`` (how many rows it read,
    over all ranks).
    """
    n_local, p = X.shape
    groups = [np.array([j]) for j in range(p)] if groups is None else [np.asarray(g, dtype=np.int64) for g in groups]
    rows = np.arange(n_local)
    share = MAX_ROWS
    if reduce_sum is not None:  # each rank reads its share of MAX_ROWS
        n_all = float(reduce_sum(np.array([float(n_local)]))[0])
        share = int(math.ceil(MAX_ROWS * n_local / max(n_all, 1.0)))
    if n_local > share:
        rows = np.sort(np.random.default_rng(0).choice(n_local, share, replace=False))
    d_t, d_z = T.shape[1], Z.shape[1]
    per = [[], []]
    for start in range(0, len(rows), _CHUNK):
        r = rows[start:start + _CHUNK]
        for k, eq in enumerate(_equations(T[r], Z[r], X[r], Y[r], groups)):
            per[k].append(eq)
    if not per[0]:  # no rows on this rank: its Gram matrices are zeros of the right shape
        for k, eq in enumerate(_equations(T[:0], Z[:0], X[:0], Y[:0], groups)):
            per[k].append(eq)
    selected = {}
    (M_y, n), (M_tz, _) = _gram(per[0], reduce_sum), _gram(per[1], reduce_sum)
    selected["outcome"] = _select(M_y, n, 1 + d_t * (len(KNOTS) + 1), per[0][0][3], Y.shape[1])[0]
    tz = _select(M_tz, n, 1, per[1][0][3], d_t + d_z)
    selected["treatment"] = sorted(set().union(*tz[:d_t]))
    selected["instrument"] = sorted(set().union(*tz[d_t:])) if d_z else []
    chosen = sorted(set(selected["outcome"]) | set(selected["treatment"]) | set(selected["instrument"]))
    kept = sorted(int(c) for j in chosen for c in groups[j])
    return dict(kept=np.array(kept, dtype=np.int64), rows=n, **selected)


def covariate_groups(columns, levels: Optional[dict], width: int, formula=None) -> tuple:
    """The covariates' names and, for each, its columns of the encoded X: a categorical covariate (``levels``, as
    :func:`deepcausal._data.encode_frame` encodes it: one indicator column per level, in place) is one group. For an
    estimator built by ``from_formula`` (``formula``, its :class:`~deepcausal.formula.ModelFormula`), each term of
    the covariates' part is one (``C(g)``'s indicators together, ``a:b`` apart from ``a``)."""
    if formula is not None and formula.columns.get("X"):
        matrix = list(formula.columns["X"])
        spec = formula.specs["X"]
        names, groups = [], []
        for term, sl in spec.term_slices.items():
            idx = [matrix.index(c) for c in spec.column_names[sl] if c in matrix]
            if idx:
                names.append(str(term))
                groups.append(np.array(idx))
        if sum(map(len, groups)) == width:
            return names, groups
    given, levels = list(columns or []), dict(levels or {})
    if sum(len(levels[c]) if c in levels else 1 for c in given) != width:  # arrays without names
        return [f"X{j}" for j in range(width)], [np.array([j]) for j in range(width)]
    names, groups, start = [], [], 0
    for c in given:
        k = len(levels[c]) if c in levels else 1
        names.append(str(c))
        groups.append(np.arange(start, start + k))
        start += k
    return names, groups


def screen_record(est, data: dict, scalers: dict, images: dict, columns, levels=None, reduce_sum=None) -> dict:
    """``covariate_selection_`` of a fit of ``est`` (its ``covariate_selection`` parameter; estimators without one
    read every covariate): the screen's choice on the standardised data (``scalers``), whose covariate scaler then
    drops the covariates left out (``keep``), so that every path into the networks does.

    ``columns``, ``levels``: the covariates' names and the levels of the categorical ones. The record's ``names``
    and ``kept_names`` are covariates (a categorical one is kept or left out whole), ``kept`` the encoded columns
    the networks read, and ``outcome``, ``treatment``, ``instrument`` the names each kind of equation selected.
    ``kept`` is None where the screen does not apply (images; networks the user gave that read the covariates;
    more than ``MAX_INTERACTED`` treatment columns), with the ``reason``; an empty dict without covariates or with
    the parameter None.
    """
    rule = getattr(est, "covariate_selection", None)
    custom_nets = any(getattr(est, p) is not None for p, keys, _ in est._nets.values() if "X" in keys)
    if rule not in (None, "group_lasso"):
        raise ValueError(f"covariate_selection must be 'group_lasso' or None, got {rule!r}")
    if data.get("X") is None or rule is None:
        return {}
    bound = getattr(est, "_formula_inputs", None)
    names, groups = covariate_groups(columns, levels, data["X"].shape[1], bound.model if bound is not None else None)
    key = est._predict_keys[0]
    why = ("the covariates are an image" if images.get("X") else
           "an image treatment or instrument" if any(images.get(k) for k in data if k not in ("X", "Y")) else
           "custom networks that read the covariates read every covariate" if custom_nets else
           f"more than {MAX_INTERACTED} treatment columns, whose products with the covariates the outcome's equation "
           "does not read" if data[key].shape[1] > MAX_INTERACTED else None)
    if why:
        return {"rule": rule, "kept": None, "reason": why, "names": names}
    # The treatment, and every other role but the outcome (DFIV: the instruments; DFPV: both proxies).
    std = {k: scalers[k].transform(v) for k, v in data.items() if v is not None}
    others = np.concatenate([std[k] for k in std if k not in ("X", "Y", key)], axis=1)
    found = screen_covariates(std["X"], std[key], others, std["Y"], reduce_sum, groups)
    scalers["X"].keep = found["kept"]
    by_name = {k: [names[j] for j in found[k]] for k in ("outcome", "treatment", "instrument")}
    kept_names = [n for n in names if any(n in v for v in by_name.values())]
    return {"rule": rule, "kept": found["kept"], "rows": found["rows"], **by_name, "names": names,
            "kept_names": kept_names}


def net_dims(est) -> dict:
    """Input widths of a fitted estimator's networks: ``dims_`` with the covariates the screen kept (None: none)."""
    dims = dict(est.dims_)
    kept = (getattr(est, "covariate_selection_", None) or {}).get("kept")
    if kept is not None and dims.get("X") is not None:
        dims["X"] = len(kept) or None
    return dims

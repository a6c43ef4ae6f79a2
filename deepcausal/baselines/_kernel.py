"""Closed-form kernel baselines: kernel IV (KIV), kernel proxy variable (KPV), proxy MMR (PMMR).

Kernels are products of per-column Gaussians with median-heuristic bandwidths, computed as
``sklearn.metrics.pairwise.rbf_kernel(u/σ, v/σ, gamma=0.5)``; linear algebra is scipy's.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._base import Baseline, hstack, median_bandwidths, subsample

__all__ = ["KIV", "KPV", "PMMR"]

_LAMBDAS = tuple(10.0 ** np.arange(-7.0, 0.5, 0.5))
_XIS = tuple(10.0 ** np.arange(-8.0, 0.5, 1.0))


def _gauss(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    from sklearn.metrics.pairwise import rbf_kernel

    return rbf_kernel(U, V, gamma=0.5)


def _psd_solve(G: np.ndarray, R: np.ndarray) -> np.ndarray:
    """G⁻¹R for a symmetric positive semi-definite G: Cholesky with a growing jitter, then lstsq."""
    scale = max(float(np.trace(G)) / G.shape[0], 1e-300)
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        H = G + jitter * scale * np.eye(G.shape[0]) if jitter else G
        try:
            return scipy.linalg.solve(H, R, assume_a="pos")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            continue
    return scipy.linalg.lstsq(G, R)[0]


def _select_stage1(Kc11, Kc12, Kt11, Kt21, lambdas):
    """Conditional mean embedding with λ chosen on the other half (Singh, Sahani, Gretton 2019, §A.5.2).

    Γ(λ) = (Kc11 + nλI)⁻¹ Kc12 maps half-1 target features to predictions at half 2. Its held-out
    loss is (1/m) tr(Kt22 − 2 Kt21 Γ + Γᵀ Kt11 Γ) (Kt22 has a unit diagonal for Gaussian kernels).
    With Kc11 = Q diag(s) Qᵀ and B = QᵀKc12, d = 1/(s + nλ): tr(Kt21 Γ) = Σᵢ dᵢ (B ∘ (Kt21 Q)ᵀ)ᵢ.,
    tr(ΓᵀKt11Γ) = dᵀ((QᵀKt11Q) ∘ BBᵀ) d, so every λ costs O(n²).

    Returns (Γ, λ, losses).
    """
    n, m = Kc12.shape
    s, Q = scipy.linalg.eigh(Kc11)
    s = np.clip(s, 0.0, None)
    B = Q.T @ Kc12
    cross = np.sum(B * (Kt21 @ Q).T, axis=1)
    quad = (Q.T @ Kt11 @ Q) * (B @ B.T)
    losses = {}
    for lam in lambdas:
        d = 1.0 / (s + n * lam)
        losses[float(lam)] = (m - 2.0 * d @ cross + d @ quad @ d) / m
    lam = min(losses, key=losses.get)
    Gamma = Q @ (B / (s + n * lam)[:, None])
    return Gamma, lam, losses


class _KernelBase(Baseline):
    requires = ("sklearn", "scipy")
    tabular_only = False  # Gaussian kernels on the raw pixels (as the DFIV and DFPV papers ran them)

    def _scaled(self, M, sig):
        return M / sig


class KIV(_KernelBase):
    """Kernel instrumental-variable regression (Singh, Sahani & Gretton 2019), closed form.

    With treatment-side inputs x = (t, covariates) and instrument-side inputs z = (instruments,
    covariates), the rows are split in two halves (n rows, m rows):

    * stage 1 (half 1): conditional mean embedding μ(z) = Σᵢ Γᵢ(z) k(xᵢ, ·),
      Γ = (K_ZZ + nλI)⁻¹ K_Zz̃ ;
    * stage 2 (half 2): h = Σᵢ αᵢ k(xᵢ, ·) with W = K_XX Γ, α = (W Wᵀ + m ξ K_XX)⁻¹ W ỹ ;
    * prediction: h(x) = Σᵢ αᵢ k(xᵢ, x).

    λ is chosen by the stage-1 out-of-sample loss on half 2 and ξ by the stage-2 out-of-sample loss
    ‖y₁ − K_XX α‖² on half 1, each over a log grid, as in the paper. Kernels: product Gaussians with
    median-heuristic bandwidths per column. The outcome is centred and scaled (a constant shift of
    h leaves the IV model unchanged). Each half is capped at ``max_rows`` rows by random subsampling
    (a warning says so): the solves are O(n³).

    Parameters
    ----------
    lambdas, xis : tuple of float
        Grids of the stage-1 and stage-2 ridge coefficients.
    max_rows : int, default=2000
        Rows per half at most.
    random_state : int or None
        Seeds the split, the subsample and the bandwidth sample.

    References
    ----------
    Singh, Sahani, Gretton (2019). Kernel instrumental variable regression. NeurIPS.
    """

    name = "kiv"
    description = "kernel instrumental-variable regression (Singh, Sahani and Gretton 2019), closed form"
    kinds = frozenset({"iv"})

    def __init__(self, *, lambdas=_LAMBDAS, xis=_XIS, max_rows=2000, random_state=None):
        self.lambdas = lambdas
        self.xis = xis
        self.max_rows = max_rows
        self.random_state = random_state

    def _fit(self, data):
        rng = np.random.default_rng(self.random_state)
        V, U, Y = hstack(data["T"], data["X"]), hstack(data["Z"], data["X"]), data["Y"]
        self.y_mean_, self.y_sd_ = float(Y.mean()), float(Y.std() or 1.0)
        y = (Y - self.y_mean_) / self.y_sd_
        self.sig_v_, sig_u = median_bandwidths(V, rng), median_bandwidths(U, rng)
        Vs, Us = V / self.sig_v_, U / sig_u
        perm = rng.permutation(len(y))
        h1, h2 = perm[: len(y) // 2], perm[len(y) // 2:]
        h1 = h1[subsample(len(h1), self.max_rows, rng, "kiv stage 1")]
        h2 = h2[subsample(len(h2), self.max_rows, rng, "kiv stage 2")]
        K11 = _gauss(Vs[h1], Vs[h1])
        Gamma, self.lambda_, _ = _select_stage1(
            _gauss(Us[h1], Us[h1]), _gauss(Us[h1], Us[h2]), K11, _gauss(Vs[h2], Vs[h1]), self.lambdas
        )
        W = K11 @ Gamma
        m = len(h2)
        WWt, Wy = W @ W.T, W @ y[h2]
        best = None
        self.stage2_losses_ = {}
        for xi in self.xis:
            alpha = _psd_solve(WWt + m * xi * K11, Wy)
            loss = float(np.mean((y[h1] - K11 @ alpha) ** 2))
            self.stage2_losses_[float(xi)] = loss
            if best is None or loss < best[0]:
                best = (loss, float(xi), alpha)
        _, self.xi_, self.alpha_ = best
        self.V1_ = Vs[h1]

    def _predict(self, T, X):
        K = _gauss(hstack(T, X) / self.sig_v_, self.V1_)
        return self.y_mean_ + self.y_sd_ * (K @ self.alpha_)


class KPV(_KernelBase):
    """Kernel proxy variable (Mastouri et al. 2021), closed form.

    Treatment side a = (treatment, covariates), treatment proxy z, outcome proxy w. Halves of n and
    m rows:

    * stage 1 (half 1): conditional mean embedding of w given (a, z),
      Γ = (K_AA ∘ K_ZZ + nλI)⁻¹ (K_Aã ∘ K_Zz̃), λ by the held-out loss on half 2;
    * stage 2 (half 2): bridge h = Σᵢ αᵢ φ(ãᵢ) ⊗ μ̂ᵢ (representer over half 2), Gram
      M = K_ãã ∘ (Γᵀ K_WW Γ), α = (M + m ξ I)⁻¹ ỹ, ξ by an 80/20 split of half 2;
    * dose-response: f(a) = E_W h(a, W) = Σᵢ αᵢ k(a, ãᵢ) Γᵢᵀ w̄, with w̄ⱼ the mean over the training
      rows of k(wⱼ, w). With covariates the mean is over the training (x, w) pairs jointly.

    Product Gaussian kernels with median-heuristic bandwidths; the outcome is centred and scaled
    (a constant shift of the bridge shifts f by the same constant). Each half is capped at
    ``max_rows`` rows.

    Parameters
    ----------
    lambdas, xis : tuple of float
    max_rows : int, default=2000
    random_state : int or None

    References
    ----------
    Mastouri, Zhu, Gultchin, Korba, Silva, Kusner, Gretton, Muandet (2021). Proximal causal learning
    with kernels: two-stage estimation and moment restriction. ICML.
    """

    name = "kpv"
    description = "kernel proxy variable (Mastouri et al. 2021), closed form"
    kinds = frozenset({"proxy"})

    def __init__(self, *, lambdas=_LAMBDAS, xis=_XIS, max_rows=2000, random_state=None):
        self.lambdas = lambdas
        self.xis = xis
        self.max_rows = max_rows
        self.random_state = random_state

    def _fit(self, data):
        rng = np.random.default_rng(self.random_state)
        A, Z, W, X, Y = data["A"], data["Z"], data["W"], data["X"], data["Y"]
        self.y_mean_, self.y_sd_ = float(Y.mean()), float(Y.std() or 1.0)
        y = (Y - self.y_mean_) / self.y_sd_
        self.d_a_ = A.shape[1]
        AX = hstack(A, X)
        self.sig_a_ = median_bandwidths(AX, rng)
        sig_z, self.sig_w_ = median_bandwidths(Z, rng), median_bandwidths(W, rng)
        As, Zs, Ws = AX / self.sig_a_, Z / sig_z, W / self.sig_w_
        perm = rng.permutation(len(y))
        h1, h2 = perm[: len(y) // 2], perm[len(y) // 2:]
        h1 = h1[subsample(len(h1), self.max_rows, rng, "kpv stage 1")]
        h2 = h2[subsample(len(h2), self.max_rows, rng, "kpv stage 2")]
        KA12 = _gauss(As[h1], As[h2])
        KW11 = _gauss(Ws[h1], Ws[h1])
        Gamma, self.lambda_, _ = _select_stage1(
            _gauss(As[h1], As[h1]) * _gauss(Zs[h1], Zs[h1]),
            KA12 * _gauss(Zs[h1], Zs[h2]),
            KW11,
            _gauss(Ws[h2], Ws[h1]),
            self.lambdas,
        )
        M = _gauss(As[h2], As[h2]) * (Gamma.T @ KW11 @ Gamma)
        y2 = y[h2]
        m = len(h2)
        idx = rng.permutation(m)
        tr, va = idx[: int(0.8 * m)], idx[int(0.8 * m):]
        s, Q = scipy.linalg.eigh(M[np.ix_(tr, tr)])
        s = np.clip(s, 0.0, None)
        Qy = Q.T @ y2[tr]
        self.stage2_losses_ = {}
        for xi in self.xis:
            alpha = Q @ (Qy / (s + len(tr) * xi))
            self.stage2_losses_[float(xi)] = float(np.mean((y2[va] - M[np.ix_(va, tr)] @ alpha) ** 2))
        self.xi_ = min(self.stage2_losses_, key=self.stage2_losses_.get)
        alpha = _psd_solve(M + m * self.xi_ * np.eye(m), y2)
        # c_i = mean_r k_X(x_r, x̃_i) (Γᵀ k_W(W₁, w_r))_i over training rows r (k_X ≡ 1 without X).
        r = rng.choice(len(y), min(len(y), self.max_rows), replace=False)
        KW1r = _gauss(Ws[h1], Ws[r])
        inner = Gamma.T @ KW1r  # (m, R)
        if X is not None:
            inner = inner * _gauss(As[h2][:, self.d_a_:], As[r][:, self.d_a_:])
        self.coef_ = alpha * inner.mean(axis=1)
        self.A2_ = As[h2][:, : self.d_a_]

    def _predict(self, T, X):
        K = _gauss(T / self.sig_a_[: self.d_a_], self.A2_)
        return self.y_mean_ + self.y_sd_ * (K @ self.coef_)


class PMMR(_KernelBase):
    """Proxy maximum moment restriction (Mastouri et al. 2021), closed form.

    The bridge h(a, w) solves the moment restriction E[Y − h(A, W) | A, Z] = 0. PMMR minimises the
    maximum moment restriction risk over an RKHS ball, (1/n²) (y − Lα)ᵀ K (y − Lα) + λ αᵀLα with
    L = K_{(a,w)} and K = K_{(a,z)} (a includes the covariates), whose minimiser is
    α = (K L + n²λ I)⁻¹ K y. It is computed through the symmetric form: with M = K^½ L K^½,
    α = K^½ (M + n²λ I)⁻¹ K^½ y, so one eigendecomposition serves the whole λ grid.

    λ is chosen on an 80/20 split of the rows by the held-out MMR risk rᵀ K_val r / m² of the
    residuals r = y_val − h(a_val, w_val); then refitted on all rows. Dose-response
    f(a) = Σᵢ αᵢ k(a, aᵢ) cᵢ with cᵢ the mean over training rows r of k(w_r, wᵢ) (times k(x_r, xᵢ)
    with covariates). Product Gaussian kernels with median-heuristic bandwidths; the outcome is
    centred and scaled. At most ``max_rows`` rows are used (random subsample, with a warning).

    Parameters
    ----------
    lambdas : tuple of float
        Grid of λ.
    max_rows : int, default=2000
    random_state : int or None

    References
    ----------
    Mastouri et al. (2021). Proximal causal learning with kernels: two-stage estimation and moment
    restriction. ICML.
    """

    name = "pmmr"
    description = "proxy maximum moment restriction (Mastouri et al. 2021), closed form"
    kinds = frozenset({"proxy"})

    def __init__(self, *, lambdas=tuple(10.0 ** np.arange(-9.0, -0.5, 0.5)), max_rows=2000, random_state=None):
        self.lambdas = lambdas
        self.max_rows = max_rows
        self.random_state = random_state

    @staticmethod
    def _system(K, L):
        s, Q = scipy.linalg.eigh(K)
        Kh = (Q * np.sqrt(np.clip(s, 0.0, None))) @ Q.T  # K^½
        e, P = scipy.linalg.eigh(Kh @ L @ Kh)
        return Kh, np.clip(e, 0.0, None), P

    def _fit(self, data):
        rng = np.random.default_rng(self.random_state)
        A, Z, W, X, Y = data["A"], data["Z"], data["W"], data["X"], data["Y"]
        self.y_mean_, self.y_sd_ = float(Y.mean()), float(Y.std() or 1.0)
        y = (Y - self.y_mean_) / self.y_sd_
        self.d_a_ = A.shape[1]
        AX = hstack(A, X)
        self.sig_a_ = median_bandwidths(AX, rng)
        As, Zs, Ws = AX / self.sig_a_, Z / median_bandwidths(Z, rng), W / median_bandwidths(W, rng)
        rows = subsample(len(y), self.max_rows, rng, "pmmr")
        As, Zs, Ws, y = As[rows], Zs[rows], Ws[rows], y[rows]
        KA = _gauss(As, As)
        L = KA * _gauss(Ws, Ws)
        K = KA * _gauss(Zs, Zs)
        n = len(y)
        idx = rng.permutation(n)
        tr, va = idx[: int(0.8 * n)], idx[int(0.8 * n):]
        Kh, e, P = self._system(K[np.ix_(tr, tr)], L[np.ix_(tr, tr)])
        b = P.T @ (Kh @ y[tr])
        Kva = K[np.ix_(va, va)]
        self.risks_ = {}
        for lam in self.lambdas:
            alpha = Kh @ (P @ (b / (e + len(tr) ** 2 * lam)))
            r = y[va] - L[np.ix_(va, tr)] @ alpha
            self.risks_[float(lam)] = float(r @ Kva @ r) / len(va) ** 2
        self.lambda_ = min(self.risks_, key=self.risks_.get)
        Kh, e, P = self._system(K, L)
        alpha = Kh @ (P @ ((P.T @ (Kh @ y)) / (e + n**2 * self.lambda_)))
        # c_i = mean over the (sub)sampled training rows r of k_W(w_r, w_i) k_X(x_r, x_i).
        C = _gauss(Ws, Ws)
        if X is not None:
            C = C * _gauss(As[:, self.d_a_:], As[:, self.d_a_:])
        self.coef_ = alpha * C.mean(axis=0)
        self.A_ = As[:, : self.d_a_]

    def _predict(self, T, X):
        K = _gauss(T / self.sig_a_[: self.d_a_], self.A_)
        return self.y_mean_ + self.y_sd_ * (K @ self.coef_)

"""DeepIV (Hartford et al. 2017) in torch: mixture-density first stage, sampled second stage."""

from __future__ import annotations

import math

import numpy as np

from ._base import Baseline, hstack, standardize

__all__ = ["DeepIV"]


def _mlp(d_in, d_out, hidden):
    from torch import nn

    layers, d = [], d_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class DeepIV(Baseline):
    """DeepIV: a mixture density network for T | (Z, X), then h(t, x) trained on sampled treatments.

    Stage 1 fits p(t | z, x) = Σₖ πₖ(z, x) N(t; μₖ(z, x), diag σₖ²(z, x)) — a ReLU MLP (``hidden``)
    with K Gaussian components — by maximum likelihood. Stage 2 fits an MLP h(t, x) by the loss
    (y − h̄_a)(y − h̄_b), where h̄_a and h̄_b average h over two independent sets of ``n_samples``
    treatments drawn from the fitted mixture: its gradient is unbiased for that of
    E[(y − E[h(T, x) | z, x])²] (Hartford et al.'s two-sample estimator). All inputs and the outcome
    are standardized; Adam (lr 1e-3), batch 128, fixed numbers of epochs (no test data is looked at).

    Parameters
    ----------
    n_components : int, default=5
    hidden : tuple of int, default=(64, 64)
    epochs1, epochs2 : int, default=(30, 30)
        Epochs of the mixture-density and the outcome network.
    n_samples : int, default=2
        Treatment draws per row in each of the two sample sets.
    batch_size : int, default=128
    lr : float, default=1e-3
    random_state : int or None

    References
    ----------
    Hartford, Lewis, Leyton-Brown, Taddy (2017). Deep IV: a flexible approach for counterfactual
    prediction. ICML.
    """

    name = "deepiv"
    description = "DeepIV (Hartford et al. 2017): a mixture density first stage, then a network for h(t, x)"
    requires = ("torch",)
    kinds = frozenset({"iv"})
    tabular_only = False  # its networks take the flattened image

    def __init__(self, *, n_components=5, hidden=(64, 64), epochs1=30, epochs2=30, n_samples=2,
                 batch_size=128, lr=1e-3, random_state=None):
        self.n_components = n_components
        self.hidden = hidden
        self.epochs1 = epochs1
        self.epochs2 = epochs2
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state

    def _mixture(self, out, d_t):
        import torch

        K = self.n_components
        logits = out[:, :K]
        mu = out[:, K : K + K * d_t].reshape(-1, K, d_t)
        log_sd = out[:, K + K * d_t :].reshape(-1, K, d_t).clamp(-7.0, 3.0)
        return torch.log_softmax(logits, dim=1), mu, log_sd

    def _fit(self, data):
        import torch

        T, X, Z, Y = data["T"], data["X"], data["Z"], data["Y"]
        gen = torch.Generator().manual_seed(0 if self.random_state is None else int(self.random_state))
        torch.manual_seed(0 if self.random_state is None else int(self.random_state))
        V, U = hstack(T, X), hstack(Z, X)
        self.v_scale_, self.u_scale_ = standardize(V), standardize(U)
        self.y_mean_, self.y_sd_ = float(Y.mean()), float(Y.std() or 1.0)
        d_t, K = T.shape[1], self.n_components
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        Vs = f32((V - self.v_scale_[0]) / self.v_scale_[1])
        Us = f32((U - self.u_scale_[0]) / self.u_scale_[1])
        ys = f32((Y - self.y_mean_) / self.y_sd_)
        Ts, Xs = Vs[:, :d_t], Vs[:, d_t:]
        n = len(ys)

        mdn = _mlp(Us.shape[1], K + 2 * K * d_t, self.hidden)
        opt = torch.optim.Adam(mdn.parameters(), lr=self.lr)
        for _ in range(self.epochs1):
            for idx in torch.randperm(n, generator=gen).split(self.batch_size):
                logw, mu, log_sd = self._mixture(mdn(Us[idx]), d_t)
                t = Ts[idx][:, None, :]
                comp = (-0.5 * ((t - mu) / log_sd.exp()) ** 2 - log_sd - 0.5 * math.log(2 * math.pi)).sum(-1)
                loss = -torch.logsumexp(logw + comp, dim=1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        mdn.eval()

        h = _mlp(Vs.shape[1], 1, self.hidden)
        opt = torch.optim.Adam(h.parameters(), lr=self.lr)
        S = self.n_samples
        for _ in range(self.epochs2):
            for idx in torch.randperm(n, generator=gen).split(self.batch_size):
                with torch.no_grad():
                    logw, mu, log_sd = self._mixture(mdn(Us[idx]), d_t)
                    b = len(idx)
                    k = torch.multinomial(logw.exp(), 2 * S, replacement=True, generator=gen)  # (b, 2S)
                    rows = torch.arange(b)[:, None]
                    eps = torch.randn(b, 2 * S, d_t, generator=gen)
                    t = mu[rows, k] + log_sd[rows, k].exp() * eps  # (b, 2S, d_t)
                x = Xs[idx][:, None, :].expand(b, 2 * S, Xs.shape[1])
                hv = h(torch.cat([t, x], dim=2)).squeeze(-1)  # (b, 2S)
                ha, hb = hv[:, :S].mean(1), hv[:, S:].mean(1)
                loss = ((ys[idx] - ha) * (ys[idx] - hb)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        h.eval()
        self.h_ = h

    def _predict(self, T, X):
        import torch

        Vs = (hstack(T, X) - self.v_scale_[0]) / self.v_scale_[1]
        with torch.no_grad():
            out = self.h_(torch.as_tensor(Vs, dtype=torch.float32)).numpy().astype(np.float64)[:, 0]
        return self.y_mean_ + self.y_sd_ * out

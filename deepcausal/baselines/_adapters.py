"""The package's own estimators behind the baseline interface, with their default settings."""

from __future__ import annotations

import numpy as np

from ._base import Baseline

__all__ = ["DFIVMethod", "DFPVMethod"]


class _PackageEstimator(Baseline):
    tabular_only = False  # both estimators take image treatments

    def __init__(self, *, random_state=None, **params):
        self.random_state = random_state
        self.params = params

    def get_params(self, deep=True):
        return {"random_state": self.random_state, **self.params}

    def _estimator(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, design):
        self.check_applicable(design)
        est = self._estimator()
        if design.train is not None:
            est.fit(design.train, **design.fit_kwargs())
        else:
            est.fit(**design.array_kwargs())
        self.estimator_ = est
        self.fitted_ = True
        return self

    def predict(self, design):
        if not getattr(self, "fitted_", False):
            return super().predict(design)  # raises NotFittedError
        inputs = design.test_X if design.train is not None else design.test_X["treatment"]
        return np.asarray(self.estimator_.predict(inputs), dtype=np.float64).ravel()


class DFIVMethod(_PackageEstimator):
    """:class:`deepcausal.DFIV` with its default settings (``random_state`` = the seed; extra keyword
    arguments are passed to the constructor)."""

    name = "dfiv"
    kinds = frozenset({"iv"})

    def _estimator(self):
        from ..iv import DFIV

        return DFIV(random_state=self.random_state, **self.params)


class DFPVMethod(_PackageEstimator):
    """:class:`deepcausal.DFPV` with its default settings (imported lazily)."""

    name = "dfpv"
    kinds = frozenset({"proxy"})

    def _estimator(self):
        from ..proxy import DFPV

        return DFPV(random_state=self.random_state, **self.params)

"""The package's own estimators behind the baseline interface, with their default settings."""

from __future__ import annotations

import inspect

import numpy as np

from ._base import Baseline

__all__ = ["DFIVMethod", "DFPVMethod"]


class _PackageEstimator(Baseline):
    """A package estimator as a baseline; keyword arguments beyond ``random_state`` go to its constructor.

    Those arguments are this baseline's parameters too (``get_params``, ``set_params``, ``clone``), which
    scikit-learn's signature-based introspection cannot see behind ``**params``: hence the overrides.
    """

    tabular_only = False  # both estimators take image treatments
    requires = ("torch",)

    def __init__(self, *, random_state=None, **params):
        self.random_state = random_state
        self.params = params

    def get_params(self, deep=True):
        return {"random_state": self.random_state, **self.params}

    def set_params(self, **params):
        valid = [p for p in inspect.signature(self._estimator_class().__init__).parameters if p != "self"]
        for key, value in params.items():
            if key == "random_state":
                self.random_state = value
            elif key in valid:
                self.params = {**self.params, key: value}  # a new dict: clones never share one
            else:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; valid: {valid}")
        return self

    @staticmethod
    def _estimator_class():  # pragma: no cover - abstract
        raise NotImplementedError

    def _estimator(self):
        # The benchmark runner shows its own bar over the fits: no bar inside one unless asked for.
        return self._estimator_class()(random_state=self.random_state, **{"verbose": False, **self.params})

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
    description = "DFIV, deep feature instrumental variables (this package), default settings"
    kinds = frozenset({"iv"})

    @staticmethod
    def _estimator_class():
        from ..iv import DFIV

        return DFIV


class DFPVMethod(_PackageEstimator):
    """:class:`deepcausal.DFPV` with its default settings (imported lazily)."""

    name = "dfpv"
    description = "DFPV, deep feature proxy causal learning (this package), default settings"
    kinds = frozenset({"proxy"})

    @staticmethod
    def _estimator_class():
        from ..proxy import DFPV

        return DFPV

"""Comparison baselines behind one interface: ``get(name).fit(design).predict(design)``.

Each method is fitted on a benchmark :class:`~deepcausal.datasets.Design`'s training data by its causal
roles and predicts the structural function at the design's test inputs (``design.test_X``); none reads
the test truth.

=================  =====  ==============================================================
name               kind   method
=================  =====  ==============================================================
``dfiv``           iv     :class:`deepcausal.DFIV`, default settings
``naive``          iv     gradient boosting of y on (t, x), instruments ignored
``tsls``           iv     linear 2SLS: y on (t, x, 1) with instruments (z, x, 1)
``sieve2sls``      iv     2SLS on tensor-product cubic splines, knots chosen on a validation split
``kiv``            iv     kernel IV (Singh, Sahani, Gretton 2019)
``deepiv``         iv     DeepIV (Hartford et al. 2017), torch
``dmliv``          iv     econml DMLIV + spline treatment featurizer (needs econml)
``orthoiv``        iv     econml OrthoIV + spline treatment featurizer (needs econml)
``nonparam_dmliv`` iv     econml NonParamDMLIV (needs econml and covariates)
``driv``           iv     econml LinearDRIV (needs econml, one instrument)
``forest_driv``    iv     econml ForestDRIV (needs econml, one instrument, covariates)
``sieve_tsls``     iv     econml SieveTSLS (needs econml)
``npiv``           iv     sieve 2SLS, CCK (2024) adaptive dimension and uniform bands (needs moderndid)
``dfpv``           proxy  :class:`deepcausal.DFPV`, default settings
``naive_proxy``    proxy  gradient boosting of y on a, proxies ignored
``kpv``            proxy  kernel proxy variable (Mastouri et al. 2021)
``pmmr``           proxy  proxy maximum moment restriction (Mastouri et al. 2021)
=================  =====  ==============================================================

Examples
--------
>>> from deepcausal import baselines
>>> from deepcausal.datasets import lowdim
>>> d = lowdim(1000, g="linear", seed=0)
>>> est = baselines.get("sieve2sls", random_state=0).fit(d)
>>> d.score(est.predict(d)) < 0.5
True
"""

from __future__ import annotations

import importlib.util

from ._adapters import DFIVMethod, DFPVMethod
from ._base import Baseline, NotApplicableError
from ._classic import TSLS, Naive, NaiveProxy, Sieve2SLS
from ._deepiv import DeepIV
from ._econml import (
    DMLIVBaseline,
    DRIVBaseline,
    ForestDRIVBaseline,
    NonParamDMLIVBaseline,
    OrthoIVBaseline,
    SieveTSLSBaseline,
    econml_available,
)
from ._kernel import KIV, KPV, PMMR
from ._npiv import NPIV, moderndid_available

__all__ = [
    "Baseline",
    "NotApplicableError",
    "REGISTRY",
    "get",
    "available",
    "requires_econml",
    "missing_dependencies",
    "dependency_error",
    "install_command",
    "econml_available",
    "moderndid_available",
    "NPIV",
    "Naive",
    "NaiveProxy",
    "Sieve2SLS",
    "TSLS",
    "KIV",
    "KPV",
    "PMMR",
    "DeepIV",
    "DFIVMethod",
    "DFPVMethod",
    "DMLIVBaseline",
    "OrthoIVBaseline",
    "NonParamDMLIVBaseline",
    "DRIVBaseline",
    "ForestDRIVBaseline",
    "SieveTSLSBaseline",
]

REGISTRY: dict[str, type[Baseline]] = {
    cls.name: cls
    for cls in (
        DFIVMethod, Naive, TSLS, Sieve2SLS, KIV, DeepIV,
        DMLIVBaseline, OrthoIVBaseline, NonParamDMLIVBaseline, DRIVBaseline, ForestDRIVBaseline, SieveTSLSBaseline,
        NPIV, DFPVMethod, NaiveProxy, KPV, PMMR,
    )
}
"""Method name → class."""


# Where a missing module comes from: the pip requirement that brings it.
_PIP_NAMES = {"econml": '"deepcausal[econml]"', "moderndid": '"deepcausal[npiv]"', "sklearn": "scikit-learn"}


def _module_missing(module: str) -> bool:
    """True when ``module`` cannot be found (without importing it)."""
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return True


def missing_dependencies(name: str) -> list[str]:
    """Modules that method ``name`` needs and that are not installed here (empty when it can run)."""
    return [m for m in _lookup(name).requires if _module_missing(m)]


def dependency_error(name: str) -> str | None:
    """One line saying what method ``name`` misses and how to install it; None when nothing is missing."""
    missing = missing_dependencies(name)
    if not missing:
        return None
    return f"method {name!r} needs {', '.join(missing)}, which is not installed: {install_command(missing)}"


def install_command(modules) -> str:
    """The pip command that installs these modules (econml through the package's ``[econml]`` extra)."""
    return "pip install " + " ".join(dict.fromkeys(_PIP_NAMES.get(m, m) for m in modules))


def requires_econml(name: str) -> bool:
    """True for the econml adapters."""
    return "econml" in _lookup(name).requires


def _lookup(name: str) -> type[Baseline]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(REGISTRY)}") from None


def get(name: str, **params) -> Baseline:
    """A new, unfitted baseline by registry name; ``params`` go to its constructor.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        When a module the method needs is not installed (one line naming what to install).
    """
    cls = _lookup(name)
    error = dependency_error(name)
    if error is not None:
        raise ImportError(error)
    return cls(**params)


def available(kind: str | None = None, design=None) -> list[str]:
    """Names of the methods that can run here (every module they need is installed).

    Parameters
    ----------
    kind : {"iv", "proxy"} or None
        Only methods for this design kind.
    design : Design, optional
        Only methods applicable to this design (kind, images, covariates, instrument count).
    """
    if kind is not None and kind not in ("iv", "proxy"):
        raise ValueError(f"kind must be 'iv', 'proxy' or None, got {kind!r}")
    out = []
    for name, cls in REGISTRY.items():
        if missing_dependencies(name):
            continue
        if kind is not None and kind not in cls.kinds:
            continue
        if design is not None and not cls.applicable(design):
            continue
        out.append(name)
    return out

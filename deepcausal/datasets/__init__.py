"""Benchmark designs with a known structural function (DESIGN §5).

Each generator is seeded and returns a :class:`Design`: the training data by causal role (a DataFrame
for tabular designs, arrays always), the test inputs, the true structural function there, and
``score(pred)`` (out-of-sample MSE).

========================  =====  ============================================================
generator                 kind   story
========================  =====  ============================================================
:func:`demand`            IV     ticket sales vs price; fuel cost instruments a demand shock
:func:`lowdim`            IV     y = g(t) + e, t = z₁ + e + γ: confounding dominates
:func:`linear_binary_iv`  IV     log wage linear in schooling; one binary instrument, covariates
:func:`dsprites`          IV     outcome of a 64×64 heart image; hidden vertical position
:func:`demand_proxy`      proxy  sales vs price; hidden demand level with cost and views proxies
:func:`dsprites_proxy`    proxy  heart image; hidden vertical position scales the effect
========================  =====  ============================================================

Examples
--------
>>> from deepcausal.datasets import demand
>>> d = demand(2000, rho=0.5, seed=0)
>>> d.fit_kwargs()["covariates"]
['time', 'customer_type']
>>> d.score(d.test_truth)
0.0
"""

from ._design import Design
from ._demand import demand, demand_proxy, demand_proxy_structural, demand_structural, psi
from ._dsprites import (
    area_matrix,
    dsprites,
    dsprites_area_structural,
    dsprites_position_structural,
    dsprites_proxy,
)
from .hearts import dsprites_index, load_archive_images, render_hearts
from ._lowdim import lowdim, lowdim_structural
from ._schooling import linear_binary_iv, linear_binary_iv_structural

__all__ = [
    "Design",
    "demand",
    "demand_proxy",
    "dsprites",
    "dsprites_proxy",
    "lowdim",
    "linear_binary_iv",
    "render_hearts",
    "dsprites_index",
    "load_archive_images",
    "demand_structural",
    "demand_proxy_structural",
    "dsprites_position_structural",
    "dsprites_area_structural",
    "area_matrix",
    "lowdim_structural",
    "linear_binary_iv_structural",
    "psi",
]

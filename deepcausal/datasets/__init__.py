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
:func:`newey_powell`      IV     Newey & Powell (2003): y = ln(|x−1|+1)sgn(x−1) + ε, x = z + v
:func:`chen_christensen`  IV     npiv / Chen & Christensen: probit-normal x, w; y = sin(πx) + u
:func:`horowitz`          IV     Horowitz (2011)-style cosine-series density; mildly ill-posed
:func:`kiv_linear`        IV     kernel IV (Singh et al. 2019) linear design, h(x) = 4x − 2
:func:`kiv_sigmoid`       IV     kernel IV sigmoid design, h(x) = ln(|16x−8|+1)sgn(x−0.5)
:func:`weak_iv`           IV     Newey & Powell with a weak instrument (first-stage F ≈ 15)
:func:`demand_highdim`    IV     demand plus 50 covariates: 5 observed confounders, 45 noise
:func:`mastouri_proxy`    proxy  Mastouri et al. (2021) low-dim PCL: two hidden U, 2-D proxies
:func:`miao_proxy`        proxy  Miao et al. (2018) setting: Gaussian U, proxies Z and W
========================  =====  ============================================================

Our own designs of the four kinds of IV design the maintainers hold out (issue 35; not theirs):
:func:`smooth_two_instruments` (a smooth curve in t, one covariate, two Gaussian instruments),
:func:`survey_covariates` (Card's real covariates, a concave return to schooling that differs by race),
:func:`linear_many_covariates` (a line in t plus five Gaussian covariates) and :func:`kink_covariates`
(a kink in t, two covariates of smooth effect).

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
from ._binary_controls import nonlinear_controls_iv, nonlinear_controls_structural
from ._npiv_designs import (
    chen_christensen,
    chen_christensen_structural,
    horowitz,
    horowitz_density,
    horowitz_instrument_mean,
    horowitz_structural,
    kiv_linear,
    kiv_linear_structural,
    kiv_sigmoid,
    kiv_sigmoid_structural,
    newey_powell,
    newey_powell_structural,
    weak_iv,
)
from ._demand_highdim import demand_highdim, demand_highdim_structural
from ._proxy_designs import mastouri_proxy, mastouri_proxy_structural, miao_proxy, miao_proxy_structural
from ._own_designs import (
    kink_covariates,
    kink_covariates_structural,
    linear_many_covariates,
    linear_many_covariates_structural,
    smooth_two_instruments,
    smooth_two_instruments_structural,
    survey_covariates,
    survey_covariates_structural,
)

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
    "nonlinear_controls_iv",
    "nonlinear_controls_structural",
    "psi",
    "newey_powell",
    "chen_christensen",
    "horowitz",
    "kiv_linear",
    "kiv_sigmoid",
    "weak_iv",
    "demand_highdim",
    "mastouri_proxy",
    "miao_proxy",
    "newey_powell_structural",
    "chen_christensen_structural",
    "horowitz_structural",
    "horowitz_density",
    "horowitz_instrument_mean",
    "kiv_linear_structural",
    "kiv_sigmoid_structural",
    "demand_highdim_structural",
    "mastouri_proxy_structural",
    "miao_proxy_structural",
    "smooth_two_instruments",
    "survey_covariates",
    "linear_many_covariates",
    "kink_covariates",
    "smooth_two_instruments_structural",
    "survey_covariates_structural",
    "linear_many_covariates_structural",
    "kink_covariates_structural",
]

"""deepcausal: deep two-stage estimators of dose-response (structural) functions.

DFIV (deep feature instrumental variables) and DFPV (deep feature proxy causal learning) train
neural feature maps by gradient steps while their linear stage heads are solved in closed form,
on minibatches, by a proximal solver (see :mod:`deepcausal.heads`).
"""

__version__ = "0.1.0"

from ._estimator import NotFittedError  # noqa: E402
from .iv import DFIV  # noqa: E402
from .proxy import DFPV  # noqa: E402
from .regression import LastLayerRegressor  # noqa: E402
from .plotting import plot_dose_response  # noqa: E402

__all__ = ["DFIV", "DFPV", "LastLayerRegressor", "NotFittedError", "plot_dose_response"]

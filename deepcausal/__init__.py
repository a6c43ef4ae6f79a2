"""deepcausal: deep two-stage estimators of dose-response (structural) functions.

DFIV (deep feature instrumental variables) and DFPV (deep feature proxy causal learning) train
neural feature maps by gradient steps while their linear stage heads are solved in closed form,
on minibatches, by a proximal solver (see :mod:`deepcausal.heads`).
"""

from sklearn.exceptions import NotFittedError

from ._version import __version__
from .iv import DFIV
from .plotting import plot_dose_response
from .proxy import DFPV
from .regression import LastLayerRegressor

__all__ = ["DFIV", "DFPV", "LastLayerRegressor", "NotFittedError", "plot_dose_response", "__version__"]

"""The warnings and errors deepcausal raises, in one place to import and filter (as ``sklearn.exceptions``).

>>> import warnings
>>> from deepcausal.exceptions import WeakInstrumentWarning
>>> warnings.simplefilter("error", WeakInstrumentWarning)  # make a weak first stage stop the script
>>> warnings.resetwarnings()
"""

from sklearn.exceptions import NotFittedError

from ._diagnostics import IdentificationWarning, ShrinkageWarning, WeakInstrumentWarning
from .heads import NonFiniteError
from .inference import NoDrawsError

__all__ = ["IdentificationWarning", "NoDrawsError", "NonFiniteError", "NotFittedError", "ShrinkageWarning",
           "WeakInstrumentWarning"]

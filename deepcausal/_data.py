"""Input validation at the estimators' boundary: DataFrames or arrays in, checked float arrays out.

Every error names the argument or the column at fault. The user's objects are only read, never
modified (all conversions copy).

Categorical columns (pandas ``category``, ``object`` and string dtypes) of the roles that allow them
(covariates, instruments, proxies) are one-hot encoded by :func:`encode_frame`: one 0/1 column per
level seen at fit, no level dropped (the stage heads carry their own intercepts, and a learned
network has no use for a reference level). The levels are kept as plain lists, so the same encoding
is applied at predict, where an unseen level is an error naming the column and the level. ``bool``
columns are numbers (one 0/1 column).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

ColumnSpec = Union[str, Sequence[str], None]


def as_column_list(spec: ColumnSpec, role: str) -> List:
    """A column name or a list of names → list of names (empty for None).

    Names are kept exactly as given (``0`` stays the integer ``0``), so they match the frame's labels.
    A single name may be any hashable label that is not a list-like (a string, an integer, ...).
    """
    if spec is None:
        return []
    names = list(spec) if isinstance(spec, (list, tuple, pd.Index, np.ndarray)) else [spec]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"{role}: column(s) {dup} listed more than once")
    return names


def _check_frame(df: pd.DataFrame, columns: List, role: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{role}: expected a pandas DataFrame, got {type(df).__name__}")
    if df.columns.duplicated().any():
        dup = sorted(map(str, df.columns[df.columns.duplicated()].unique()))
        raise ValueError(f"the DataFrame has duplicated column names {dup}; make them unique")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{role}: column(s) {missing} not found in the DataFrame (it has {list(df.columns)})")


def is_categorical(s: pd.Series) -> bool:
    """Whether a column is categorical: pandas ``category``, ``object`` or a string dtype (not bool)."""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return False
    return isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s) \
        or pd.api.types.is_string_dtype(s)


def _numeric_column(s: pd.Series, c, role: str, categorical_ok: bool) -> np.ndarray:
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        if categorical_ok:  # e.g. a datetime column: neither numbers nor categories
            raise ValueError(f"{role}: column {c!r} has dtype {s.dtype}, which is neither numeric nor categorical; "
                             "encode it as numbers first")
        raise ValueError(
            f"{role}: column {c!r} has non-numeric dtype {s.dtype}; this role must be numeric (categorical columns "
            "are one-hot encoded only among covariates, instruments and proxies): encode it as numbers first"
        )
    if s.isna().any():
        raise ValueError(f"{role}: column {c!r} has {int(s.isna().sum())} missing value(s); impute or drop them")
    values = s.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{role}: column {c!r} contains infinite values")
    return values


def category_levels(s: pd.Series) -> list:
    """The levels of a categorical column seen in ``s``, as plain Python values.

    A pandas ``category`` column keeps its categories' order (unused categories are left out);
    other columns are sorted (by type name, then value, so mixed types sort too).
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = np.unique(s.cat.codes.to_numpy())
        return s.cat.categories[codes[codes >= 0]].tolist()
    return sorted(pd.unique(s.to_numpy(dtype=object)).tolist(), key=lambda v: (type(v).__name__, v))


def _one_hot(s: pd.Series, c, levels: list, role: str) -> np.ndarray:
    """Indicator columns of ``levels`` (in that order); a value outside them is an error naming it."""
    if s.isna().any():
        raise ValueError(f"{role}: column {c!r} has {int(s.isna().sum())} missing value(s); impute or drop them")
    codes = pd.Index(levels, dtype=object).get_indexer(s.to_numpy(dtype=object))
    if (codes < 0).any():
        unseen = category_levels(s[codes < 0])
        shown = ", ".join(map(repr, unseen[:5])) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        raise ValueError(f"{role}: column {c!r} has level(s) {shown} not seen at fit; "
                         f"the model knows {levels!r}")
    out = np.zeros((len(s), len(levels)), dtype=np.float64)
    out[np.arange(len(s)), codes] = 1.0
    return out


def encode_frame(df: pd.DataFrame, columns: List, role: str, levels: Optional[Dict] = None,
                 categorical: bool = True) -> Tuple[np.ndarray, Dict]:
    """Columns of ``df`` as a float64 array, categorical columns one-hot encoded.

    Parameters
    ----------
    df : DataFrame
        Read only, never modified.
    columns : list
        The columns to take, in this order.
    role : str
        How errors name the input (e.g. ``"covariates"``).
    levels : dict or None
        None at fit: learn the levels of every categorical column (when ``categorical``). At
        predict: column → levels of the columns encoded at fit; these are one-hot encoded with
        exactly those levels (an unseen level is an error) and every other column must be numeric.
    categorical : bool, default=True
        Whether categorical columns are allowed; False (outcome, treatment) makes them an error.

    Returns
    -------
    array : ndarray (n, k)
        Numeric columns as they are, each categorical column replaced by one 0/1 column per level.
    levels : dict
        Column → list of levels, for the categorical columns (empty when there are none).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"age": [30, 40, 50], "region": ["south", "north", "south"]})
    >>> arr, levels = encode_frame(df, ["age", "region"], "covariates")
    >>> levels
    {'region': ['north', 'south']}
    >>> arr.tolist()
    [[30.0, 0.0, 1.0], [40.0, 1.0, 0.0], [50.0, 0.0, 1.0]]
    """
    _check_frame(df, columns, role)
    learn = levels is None
    levels = {} if learn else levels
    blocks, learned = [], {}
    for c in columns:
        s = df[c]
        if c in levels:
            blocks.append(_one_hot(s, c, list(levels[c]), role))
            learned[c] = list(levels[c])
        elif learn and categorical and is_categorical(s):
            if s.isna().any():
                raise ValueError(f"{role}: column {c!r} has {int(s.isna().sum())} missing value(s); "
                                 "impute or drop them")
            learned[c] = category_levels(s)
            blocks.append(_one_hot(s, c, learned[c], role))
        else:
            if not learn and is_categorical(s):
                raise ValueError(f"{role}: column {c!r} has dtype {s.dtype} but was numeric at fit")
            blocks.append(_numeric_column(s, c, role, learn and categorical)[:, None])
    if not blocks:
        return np.empty((len(df), 0), dtype=np.float64), learned
    return np.hstack(blocks), learned


def frame_to_array(df: pd.DataFrame, columns: List[str], role: str) -> np.ndarray:
    """Numeric columns of ``df`` as a float64 (n, k) array, with errors that name the column."""
    return encode_frame(df, columns, role, categorical=False)[0]


def as_2d_array(x, name: str, n_rows: Optional[int] = None, rows_of: str = "the other inputs") -> np.ndarray:
    """Array-like → float64 (n, k) copy; a 1-D input is one column. Errors name ``name``.

    With ``n_rows``, the row count must match it; ``rows_of`` names what it is the row count of.
    """
    if x is None:
        raise ValueError(f"{name} is required")
    if isinstance(x, (pd.DataFrame, pd.Series)):
        frame = x.to_frame() if isinstance(x, pd.Series) else x
        arr = frame_to_array(frame, list(frame.columns), name)
    else:
        if hasattr(x, "detach"):  # a torch tensor
            x = x.detach().cpu().numpy()
        try:
            arr = np.array(x, dtype=np.float64)  # always a copy
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric; encode non-numeric values as numbers first") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    elif arr.ndim == 0:
        raise ValueError(f"{name} must be 1-D or 2-D, got a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but {rows_of} has {n_rows}")
    return arr


def roles_from_frame(df: pd.DataFrame, specs: Dict[str, ColumnSpec], required: Sequence[str],
                     categorical: Sequence[str] = ()) -> Dict:
    """Role name → (float64 array or None, column names, levels), checking roles are present and disjoint.

    Categorical columns of the roles named in ``categorical`` are one-hot encoded (:func:`encode_frame`);
    ``levels`` maps each such column to its levels (empty for a role without categorical columns).
    """
    columns = {role: as_column_list(spec, role) for role, spec in specs.items()}
    for role in required:
        if not columns[role]:
            raise ValueError(f"{role} is required: give its column name(s)")
    seen: Dict[str, str] = {}
    for role, names in columns.items():
        for c in names:
            if c in seen:
                raise ValueError(f"column {c!r} is given both as {seen[c]} and as {role}")
            seen[c] = role
    out = {}
    for role, names in columns.items():
        arr, levels = encode_frame(df, names, role, categorical=role in categorical) if names else (None, {})
        out[role] = (arr, names, levels)
    return out


def role_input(x, name: str, n_rows: Optional[int], rows_of: str, categorical: bool) -> Tuple[np.ndarray, Dict]:
    """One role given as an array-like, Series or DataFrame (array mode of ``fit``) → (array, levels).

    A DataFrame or named Series of a role that allows categorical columns goes through
    :func:`encode_frame`; anything else through :func:`as_2d_array`.
    """
    if categorical and (isinstance(x, pd.DataFrame) or (isinstance(x, pd.Series) and x.name is not None)):
        frame = x if isinstance(x, pd.DataFrame) else x.to_frame()
        arr, levels = encode_frame(frame, list(frame.columns), name)
        if arr.shape[0] == 0:
            raise ValueError(f"{name} has no rows")
        if n_rows is not None and arr.shape[0] != n_rows:
            raise ValueError(f"{name} has {arr.shape[0]} rows but {rows_of} has {n_rows}")
        return arr, levels
    return as_2d_array(x, name, n_rows, rows_of), {}


IMAGE_MIN_PIXELS = 1024  # a flattened input counts as an image from 32 × 32 pixels on


def is_image_like(x) -> bool:
    """Whether an input is an image batch: given as (n, H, W[, C]), or flattened with a square
    number (≥ 32²) of columns, e.g. 4096 = 64 × 64.

    Decided by the input's shape, not by its width alone: a wide tabular block of mixed units
    (say 300 survey answers) is not an image and keeps per-column scales.
    """
    shape = np.shape(x)
    if len(shape) >= 3:
        return True
    d = shape[1] if len(shape) == 2 else 1
    return d >= IMAGE_MIN_PIXELS and math.isqrt(d) ** 2 == d


class Standardizer:
    """Per-column centring and scaling fitted on training data.

    Images get one global mean and scale instead (``pooled``), so that near-constant border pixels
    are not blown up into pure noise and every pixel keeps its relative intensity.
    """

    def __init__(self, x: np.ndarray, reduce_sum: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 pooled: Optional[bool] = None):
        """``reduce_sum`` sums an array over processes (distributed fits); moments are then global.

        ``pooled`` (one scale for all columns) defaults to :func:`is_image_like` of ``x``.
        """
        total = reduce_sum or (lambda a: a)
        pooled = is_image_like(x) if pooled is None else bool(pooled)
        x = x.reshape(x.shape[0], -1)
        n = float(total(np.array([x.shape[0] * (x.shape[1] if pooled else 1)], dtype=np.float64))[0])
        sums = total(np.atleast_1d(x.sum() if pooled else x.sum(axis=0)).astype(np.float64))
        mean = sums / n
        sq = total(np.atleast_1d(((x - mean) ** 2).sum() if pooled else ((x - mean) ** 2).sum(axis=0)))
        scale = np.sqrt(sq / n)
        self.pooled = pooled
        self.mean = np.broadcast_to(mean, (x.shape[1],)).copy()
        self.scale = np.broadcast_to(np.where(scale > 1e-12, scale, 1.0), (x.shape[1],)).copy()

    # Columns a model reads after standardising (None: all). Set by the covariate screen
    # (deepcausal._screen), so that every path from a user's covariates into the networks drops the same ones.
    keep = None

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = (x - self.mean) / self.scale
        return out if self.keep is None else out[:, self.keep]

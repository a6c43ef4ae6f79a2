"""Input validation at the estimators' boundary: DataFrames or arrays in, checked float arrays out.

Every error names the argument or the column at fault. The user's objects are only read, never
modified (all conversions copy).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Union

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


def frame_to_array(df: pd.DataFrame, columns: List[str], role: str) -> np.ndarray:
    """Columns of ``df`` as a float64 (n, k) array, with errors that name the column."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{role}: expected a pandas DataFrame, got {type(df).__name__}")
    if df.columns.duplicated().any():
        dup = sorted(map(str, df.columns[df.columns.duplicated()].unique()))
        raise ValueError(f"the DataFrame has duplicated column names {dup}; make them unique")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{role}: column(s) {missing} not found in the DataFrame (it has {list(df.columns)})")
    out = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        s = df[c]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            raise ValueError(
                f"{role}: column {c!r} has non-numeric dtype {s.dtype}; encode it as numbers first "
                "(e.g. pandas.get_dummies or category codes)"
            )
        if s.isna().any():
            raise ValueError(f"{role}: column {c!r} has {int(s.isna().sum())} missing value(s); impute or drop them")
        values = s.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{role}: column {c!r} contains infinite values")
        out[:, j] = values
    return out


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


def roles_from_frame(df: pd.DataFrame, specs: Dict[str, ColumnSpec], required: Sequence[str]) -> Dict:
    """Role name → (float64 array or None, column names), checking roles are present and disjoint."""
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
    return {
        role: (frame_to_array(df, names, role) if names else None, names) for role, names in columns.items()
    }


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

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale + self.mean

"""The estimators' inputs: causal roles by column name, encoders, and the inputs of a prediction.

:class:`RoleInputs` is the part of :class:`~deepcausal._estimator.TwoStageEstimator` that turns what a
user passes — econml-style arrays (``fit(Y, T, X=, Z=)``) or a DataFrame with role column names
(``fit(df, outcome=..., treatment=...)``) — into float64 arrays by role at fit, and into standardized
tensors keyed like training batches at predict. Column names are kept as given and matched by name
at predict; categorical columns are one-hot encoded with the levels seen at fit.

It reads the estimator's role table (``_roles``, ``_predict_keys``) and, after fit, ``columns_``,
``dims_``, ``scalers_``, ``encoders_`` and ``device_``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pandas as pd
import torch

from ._data import as_2d_array, encode_frame, is_image_like, role_input, roles_from_frame

__all__ = ["RoleInputs", "concat_inputs"]


def concat_inputs(b: dict, keys) -> torch.Tensor:
    """Concatenate the batch entries named in ``keys`` that are present (covariates are optional)."""
    return torch.cat([b[k] for k in keys if k in b], dim=-1)


class RoleInputs:
    """Input handling of the two-stage estimators (mixed into :class:`TwoStageEstimator`)."""

    _roles: Tuple[Tuple[str, str, bool], ...] = ()
    _predict_keys: Tuple[str, ...] = ()  # batch keys a prediction needs (treatment first)

    def _collect(self, first, arrays: dict, role_columns: dict) -> Tuple[dict, dict, dict, dict]:
        """Arrays (econml style) or a DataFrame with role column names → key → float64 array.

        Also returns each role's column names (kept exactly as given, so integer labels stay
        integers and predict matches by name), whether the role is an image batch (pooled
        standardisation, see :func:`deepcausal._data.is_image_like`) and, per role with
        categorical columns, their levels (one-hot encoded, see :func:`deepcausal._data.encode_frame`).
        """
        names = {role: key for role, key, _ in self._roles}
        encoders = {}
        if role_columns.get(self._roles[0][0]) is not None:  # DataFrame mode: fit(df, outcome=...)
            required = [role for role, _, req in self._roles if req]
            parsed = roles_from_frame(first, role_columns, required,
                                      [r for r, k, _ in self._roles if k in self._categorical_keys()])
            data = {names[r]: arr for r, (arr, _, _) in parsed.items()}
            columns = {names[r]: cols for r, (_, cols, _) in parsed.items()}
            encoders = {names[r]: levels for r, (_, _, levels) in parsed.items() if levels}
            images = {k: v is not None and is_image_like(v) for k, v in data.items()}
        else:
            data, columns, images = {}, {}, {}
            n = None
            for role, key, req in self._roles:
                value = first if key == "Y" else arrays.get(key)
                if value is None:
                    if req:
                        raise ValueError(f"{key} ({role}) is required")
                    data[key], columns[key], images[key] = None, [], False
                    continue
                arr, levels = role_input(value, f"{key} ({role})", n, "the outcome", key in self._categorical_keys())
                if levels:
                    encoders[key] = levels
                n = arr.shape[0] if n is None else n
                data[key] = arr
                images[key] = is_image_like(value)
                columns[key] = (
                    list(value.columns) if isinstance(value, pd.DataFrame) else
                    [value.name] if isinstance(value, pd.Series) and value.name is not None else []
                )
        if data["Y"].shape[1] != 1:
            raise ValueError(f"outcome must be a single column, got {data['Y'].shape[1]}")
        return data, columns, images, encoders

    def _role_array(self, value, key: str, n: Optional[int]) -> np.ndarray:
        """One role's prediction input: DataFrame columns by their fitted names (any order), else by
        position. Errors name the role and the missing columns."""
        role = self._role_name(key)
        cols = self.columns_.get(key)
        if isinstance(value, pd.DataFrame) and cols:
            missing = [c for c in cols if c not in value.columns]
            if missing:
                raise ValueError(f"{key} ({role}): column(s) {missing} not found; the model was fitted with "
                                 f"{list(cols)} and the DataFrame has {list(value.columns)}")
            arr = self._frame_array(value, key)
        else:
            arr = self._array_input(value, key)
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"{key} ({role}) has {arr.shape[0]} rows but the treatment has {n}")
        if arr.shape[1] != self.dims_[key]:
            raise ValueError(f"{key} ({role}) has {arr.shape[1]} columns, the model was fitted with {self.dims_[key]}"
                             + (f" {list(cols)}" if cols and len(cols) == self.dims_[key] else ""))
        return arr

    def _prediction_inputs(self, first, X=None, extra: Optional[dict] = None) -> dict:
        """Inputs of predict/effect as standardized tensors keyed like batches.

        ``first`` is the treatment (array or DataFrame); in DataFrame mode it may also hold the
        covariate (and ``extra`` role) columns. ``extra`` maps further keys (e.g. DFPV's outcome
        proxy ``"W"``) to their values, None meaning "take the columns from ``first``".
        """
        given = {self._predict_keys[0]: first, "X": X, **(extra or {})}
        out, n = {}, None
        for k, value in given.items():
            if value is None and k != self._predict_keys[0] and self._frame_has(first, k):
                value = first  # DataFrame mode: the role's columns beside the treatment's
            if self.dims_.get(k) is None:
                if value is not None:
                    raise ValueError(f"{k} was given but the model was fitted without {self._role_name(k)}")
                continue
            if value is None:
                if k == "X" and self._covariates_optional_in_predict:
                    continue
                raise ValueError(f"{k} ({self._role_name(k)}) is required: the model was fitted with it"
                                 + self._missing_columns_note(first, k))
            arr = self._role_array(value, k, n)
            n = arr.shape[0]
            out[k] = self._to_tensor(self.scalers_[k].transform(arr))
        return out

    def _frame_has(self, value, key: str) -> bool:
        cols = self.columns_.get(key)
        return isinstance(value, pd.DataFrame) and bool(cols) and all(c in value.columns for c in cols)

    def _role_name(self, key: str) -> str:
        return next(role for role, k, _ in self._roles if k == key)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device_)

    def _validation(self, validation):
        if validation is None:
            return None
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise ValueError("validation must be (inputs_frame, truth) or (treatment, covariates, truth)")
        *inputs, truth = validation
        truth = as_2d_array(truth, "validation truth").ravel()
        return inputs, truth

    def _categorical_keys(self) -> Tuple[str, ...]:
        """Roles whose categorical columns are one-hot encoded: all but the outcome and the treatment."""
        return tuple(k for _, k, _ in self._roles if k not in ("Y", self._predict_keys[0]))

    def _input_names(self, data: dict, columns: dict) -> dict:
        """``n_features_in_`` and, when every input role has column names, ``feature_names_in_``.

        For a multi-role estimator the "features" are the columns ``fit`` reads besides the outcome,
        role after role in the order of ``fit``'s signature (DFIV: treatment, instruments,
        covariates; DFPV: treatment, treatment proxy, outcome proxy, covariates), counted before
        encoding: a categorical column is one feature however many levels it has (``dims_`` counts
        the encoded columns). Names are kept as given (integer labels stay integers).
        """
        names, count, named = [], 0, True
        for _, key, _ in self._roles:
            if key == "Y" or data.get(key) is None:
                continue
            cols = list(columns.get(key) or [])
            named = named and bool(cols)
            names += cols
            count += len(cols) if cols else data[key].shape[1]
        out = {"n_features_in_": count}
        if named:
            out["feature_names_in_"] = np.asarray(names, dtype=object)
        return out

    def _frame_array(self, value: pd.DataFrame, key: str) -> np.ndarray:
        """A role's columns of a DataFrame at predict: through the formula when the model was built
        by :meth:`from_formula`, else one-hot encoded with the levels seen at fit."""
        role = self._role_name(key)
        formula = getattr(self, "formula_", None)
        if formula is not None:
            return formula.transform(value, key, role)
        levels = (getattr(self, "encoders_", None) or {}).get(key, {})
        return encode_frame(value, self.columns_[key], role, levels=levels)[0]

    def _missing_columns_note(self, frame, key: str) -> str:
        """For a "role is required" error: which of the role's fitted columns a DataFrame lacks."""
        cols = self.columns_.get(key) or []
        if not isinstance(frame, pd.DataFrame) or not cols:
            return ""
        missing = [c for c in cols if c not in frame.columns]
        return f"; the DataFrame lacks its column(s) {missing} (fitted with {list(cols)})" if missing else ""

    def _array_input(self, value, key: str) -> np.ndarray:
        """A role given as an array at predict: its columns must be the encoded columns."""
        role = self._role_name(key)
        levels = (getattr(self, "encoders_", None) or {}).get(key)
        if levels:
            raise ValueError(f"{key} ({role}): the model one-hot encoded the categorical column(s) {list(levels)} "
                             f"at fit; pass a DataFrame with the columns {list(self.columns_[key])}")
        return as_2d_array(value, f"{key} ({role})")

    def _broadcast_treatment(self, t, n, name) -> np.ndarray:
        if isinstance(t, pd.DataFrame):
            return t
        arr = as_2d_array(np.atleast_1d(np.asarray(t, dtype=np.float64)), name)
        d = self.dims_[self._predict_keys[0]]
        if arr.size == d and n is not None:
            arr = np.repeat(arr.reshape(1, d), n, axis=0)
        return arr

    def _treatment_names(self) -> list:
        key = self._predict_keys[0]
        d = self.dims_[key]
        cols = self.columns_.get(key) or []
        if len(cols) == d:
            return list(cols)
        return ["treatment"] if d == 1 else [f"treatment_{j}" for j in range(d)]

    def _grid(self, treatment_grid) -> np.ndarray:
        key = self._predict_keys[0]
        d = self.dims_[key]
        names = self._treatment_names()
        if isinstance(treatment_grid, pd.DataFrame):
            return self._role_array(treatment_grid, key, None)
        grid = np.asarray(treatment_grid, dtype=np.float64)
        if d > 1 and grid.ndim != 2:
            raise ValueError(f"treatment_grid: the treatment has {d} columns {names}; give a 2-D grid with one row "
                             f"per point and {d} columns, or a DataFrame with those columns")
        grid = as_2d_array(grid.reshape(-1, 1) if grid.ndim <= 1 else grid, "treatment_grid")
        if grid.shape[1] != d:
            raise ValueError(f"treatment_grid has {grid.shape[1]} columns, the treatment has {d} {names}")
        return grid

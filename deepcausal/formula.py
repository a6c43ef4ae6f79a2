"""Formula interface of DFIV and DFPV, through formulaic (the formula library linearmodels uses).

Syntax (linearmodels' IV syntax, with a ``|`` for DFPV's second proxy)::

    DFIV   "outcome ~ covariates + [treatment ~ instruments]"
    DFPV   "outcome ~ covariates + [treatment ~ treatment_proxies | outcome_proxies]"

e.g. ``"lwage ~ exper + C(region) + [educ ~ nearc4 + nearc2]"`` or
``"sales ~ time + [price ~ z1 + z2 | w1]"``. The bracket may stand anywhere among the covariate
terms; without covariates the formula is ``"y ~ [t ~ z]"``.

* Each part is a formulaic right-hand side: ``C(...)`` and string columns give indicator columns
  (treatment contrasts: formulaic drops the first level, as linearmodels does), ``a:b`` interactions,
  ``np.log(x)``, ``center(x)``, ... An intercept (``1``, or its absence) is ignored: the stage heads
  have intercepts of their own.
* The treatment must be plain numeric column names (``[educ ~ ...]``, ``[price + time ~ ...]``):
  the dose-response is reported as a function of the treatment in its own units. Transform the
  column in the DataFrame if another scale is wanted.
* The outcome is one expression (``lwage`` or ``np.log(wage)``).
* Rows with missing values are an error (never silently dropped: predictions must align with rows).
* Only numpy (as ``np``) and formulaic's transforms are available in expressions, not the caller's
  variables.

The fitted estimator keeps the formulaic model specs in ``formula_`` (a :class:`ModelFormula`), so
``predict``, ``effect``, ``dose_response``, ``score`` and the intervals accept DataFrames with the
original columns: the same encoding (levels, transform states) is applied to them. Arrays passed
instead are taken as model-matrix columns. ``columns_`` and ``feature_names_in_`` hold the DataFrame
columns each role reads; ``dims_`` the model-matrix columns.
"""

from __future__ import annotations

import re
import warnings
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
import pandas as pd

from ._data import is_categorical

__all__ = ["ModelFormula", "parse_formula", "formula_inputs", "FormulaInputs"]

_CONTEXT = {"np": np}  # what expressions may use besides the data and formulaic's transforms


def _split_top(text: str, sep: str) -> List[str]:
    """Split ``text`` at ``sep`` where it is outside parentheses, brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _bracket(rhs: str) -> Tuple[int, int]:
    """Start and end of the one top-level ``[...]`` of ``rhs`` that holds a ``~``."""
    found, depth, quote, start = [], 0, None, None
    for i, ch in enumerate(rhs):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[" and depth == 0:
            start = i
            depth += 1
        elif ch in "([{":
            depth += 1
        elif ch == "]" and depth == 1 and start is not None:
            if len(_split_top(rhs[start + 1 : i], "~")) == 2:
                found.append((start, i))
            start = None
            depth -= 1
        elif ch in ")]}":
            depth -= 1
    if len(found) != 1:
        raise ValueError(f"the right-hand side {rhs.strip()!r} needs exactly one bracket [treatment ~ ...], "
                         f"found {len(found)}")
    return found[0]


def parse_formula(formula: str, excluded: Sequence[str]) -> Dict[str, str]:
    """Split a formula into role parts: ``{"outcome", "treatment", *excluded, "covariates"}`` → text.

    ``excluded`` names the roles inside the bracket after the ``~``, separated by ``|`` (DFIV:
    ``["instruments"]``; DFPV: ``["treatment_proxy", "outcome_proxy"]``). ``covariates`` is the
    right-hand side without the bracket (``"1"`` where nothing else is left).

    Examples
    --------
    >>> parse_formula("lwage ~ exper + C(region) + [educ ~ nearc4 + nearc2]", ["instruments"])
    {'outcome': 'lwage', 'treatment': 'educ', 'instruments': 'nearc4 + nearc2', 'covariates': 'exper + C(region) + 1'}
    """
    if not isinstance(formula, str):
        raise ValueError(f"formula must be a string, got {type(formula).__name__}")
    shape = " | ".join(excluded)
    usage = f"a formula reads 'outcome ~ covariates + [treatment ~ {shape}]'"
    sides = _split_top(formula, "~")
    if len(sides) != 2 or not sides[0].strip():
        raise ValueError(f"{usage}; got {formula!r}")
    lhs, rhs = sides
    i, j = _bracket(rhs)
    treatment, rest = _split_top(rhs[i + 1 : j], "~")
    inside = _split_top(rest, "|")
    if len(inside) != len(excluded):
        raise ValueError(f"{usage}: the bracket needs {len(excluded)} part(s) after '~' "
                         f"({shape}), got {len(inside)} in {rhs[i:j + 1]!r}")
    parts = {"outcome": lhs.strip(), "treatment": treatment.strip()}
    parts.update({role: text.strip() for role, text in zip(excluded, inside)})
    parts["covariates"] = " ".join((rhs[:i] + "1" + rhs[j + 1 :]).split())
    for role, text in parts.items():
        if not text:
            raise ValueError(f"{usage}: the {role} part is empty in {formula!r}")
    return parts


def _data_variables(spec, frame: pd.DataFrame, part: str) -> List:
    """The DataFrame columns a model spec reads, in the order the formula's part names them."""
    used = [c for c in frame.columns if c in spec.variables_by_source.get("data", set())]

    def first_mention(column):
        found = re.search(rf"(?<![\w.]){re.escape(str(column))}(?!\w)", part)
        return found.start() if found else len(part)

    return sorted(used, key=first_mention)


class ModelFormula:
    """How an estimator built by ``from_formula`` turns DataFrames into its role matrices (read-only).

    Attributes
    ----------
    formula : str
        The formula as given.
    parts : dict
        Role key ("Y", "T", "Z", ...) → that role's part of the formula.
    specs : dict
        Role key → formulaic ``ModelSpec`` fitted on the training data (levels, transform states).
    columns : dict
        Role key → the model-matrix columns the networks see (the intercept dropped).
    """

    def __init__(self, formula: str, parts: dict, specs: dict, columns: dict):
        self._state = dict(formula=formula, parts=dict(parts), specs=dict(specs), columns=dict(columns))

    formula = property(lambda self: self._state["formula"])
    parts = property(lambda self: dict(self._state["parts"]))
    specs = property(lambda self: dict(self._state["specs"]))
    columns = property(lambda self: {k: list(v) for k, v in self._state["columns"].items()})

    def __repr__(self) -> str:
        return f"ModelFormula({self.formula!r})"

    def transform(self, frame: pd.DataFrame, key: str, role: str) -> np.ndarray:
        """The role's model-matrix columns for the rows of ``frame`` (float64, one row per row)."""
        spec, cols = self._state["specs"][key], self._state["columns"][key]
        return _materialize(spec, frame, role, cols)


def _unseen_levels(spec, frame: pd.DataFrame) -> List[str]:
    """Descriptions of values of ``frame`` outside the levels a categorical factor of ``spec`` knows."""
    by_expr = {str(f): v for f, v in spec.factor_variables.items()}
    data_vars = spec.variables_by_source.get("data", set())
    out = []
    for expr, (kind, state) in spec.encoder_state.items():
        levels = (state or {}).get("categories") if isinstance(state, dict) else None
        names = [v for v in by_expr.get(expr, ()) if v in data_vars]
        if levels is None or len(names) != 1 or names[0] not in frame.columns:
            continue
        values = pd.unique(frame[names[0]].dropna().to_numpy(dtype=object)).tolist()
        unseen = [v for v in values if v not in set(levels)]
        if unseen:
            out.append(f"column {names[0]!r} has level(s) {', '.join(map(repr, unseen[:5]))} not seen at fit "
                       f"(the model knows {list(levels)!r})")
    return out


def _materialize(spec, frame: pd.DataFrame, role: str, cols) -> np.ndarray:
    from formulaic.errors import DataMismatchWarning

    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{role}: expected a pandas DataFrame, got {type(frame).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            mm = spec.get_model_matrix(frame, context=_CONTEXT)
        except DataMismatchWarning as exc:
            found = _unseen_levels(spec, frame)
            raise ValueError(f"{role}: " + ("; ".join(found) if found else str(exc))) from None
        except Exception as exc:  # formulaic's errors: missing values, failing expressions
            raise ValueError(f"{role} ({spec.formula}): {exc}") from exc
    if len(mm) != len(frame):
        raise ValueError(f"{role}: the formula gave {len(mm)} rows for {len(frame)}")
    return mm[cols].to_numpy(dtype=np.float64) if cols else np.empty((len(frame), 0))


def _build(part: str, data: pd.DataFrame, role: str):
    """Fit one role's formulaic spec on ``data``: (array, spec, model-matrix columns, data variables)."""
    from formulaic import model_matrix

    try:
        mm = model_matrix(part, data, na_action="raise", context=_CONTEXT)
    except Exception as exc:
        raise ValueError(f"{role} ({part!r}): {exc}") from exc
    spec = mm.model_spec
    cols = [c for c in mm.columns if c != "Intercept"]
    arr = mm[cols].to_numpy(dtype=np.float64) if cols else np.empty((len(data), 0))
    if not np.isfinite(arr).all():
        raise ValueError(f"{role} ({part!r}): the formula gives NaN or infinite values")
    return arr, spec, cols, _data_variables(spec, data, part)


class FormulaInputs(NamedTuple):
    """What ``from_formula`` binds to an estimator: the role arrays, each role's DataFrame columns, and
    the :class:`ModelFormula` that encodes other DataFrames the same way at predict."""

    arrays: dict
    columns: dict
    model: "ModelFormula"


def formula_inputs(cls, formula: str, data: pd.DataFrame) -> FormulaInputs:
    """The role matrices that ``formula`` makes of ``data`` for estimator class ``cls``, every check done
    (unknown columns, a treatment that is not plain numeric columns, a column in two roles, missing values)."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    roles = list(cls._roles)  # (role, key, required): outcome, treatment, *excluded, covariates
    excluded = [role for role, key, _ in roles if key not in ("Y", cls._predict_keys[0], "X")]
    parts = parse_formula(formula, excluded)
    arrays, columns, specs, matrix_cols, seen = {}, {}, {}, {}, {}
    for role, key, _ in roles:
        arr, spec, cols, variables = _build(parts[role], data, role)
        if key == "Y" and arr.shape[1] != 1:
            raise ValueError(f"outcome ({parts[role]!r}) must give one column, got {cols}")
        if key in ("Y", cls._predict_keys[0]):
            bad = [v for v in variables if is_categorical(data[v])]
            if bad:
                raise ValueError(f"{role}: column {bad[0]!r} is not numeric (dtype {data[bad[0]].dtype}); "
                                 f"the {role} must be numeric")
        if key == cls._predict_keys[0] and (set(cols) != set(variables) or len(cols) != len(variables)):
            raise ValueError(f"treatment ({parts[role]!r}): a formula's treatment must be plain numeric column "
                             f"names (the dose-response is a function of the treatment in its own units), got "
                             f"model columns {cols}; transform the column in the DataFrame instead")
        if key == cls._predict_keys[0]:
            variables = list(cols)  # the treatment's columns in the formula's order
        for v in variables:
            if v in seen:
                raise ValueError(f"column {v!r} is used both as {seen[v]} and as {role}")
            seen[v] = role
        if key == "X" and not cols:  # no covariates
            arrays[key], columns[key] = None, []
            continue
        if not cols:
            raise ValueError(f"{role} ({parts[role]!r}) gives no columns")
        arrays[key], columns[key], specs[key], matrix_cols[key] = arr, variables, spec, cols
    model = ModelFormula(formula, {k: parts[r] for r, k, _ in roles if k in specs}, specs, matrix_cols)
    return FormulaInputs(arrays, columns, model)

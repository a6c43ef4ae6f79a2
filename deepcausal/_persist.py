"""Saving and loading fitted estimators as tensors and plain data: loading a file never runs code from it.

A model file is written with :func:`torch.save` and read with ``torch.load(..., weights_only=True)``, whose
unpickler only rebuilds tensors and plain containers: a file that holds anything else (a crafted file whose
unpickling would call ``os.system``, or a file of the first format, which pickled whole estimators) is
refused before any of its objects is built.

File format 2 (a dict)::

    {"format": "deepcausal-estimator", "version": 2, "class": "DFIV", "deepcausal_version": "0.1.0",
     "estimator": record}

    record = {"__dc__": "estimator", "class": ..., "params": {...}, "user_params": [...],
              "user_params_pickle": uint8 tensor or None, "attributes": {...}, "modules": {...}}

* ``params``: ``get_params(deep=False)`` without the parameters that hold a user-supplied network
  (an ``nn.Module`` or a callable); their names are listed in ``user_params``. Those networks must be
  passed again at load (``nets={name: module}``), or, with ``trusted=True``, unpickled from
  ``user_params_pickle`` (their pickled bytes kept as an opaque uint8 tensor that a safe load never
  unpickles; absent when they cannot be pickled, e.g. lambdas).
* ``attributes``: every fitted attribute (public names ending in ``_``), encoded by type: see
  :func:`_encode`. Types without an encoder are refused at save with an error naming the attribute.
* ``modules``: the ``state_dict`` of every fitted attribute that is a ``torch.nn.Module``. At load the
  networks are rebuilt by the function the estimator's class registered (:func:`register_estimator`)
  and the weights loaded into them (:func:`load_weights`).
* Nested estimators (e.g. the members of an ensemble, ``estimators_``) are records themselves. Their
  class is looked up among the registered estimator classes, never imported by a name read from the
  file. Each estimator module registers its classes, so this module imports no estimator.

Adding a fitted attribute of a type already listed needs no change here; a new kind of helper object
needs an encoder and a decoder (:func:`register_object`).
"""

from __future__ import annotations

import errno
import inspect
import io
import os
import pickle
import pickletools
import re
import tempfile
import zipfile
from typing import Callable, Dict, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._data import Standardizer
from ._version import __version__
from .twostage import TwoStageHeads

__all__ = ["save_estimator", "load_estimator", "load_weights", "register_object", "register_estimator"]

_FORMAT = "deepcausal-estimator"
_FORMAT_VERSION = 2
_TAG = "__dc__"  # marks an encoded value that is not a plain str-keyed dict
_PLAIN = (bool, int, float, str, type(None))


# ---- registries: the only classes a file can make us build ---------------------------------------
_OBJECTS: Dict[str, tuple] = {}  # name → (class, encode(obj) -> plain dict, decode(plain dict) -> obj)
_ESTIMATORS: Dict[str, type] = {}
_REBUILD: Dict[type, Callable] = {}  # estimator class → rebuild_modules(est, states, device) -> {name: module}


def register_object(cls: type, encode: Callable, decode: Callable, name: Optional[str] = None) -> None:
    """Let fitted attributes hold instances of ``cls``: ``encode(obj)`` returns data that :func:`_encode`
    can store (tensors, arrays, plain containers), ``decode(data)`` rebuilds the object."""
    _OBJECTS[name or cls.__name__] = (cls, encode, decode)


def register_estimator(cls: type, rebuild_modules: Optional[Callable] = None) -> None:
    """Let model files hold (nested) estimators of class ``cls``, looked up by its name at load.

    ``rebuild_modules(est, states, device)`` builds the estimator's fitted networks from their saved
    ``state_dict`` s (``states``: attribute name → state dict) on ``device`` and returns them by
    attribute name; needed when the estimator has fitted ``nn.Module`` attributes."""
    _ESTIMATORS[cls.__name__] = cls
    if rebuild_modules is not None:
        _REBUILD[cls] = rebuild_modules


def _encode_heads(h: TwoStageHeads) -> dict:
    # The reducer (a distributed all-reduce) belongs to the fit that used it, not to the model.
    return {"coefs": dict(lam1=h.lam1, lam2=h.lam2, lam12=h.lam12, beta1=h.beta1, beta2=h.beta2),
            "state": h.state_dict()}


def _decode_heads(data: dict) -> TwoStageHeads:
    heads = TwoStageHeads(**data["coefs"])
    heads.load_state_dict(data["state"])
    return heads


def _encode_standardizer(s: Standardizer) -> dict:
    return dict(vars(s))


def _decode_standardizer(data: dict) -> Standardizer:
    s = Standardizer.__new__(Standardizer)  # its constructor fits data; the fitted moments are restored
    vars(s).update(data)
    return s


register_object(TwoStageHeads, _encode_heads, _decode_heads)
register_object(Standardizer, _encode_standardizer, _decode_standardizer)


# ---- encoding --------------------------------------------------------------------------------
class _Context:
    """What encoding and decoding carry along: the estimator classes, the load device, the user's networks."""

    def __init__(self, device=None, nets=None, trusted=False, top=None):
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.nets = dict(nets or {})
        self.used_nets: set = set()
        self.trusted = trusted
        self.classes = dict(_ESTIMATORS)
        if top is not None:
            self.classes[top.__name__] = top


def _is_estimator(value, ctx: _Context) -> bool:
    return hasattr(value, "get_params") and ctx.classes.get(type(value).__name__) is type(value)


def _encode_array(a: np.ndarray, where: str) -> dict:
    if a.dtype.kind in "biufc":
        try:
            return {_TAG: "ndarray", "data": torch.from_numpy(np.ascontiguousarray(a).copy())}
        except TypeError:  # a dtype torch has no tensor type for (e.g. uint32 on older torch)
            pass
    if a.dtype.kind in "biufcUSO":
        return {_TAG: "ndarray", "dtype": a.dtype.str, "shape": list(a.shape),
                "items": _encode(a.ravel().tolist(), where, None)}
    raise TypeError(f"cannot save {where}: numpy arrays of dtype {a.dtype} are not supported")


def _encode_values(values, where: str) -> dict:
    """A pandas Series' or Index's values with their dtype (categories kept with their order)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = pd.Categorical(values)
        return {"dtype": "category", "ordered": bool(cat.ordered),
                "categories": _encode_values(pd.Index(cat.categories), where),
                "codes": _encode_array(np.asarray(cat.codes), where)}
    return {"dtype": str(dtype), "values": _encode_array(np.asarray(values), where)}


def _decode_values(data: dict, ctx: _Context):
    if data["dtype"] == "category":
        categories = _decode_values(data["categories"], ctx)
        return pd.Categorical.from_codes(_decode(data["codes"], ctx), categories=categories, ordered=data["ordered"])
    values = _decode(data["values"], ctx)
    return pd.array(values, dtype=pd.api.types.pandas_dtype(data["dtype"]))


def _encode(value, where: str, ctx: Optional[_Context]):
    """``value`` as tensors and plain data; ``where`` names it in errors (e.g. ``"attribute history_"``)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        return _encode_array(value, where)
    if isinstance(value, np.generic):
        item = value.item()
        if type(item) not in _PLAIN and not isinstance(item, complex):
            raise TypeError(f"cannot save {where}: numpy scalar of dtype {value.dtype} is not supported")
        return {_TAG: "npscalar", "dtype": value.dtype.str, "value": item}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_encode(v, f"{where}[{i}]", ctx) for i, v in enumerate(value)]
        return items if type(value) is list else {_TAG: type(value).__name__, "items": items}
    if isinstance(value, dict):
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: _encode(v, f"{where}[{k!r}]", ctx) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k, f"{where} key", ctx), _encode(v, f"{where}[{k!r}]", ctx)]
                                         for k, v in value.items()]}
    if isinstance(value, pd.DataFrame):
        index = None if value.index.equals(pd.RangeIndex(len(value))) else _encode_values(value.index, where)
        return {_TAG: "dataframe", "columns": _encode_values(value.columns, where), "index": index,
                "data": [_encode_values(value.iloc[:, j], f"{where} column {c!r}")
                         for j, c in enumerate(value.columns)]}
    if isinstance(value, pd.Series):
        index = None if value.index.equals(pd.RangeIndex(len(value))) else _encode_values(value.index, where)
        return {_TAG: "series", "name": _encode(value.name, where, ctx), "index": index,
                "data": _encode_values(value, where)}
    if isinstance(value, pd.Index):
        return {_TAG: "index", "name": _encode(value.name, where, ctx), "data": _encode_values(value, where)}
    if isinstance(value, torch.dtype):
        return {_TAG: "torch_dtype", "name": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {_TAG: "torch_device"}  # a model is loaded onto the device named at load
    if isinstance(value, complex):
        return {_TAG: "complex", "real": value.real, "imag": value.imag}
    entry = _OBJECTS.get(type(value).__name__)
    if entry is not None and entry[0] is type(value):
        return {_TAG: "object", "class": type(value).__name__, "state": _encode(entry[1](value), where, ctx)}
    if ctx is not None and _is_estimator(value, ctx):
        return _encode_estimator(value, ctx)
    if isinstance(value, nn.Module):
        raise TypeError(f"cannot save {where}: a torch.nn.Module is saved only as a fitted attribute of its own")
    raise TypeError(
        f"cannot save {where}: objects of type {type(value).__module__}.{type(value).__qualname__} have no "
        "encoder; store tensors, arrays, DataFrames or plain data, or register one in deepcausal._persist"
    )


def _user_param(value) -> bool:
    """A parameter holding a network or a network factory (not plain data that can be written)."""
    return isinstance(value, nn.Module) or (callable(value) and not isinstance(value, (str, type(None))))


def _encode_estimator(est, ctx: _Context) -> dict:
    name = type(est).__name__
    params, user = {}, {}
    for key, value in est.get_params(deep=False).items():
        if _user_param(value):
            user[key] = value
        else:
            params[key] = _encode(value, f"{name} parameter {key}", ctx)
    try:
        blob = pickle.dumps(user) if user else None
    except Exception:  # lambdas, local functions: they must be given again at load
        blob = None
    attributes, modules = {}, {}
    for key, value in vars(est).items():
        if not key.endswith("_") or key.startswith("_"):
            continue
        if isinstance(value, nn.Module):
            modules[key] = {k: v.detach().cpu().clone() for k, v in value.state_dict().items()}
        else:
            attributes[key] = _encode(value, f"{name} attribute {key}", ctx)
    return {_TAG: "estimator", "class": name, "params": params, "user_params": sorted(user),
            "user_params_pickle": None if blob is None else torch.frombuffer(bytearray(blob), dtype=torch.uint8),
            "attributes": attributes, "modules": modules}


# ---- decoding --------------------------------------------------------------------------------
def _decode(value, ctx: _Context):
    if isinstance(value, torch.Tensor):
        return value.to(ctx.device)
    if isinstance(value, list):
        return [_decode(v, ctx) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v, ctx) for k, v in value.items()}
    if tag == "ndarray":
        if "data" in value:
            return value["data"].numpy().copy()
        return np.array(_decode(value["items"], ctx), dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if tag == "npscalar":
        return np.dtype(value["dtype"]).type(value["value"])
    if tag in ("tuple", "set", "frozenset"):
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](_decode(value["items"], ctx))
    if tag == "dict":
        return {_decode(k, ctx): _decode(v, ctx) for k, v in value["items"]}
    if tag in ("dataframe", "series", "index"):
        index = None if value.get("index") is None else pd.Index(_decode_values(value["index"], ctx))
        if tag == "index":
            return pd.Index(_decode_values(value["data"], ctx), name=_decode(value["name"], ctx))
        if tag == "series":
            return pd.Series(_decode_values(value["data"], ctx), index=index, name=_decode(value["name"], ctx))
        frame = pd.DataFrame({j: _decode_values(col, ctx) for j, col in enumerate(value["data"])}, index=index)
        frame.columns = pd.Index(_decode_values(value["columns"], ctx))
        return frame
    if tag == "torch_dtype":
        dtype = getattr(torch, value["name"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"the model file names an unknown torch dtype {value['name']!r}")
        return dtype
    if tag == "torch_device":
        return ctx.device
    if tag == "complex":
        return complex(value["real"], value["imag"])
    if tag == "object":
        entry = _OBJECTS.get(value["class"])
        if entry is None:
            raise ValueError(f"the model file holds a {value['class']!r}, which this deepcausal cannot rebuild")
        return entry[2](_decode(value["state"], ctx))
    if tag == "estimator":
        return _decode_estimator(value, ctx)
    raise ValueError(f"the model file holds an entry of unknown kind {tag!r}; was it written by a newer deepcausal?")


def _user_networks(record: dict, ctx: _Context) -> dict:
    """The user-supplied network parameters of a record: from ``nets``, or unpickled when trusted."""
    needed = record["user_params"]
    given = {k: ctx.nets[k] for k in needed if k in ctx.nets}
    ctx.used_nets.update(given)
    missing = [k for k in needed if k not in given]
    if missing and ctx.trusted and record.get("user_params_pickle") is not None:
        stored = pickle.loads(record["user_params_pickle"].cpu().numpy().tobytes())  # trusted: may run code
        given.update({k: stored[k] for k in missing})
        missing = []
    if missing:
        how = ("" if record.get("user_params_pickle") is None else
               ", or load with trusted=True to unpickle the networks saved in the file (this runs code from it)")
        raise ValueError(
            f"this {record['class']} was fitted with user-supplied network(s) {missing}, which a model file does "
            f"not hold as code: pass the same networks (or factories) again, e.g. "
            f"load(path, nets={{{missing[0]!r}: module}}){how}"
        )
    return given


def load_weights(module: nn.Module, state_dict: dict, name: str) -> None:
    """Load saved weights into a rebuilt network, with an error naming the attribute when they do not fit."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ValueError(f"the saved weights of {name} do not fit the network built for them (were the "
                         f"same networks passed with nets=?): {exc}") from None


def _rebuild_modules(est, states: dict, device) -> dict:
    rebuild = next((f for c, f in _REBUILD.items() if isinstance(est, c)), None)
    if rebuild is None:
        raise ValueError(f"{type(est).__name__} has no way to rebuild its networks {sorted(states)}: register it with "
                         "deepcausal._persist.register_estimator(cls, rebuild_modules)")
    # Building a network draws initial weights: keep the caller's random stream as it was.
    with torch.random.fork_rng(devices=[]):
        return rebuild(est, states, device)


def _decode_estimator(record: dict, ctx: _Context):
    cls = ctx.classes.get(record["class"])
    if cls is None:
        raise ValueError(f"the model file holds a {record['class']!r}, which is not a deepcausal estimator")
    params = _decode(record["params"], ctx)
    params.update(_user_networks(record, ctx))
    if "covariate_selection" in cls().get_params() and "covariate_selection" not in params:
        params["covariate_selection"] = None  # a file from before the covariate screen: every covariate was read
    est = cls(**params)
    for key, value in record["attributes"].items():
        setattr(est, key, _decode(value, ctx))
    if record["modules"]:
        for key, module in _rebuild_modules(est, record["modules"], ctx.device).items():
            setattr(est, key, module)
    if hasattr(est, "device_"):
        est.device_ = ctx.device
    return est


# ---- files -----------------------------------------------------------------------------------
def save_estimator(estimator, path) -> None:
    """Write ``estimator`` to ``path`` (format 2) atomically: a temporary file beside it, then a rename.

    Everything is encoded before anything is written, so an attribute that cannot be saved raises a
    ``TypeError`` naming it and leaves no file behind.
    """
    ctx = _Context(top=type(estimator))
    blob = {"format": _FORMAT, "version": _FORMAT_VERSION, "class": type(estimator).__name__,
            "deepcausal_version": __version__, "estimator": _encode_estimator(estimator, ctx)}
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".deepcausal-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _pickle_contents(path: str):
    """(globals, strings) named in a torch zip file's pickle, read opcode by opcode without running it;
    None when the file is not a torch zip archive with a readable pickle."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            data = archive.read(name)
        globals_, strings, memo, last = [], set(), {}, []
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name == "GLOBAL":
                globals_.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(last) == 2 and all(isinstance(s, str) for s in last):
                globals_.append(".".join(last))
            if isinstance(arg, str) and "UNICODE" in op.name:
                strings.add(arg)
                last = (last + [arg])[-2:]
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and last:
                memo[arg] = last[-1]
            elif op.name == "MEMOIZE" and last:
                memo[len(memo)] = last[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                last = (last + [memo.get(arg)])[-2:]
        return globals_, strings
    except Exception:
        return None


class _NotAModelFileError(pickle.UnpicklingError, ValueError):
    """A file that :func:`load_estimator` refuses because it holds Python objects and is no deepcausal model
    file (a ``ValueError`` too, as every other file that is not a model file)."""


def _what_file(path: str) -> str:
    """A few words on what a file that is not a model file holds, for the error."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not head:
        return "it is empty"
    if zipfile.is_zipfile(path):
        return "it is a zip archive that torch.save did not write"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy .npy file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text.rstrip("\x00")):
        first = text.splitlines()[0] if text.splitlines() else ""
        kind = "a CSV or other text file" if ("," in first or ";" in first or "\t" in first) else "a text file"
        return f"it is {kind} (beginning {first[:40]!r})"
    return _UNKNOWN_BINARY


_UNKNOWN_BINARY = "torch cannot read it as an archive"


def _not_a_model_file(path: str, detail: str, readable: bool = False) -> ValueError:
    """The error for a file that holds no model: ``detail`` says what it is instead."""
    if readable:  # torch read it, and found something else
        return ValueError(f"{path} is not a deepcausal model file (one that est.save(path) wrote): {detail}")
    damaged = ", or a damaged one" if detail == _UNKNOWN_BINARY else ""
    return ValueError(f"{path} is not a readable deepcausal model file: {detail}, so it is not a deepcausal model "
                      f"file (one that est.save(path) wrote){damaged}")


def _refusal(path: str, cls, exc: Exception) -> Exception:
    """The error for a file that ``weights_only`` loading rejected: an old-format model, a file holding
    other Python objects, or not a model file at all."""
    contents = _pickle_contents(path)
    if contents is None:
        return _not_a_model_file(path, _what_file(path))
    globals_, strings = contents
    if _FORMAT in strings and any(g.startswith("deepcausal.") for g in globals_):
        return ValueError(
            f"{path} was saved in model file format 1 by an earlier deepcausal, which pickled the whole estimator; "
            "loading such a file runs whatever code it holds, so it is refused. If you trust the file (you saved "
            f"it yourself), re-save it in the safe format: est = {cls.__name__}.load(path, trusted=True); "
            "est.save(path)"
        )
    blocked = sorted({m.group(1) for m in re.finditer(r"GLOBAL ([\w.]+)", str(exc))}
                     or {g for g in globals_ if not g.startswith(("torch.", "collections."))})
    message = (f"{path} is refused: it holds Python objects other than tensors and plain data ({', '.join(blocked)}), "
               "and unpickling them could run code on this machine. Load it with trusted=True only if you trust its "
               "source.")
    if _FORMAT not in strings:  # not even dressed up as a model file: some other torch file
        return _NotAModelFileError(f"{path} is not a deepcausal model file (one that est.save(path) wrote). {message}")
    return pickle.UnpicklingError(message)


def load_estimator(cls, path, *, device=None, nets: Optional[dict] = None, trusted: bool = False):
    """Read what :func:`save_estimator` wrote, checking it holds a ``cls``, onto ``device``.

    Parameters
    ----------
    cls : type
        The estimator class expected in the file.
    path : str or path-like
    device : torch.device, optional
        Where every tensor and network of the model is placed (CPU by default).
    nets : dict, optional
        Parameter name → the network (module or factory) the model was fitted with, for parameters that
        held user-supplied networks; the saved weights are loaded into copies of them.
    trusted : bool, default=False
        Unpickle what a safe load refuses: files of format 1 and user-supplied networks stored in the file.
        Unpickling runs code chosen by whoever wrote the file: only for files from a trusted source.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no deepcausal model file at this path", path)
    ctx = _Context(device, nets, trusted, top=cls)
    unknown = sorted(set(ctx.nets) - set(inspect.signature(cls.__init__).parameters) - {"self"})
    if unknown:
        raise ValueError(f"nets: {unknown} are not parameters of {cls.__name__}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, cls, exc) from None
    except Exception:
        raise _not_a_model_file(path, _what_file(path)) from None
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise _not_a_model_file(path, f"it holds an object of type {type(blob).__name__}"
                                + (f" with keys {sorted(map(str, blob))[:5]}" if isinstance(blob, dict) else ""),
                                readable=True)
    if blob.get("class") != cls.__name__:
        raise ValueError(f"{path} holds a {blob.get('class')}, not a {cls.__name__}")
    if blob.get("version") == 1 and trusted:
        if not isinstance(blob.get("estimator"), cls):
            raise ValueError(f"{path} does not hold a {cls.__name__}")
        return _to_device(blob["estimator"], ctx.device)
    if blob.get("version") != _FORMAT_VERSION:
        raise ValueError(f"{path} has model file format {blob.get('version')!r}; this deepcausal reads format "
                         f"{_FORMAT_VERSION} (format 1 with trusted=True)")
    est = _decode_estimator(blob["estimator"], ctx)
    unused = sorted(set(ctx.nets) - ctx.used_nets)
    if unused:
        raise ValueError(f"nets: {unused} did not hold user-supplied networks when the model was saved; "
                         "its default networks are rebuilt from the file")
    return est


def _to_device(est, device):
    """Move every tensor and network of an unpickled (format 1) estimator to ``device``."""

    def move(value):
        if isinstance(value, (torch.Tensor, nn.Module)):
            return value.to(device)
        if isinstance(value, TwoStageHeads):
            value.V, value.u = (None if t is None else t.to(device) for t in (value.V, value.u))
            return value
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(move(v) for v in value)
        return value

    for key, value in list(vars(est).items()):
        if key.endswith("_") and not key.startswith("_"):
            setattr(est, key, move(value))
    if hasattr(est, "device_"):
        est.device_ = device
    return est

"""Saving and loading fitted estimators: atomic writes, clear errors for foreign or corrupt files."""

from __future__ import annotations

import os
import tempfile

import torch

_FORMAT = "deepcausal-estimator"
_FORMAT_VERSION = 1


def save_estimator(estimator, path) -> None:
    """Pickle ``estimator`` to ``path`` atomically: write a temporary file beside it, then rename."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".deepcausal-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": _FORMAT, "version": _FORMAT_VERSION, "class": type(estimator).__name__,
                    "estimator": estimator}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_estimator(cls, path):
    """Read what :func:`save_estimator` wrote, checking it holds a ``cls`` (tensors land on the CPU)."""
    try:
        blob = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path!s} is not a readable deepcausal model file: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueError(f"{path!s} is not a deepcausal model file")
    if blob["class"] != cls.__name__:
        raise ValueError(f"{path!s} holds a {blob['class']}, not a {cls.__name__}")
    return blob["estimator"]

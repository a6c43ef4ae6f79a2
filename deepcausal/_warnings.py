"""Warnings the package raises, issued at the user's line and recorded for the fit that raised them.

A fit keeps the warnings it raised (``fit_warnings_``, shown by ``summary()``). They are recorded in
a :class:`contextvars.ContextVar`, not through ``warnings.catch_warnings``: that one swaps the
process-global warning filters and list, so two fits running in two threads would record each
other's warnings and leave the filters changed. A context variable is private to its thread (and
asyncio task), so each fit records exactly its own.

Every warning of the package goes through :func:`warn`, which records it in the running fit's list,
if any, and issues it at the first frame outside the package (the user's call), where the user's
warning filters apply as usual.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, List, Optional

__all__ = ["warn", "recording", "record"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_RECORDER: ContextVar[Optional[List[str]]] = ContextVar("deepcausal_fit_warnings", default=None)


def _first_frame_outside_package():
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
    return frame


def record(text: str) -> None:
    """Add ``"Category: message"`` text to the running fit's record without issuing a warning."""
    caught = _RECORDER.get()
    if caught is not None:
        caught.append(text)


def warn(message: str, category: type = UserWarning) -> None:
    """Record ``message`` in the running fit (if any) and issue it at the user's line."""
    record(f"{category.__name__}: {message}")
    caller = _first_frame_outside_package()
    if caller is None:  # called from inside the package only (e.g. a worker process): plain warning
        warnings.warn(message, category, stacklevel=2)
        return
    g = caller.f_globals
    warnings.warn_explicit(message, category, caller.f_code.co_filename, caller.f_lineno,
                           g.get("__name__", "<string>"), g.setdefault("__warningregistry__", {}))


@contextmanager
def recording() -> Iterator[List[str]]:
    """Collect the package's warnings raised in this thread (or task) inside the block, in order."""
    caught: List[str] = []
    token = _RECORDER.set(caught)
    try:
        yield caught
    finally:
        _RECORDER.reset(token)

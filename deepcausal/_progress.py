"""Progress of a fit: one bar over every member's steps, fed from wherever the members train.

Members report through a :class:`Channel` — a callable sent to each member, also into worker
processes — which puts ``(member, steps, held-out loss)`` on a queue. In the fitting process a reader
thread takes them off the queue and moves one tqdm bar (ETA, and the latest held-out stage-2 loss).
Members fitted in the fitting process or in threads share a plain queue; members in worker processes
share a ``multiprocessing`` manager's queue. A member that cannot reach the queue (a remote cluster
backend) trains on without reporting: progress never fails a fit.

The library's messages go through :mod:`logging` (logger ``"deepcausal"``), not ``print``.
"""

from __future__ import annotations

import logging
import queue
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["Channel", "progress_bar", "logger", "show_progress"]

logger = logging.getLogger("deepcausal")

# A fit whose members take at least this many minibatch steps in all shows a bar under verbose="auto"
# (a default fit of 5 members: 5,000 steps; a few-epoch test fit: tens).
_AUTO_STEPS = 1000


def show_progress(verbose, total_steps: int, rank: int = 0) -> bool:
    """Whether a fit shows its bar: ``verbose`` True or False, or "auto": long fits only."""
    if rank != 0:
        return False
    if verbose == "auto":
        return total_steps >= _AUTO_STEPS
    return bool(verbose)


class Channel:
    """A member's line to the bar: ``channel(steps, held_out)`` reports steps done since the last call."""

    def __init__(self, q, member: int):
        self._queue, self.member = q, member

    def __call__(self, steps: int, held_out: Optional[float] = None) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put((self.member, int(steps), held_out))
        except Exception:  # the bar's process is out of reach: train on without it
            self._queue = None


@contextmanager
def progress_bar(total: int, desc: str, show: bool, processes: bool) -> Iterator[callable]:
    """A bar of ``total`` steps while the block runs; yields ``channel(member) -> Channel`` (silent
    channels when ``show`` is False). ``processes``: members may train in worker processes."""
    if not show:
        yield lambda member: Channel(None, member)
        return
    from tqdm.auto import tqdm

    manager = None
    if processes:
        import multiprocessing

        manager = multiprocessing.Manager()
        q = manager.Queue()
    else:
        q = queue.Queue()
    bar = tqdm(total=total, desc=desc, unit="step")
    done = threading.Event()

    def read():
        while not (done.is_set() and q.empty()):
            try:
                member, steps, held_out = q.get(timeout=0.1)
            except queue.Empty:
                continue
            except (EOFError, OSError):  # the manager went away
                return
            bar.update(steps)
            if held_out is not None:
                bar.set_postfix(member=member, held_out=f"{held_out:.4g}", refresh=False)

    reader = threading.Thread(target=read, name="deepcausal-progress", daemon=True)
    reader.start()
    try:
        yield lambda member: Channel(q, member)
    finally:
        done.set()
        reader.join(timeout=5)
        bar.close()
        if manager is not None:
            manager.shutdown()

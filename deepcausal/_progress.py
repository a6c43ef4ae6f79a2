"""Progress of a fit: one bar over every member's steps, fed from wherever the members train.

Members report through a :class:`Channel` — a callable sent to each member — with
``channel(steps, held-out loss)``. In the fitting process a reader thread takes the reports and moves
one tqdm bar (ETA, and the latest held-out stage-2 loss). A channel used in the fitting process (members
in turn or in threads) puts its reports on a plain queue. A channel that joblib sends to another process
(loky's workers, or any other backend's: the channel does not need to know which one joblib picked) keeps
only the address of a socket the reader listens on (a Unix socket in a private temporary folder, or
127.0.0.1 where there are none), connects on its first report and writes one line per report.

Nothing here starts a process: a ``multiprocessing`` manager would, and under the spawn and forkserver start
methods that process imports the user's main script again, which fails in a script without an
``if __name__ == "__main__":`` guard. A channel that cannot reach the bar (a remote cluster backend, a
closed socket) trains on without reporting: progress never fails or stalls a fit.

The library's messages go through :mod:`logging` (logger ``"deepcausal"``), not ``print``.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import selectors
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["Channel", "progress_bar", "logger", "show_progress"]

logger = logging.getLogger("deepcausal")

# A fit whose members take at least this many minibatch steps in all shows a bar under verbose="auto"
# (a default fit of 5 members: 5,000 steps; a few-epoch test fit: tens).
_AUTO_STEPS = 1000
_TIMEOUT = 2.0  # seconds a worker's channel may wait to connect or write before it falls silent
_DRAIN = 2.0  # seconds the reader goes on reading reports after the members have finished


def show_progress(verbose, total_steps: int, rank: int = 0) -> bool:
    """Whether a fit shows its bar: ``verbose`` True or False, or "auto": long fits only."""
    if rank != 0:
        return False
    if verbose == "auto":
        return total_steps >= _AUTO_STEPS
    return bool(verbose)


class Channel:
    """A member's line to the bar: ``channel(steps, held_out)`` reports steps done since the last call.

    In the process that made it, a report goes on the bar's queue; pickled into another process, the channel
    keeps the bar's socket address and token only (the queue cannot travel) and writes its reports there."""

    def __init__(self, q, member: int, address=None, token: str = ""):
        self._queue, self.member, self._address, self._token = q, member, address, token
        self._sock = None

    def __getstate__(self):
        return {"_queue": None, "member": self.member, "_address": self._address, "_token": self._token,
                "_sock": None}

    def __call__(self, steps: int, held_out: Optional[float] = None) -> None:
        try:
            held = None if held_out is None else float(held_out)
            if self._queue is not None:
                self._queue.put((self.member, int(steps), held))
            elif self._address is not None:
                if self._sock is None:
                    self._sock = socket.socket(*self._address[:2])
                    self._sock.settimeout(_TIMEOUT)
                    self._sock.connect(self._address[2])
                    self._sock.sendall(f"{self._token}\n".encode())
                self._sock.sendall(f"{self.member} {int(steps)} {held!r}\n".encode())
        except Exception:  # the bar is out of reach: train on without it
            self._close()
            self._queue = self._address = None

    def _close(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __del__(self):
        try:
            self._close()
        except Exception:
            pass


def _listen():
    """A listening socket for channels in other processes and its address ``(family, type, where)``, and the
    temporary folder to remove afterwards; (None, None, None) when none can be opened."""
    if hasattr(socket, "AF_UNIX"):
        folder = server = None
        try:
            folder = tempfile.mkdtemp(prefix="deepcausal-")  # private (0700): only this user reaches the socket
            where = os.path.join(folder, "bar")
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(where)
            server.listen(64)
            server.setblocking(False)
            return server, (socket.AF_UNIX, socket.SOCK_STREAM, where), folder
        except Exception:  # e.g. a path too long for a Unix socket: the loopback interface instead
            if server is not None:
                server.close()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    server = None
    try:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        server.setblocking(False)
        return server, (socket.AF_INET, socket.SOCK_STREAM, server.getsockname()), None
    except Exception:
        if server is not None:
            server.close()
        return None, None, None


def _bar_class(base):
    """``base`` (a tqdm class) whose rate and ETA count from the first report on.

    The members' first report comes after their start-up (a worker process imports torch first, several
    seconds), so tqdm's own estimate from the start promised hours for a one-minute fit. Until a second
    report has come, the bar shows no ETA."""

    class Bar(base):
        _first = None  # (time, steps) of the first report

        def update(self, n=1):
            if self._first is None and n:
                self._first = (self._time(), self.n + n)
            return super().update(n)

        @property
        def format_dict(self):
            d = super().format_dict
            rate = 0.0
            if self._first is not None:
                t0, n0 = self._first
                dt = self._time() - t0
                rate = (self.n - n0) / dt if dt > 0 and self.n > n0 else 0.0
            d["rate"] = rate  # 0: tqdm shows "?" for the rate and the remaining time
            return d

    Bar.__name__ = Bar.__qualname__ = base.__name__
    return Bar


class _Channels:
    """``channels(member) -> Channel``; ``bar`` is the tqdm bar (None when it is not shown)."""

    def __init__(self, q=None, address=None, token="", bar=None):
        self._queue, self._address, self._token, self.bar = q, address, token, bar

    def __call__(self, member: int) -> Channel:
        return Channel(self._queue, member, self._address, self._token)


@contextmanager
def progress_bar(total: int, desc: str, show: bool) -> Iterator[_Channels]:
    """A bar of ``total`` steps while the block runs; yields ``channel(member) -> Channel`` (silent
    channels when ``show`` is False). The members may train here, in threads or in other processes."""
    if not show:
        yield _Channels()
        return
    from tqdm.auto import tqdm

    q: queue.Queue = queue.Queue()
    server, address, folder = _listen()
    token = secrets.token_hex(16)
    bar = _bar_class(tqdm)(total=total, desc=desc, unit="step", smoothing=0)
    done = threading.Event()

    def handle(member, steps, held_out):
        bar.update(steps)
        if held_out is not None:
            bar.set_postfix(member=member, held_out=f"{held_out:.4g}", refresh=False)

    def lines(conn, state):
        """Reports read from a worker's connection; False when it is closed (or not a channel)."""
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        state["buffer"] += data
        if len(state["buffer"]) > 65536:  # no line of a channel is this long
            return False
        *complete, state["buffer"] = state["buffer"].split(b"\n")
        for line in complete:
            if not state["authorised"]:  # the first line: this bar's token (anything else is not our channel)
                if not secrets.compare_digest(line, token.encode()):
                    return False
                state["authorised"] = True
                continue
            try:
                member, steps, held = line.decode(errors="replace").split(" ")
                handle(int(member), int(steps), None if held == "None" else float(held))
            except ValueError:
                pass
        return True

    def read():
        selector = selectors.DefaultSelector()
        try:
            if server is not None:
                selector.register(server, selectors.EVENT_READ, None)
            deadline = None
            while True:
                while True:
                    try:
                        handle(*q.get_nowait())
                    except queue.Empty:
                        break
                if done.is_set() and deadline is None:
                    deadline = time.monotonic() + _DRAIN
                events = selector.select(timeout=0 if deadline else 0.1) if selector.get_map() else []
                if not events and deadline is None and not selector.get_map():
                    time.sleep(0.1)
                for key, _ in events:
                    if key.data is None:  # a worker's channel connects
                        try:
                            conn, _ = server.accept()
                            conn.setblocking(False)
                            selector.register(conn, selectors.EVENT_READ, {"buffer": b"", "authorised": False})
                        except OSError:
                            pass
                    elif not lines(key.fileobj, key.data):
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
                if deadline is not None and (not events or time.monotonic() > deadline) and q.empty():
                    return
        except Exception:  # the bar stops moving; the fit goes on
            logger.debug("the progress bar's reader failed", exc_info=True)
        finally:
            for key in list(selector.get_map().values()):
                try:
                    key.fileobj.close()
                except OSError:
                    pass
            selector.close()

    reader = threading.Thread(target=read, name="deepcausal-progress", daemon=True)
    reader.start()
    try:
        yield _Channels(q, address, token, bar)
    finally:
        done.set()
        reader.join(timeout=_DRAIN + 3)
        bar.close()
        if server is not None:
            server.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

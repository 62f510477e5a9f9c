"""SIGINT and SIGTERM as clean exits of the command line: one line on stderr, no traceback, no
temporary file left, exit status 128 + the signal (130, 143).

While `handled()` is active, SIGINT raises KeyboardInterrupt and SIGTERM raises `Terminated` in
the main thread (both BaseException, so `except Exception` blocks do not swallow them), and the
`finally` blocks of the writers (output_paths) remove their temporary files on the way out.
TVM's FFI may hand such an exception back as another type (a RuntimeError) when it was raised
inside a call from C++: `signal_of` therefore also counts any exception after a signal.

A Python signal handler runs only when the main thread executes Python code; during a long C++
call (LLVM code generation) it waits. A watchdog thread, woken by the signal through Python's
wakeup fd, gives the main thread GRACE_SECONDS to finish, then removes the temporary files
itself and ends the process with the same message and status.

A signal can land inside a library's constructor (TVM's `TempDirectory.__init__` during the
export); the half-built object's finalizer then fails when the exception unwinds, and Python
prints "Exception ignored in ... Traceback" after our one line. Inside `handled()`, once a
signal arrived, such unraisable errors are dropped (the process is ending on purpose); before
that they go to the hook that was installed (Python's, or pytest's).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

from . import output_paths

GRACE_SECONDS = 3.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread by the handler)."""


def _on_signal(signum, _frame):
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signal.Signals(signum).name)


def _unraisable_hook(previous):
    def hook(unraisable):
        if not _received:
            previous(unraisable)
    return hook


def signal_of(err: BaseException) -> int | None:
    """The signal that caused `err`, or None if it is an ordinary error."""
    if isinstance(err, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(err, Terminated):
        return signal.SIGTERM
    return _received[0] if _received else None


def describe(signum: int) -> str:
    return "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})"


class Exit:
    """What the message of a signal starts with (the command, once it is known)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._reported = threading.Lock()

    def message(self, signum: int) -> str | None:
        """The one-line message, the first time only (the main thread and the watchdog race)."""
        return f"{self.prefix}: {describe(signum)}\n" if self._reported.acquire(blocking=False) else None

    def report(self, signum: int) -> int:
        """Print the message and return the exit status (128 + the signal)."""
        msg = self.message(signum)
        if msg:
            print(msg, end="", file=sys.stderr, flush=True)
        return 128 + int(signum)


def _watch(sock: socket.socket, exit_: Exit) -> None:
    while True:
        try:
            data = sock.recv(1)
        except OSError:
            return
        if not data:
            return  # handled() ended: the socket was closed
        if data[0] in SIGNALS:
            break
    time.sleep(GRACE_SECONDS)
    output_paths.remove_temporaries()
    msg = exit_.message(data[0])
    if msg:
        os.write(2, msg.encode())  # not sys.stderr: the main thread may hold its lock
    os._exit(128 + data[0])


@contextlib.contextmanager
def handled(prefix: str):
    """Turn SIGINT/SIGTERM into exceptions (and a hard exit after a grace period) inside the
    block, which gets the `Exit` (its prefix starts the message). Outside the main thread
    this changes no handler. A signal the parent set to be ignored (e.g. SIGINT of a
    background job) stays ignored."""
    exit_ = Exit(prefix)
    if threading.current_thread() is not threading.main_thread():
        yield exit_
        return
    _received.clear()
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable_hook(previous_hook)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, _on_signal)
    threading.Thread(target=_watch, args=(reader, exit_), name="deepchip-signal-watchdog", daemon=True).start()
    try:
        yield exit_
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not _received:  # after a signal the process ends: finalizers may still fail on the way
            sys.unraisablehook = previous_hook
        signal.set_wakeup_fd(old_fd)
        writer.close()
        reader.shutdown(socket.SHUT_RDWR)
        reader.close()

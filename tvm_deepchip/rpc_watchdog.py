"""Bounded calls into TVM's RPC client, which blocks forever on a dead, stopped or busy peer.

Each call runs in a daemon thread; when it overruns, the sockets of that session (found in
/proc/self/fd: TVM's sockets live in C++) are shut down so the blocked call returns and no
thread is left behind, and the caller gets a DeviceError naming what it was waiting for.
"""
from __future__ import annotations

import os
import socket
import stat
import threading
from typing import Any, Callable

from .errors import DeviceError, InputError


def socket_peers() -> dict[int, tuple]:
    """fd -> peer address of this process's connected sockets (TVM's RPC sockets live in C++)."""
    peers = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            peers[fd] = s.getpeername()
        except OSError:
            pass
        finally:
            s.close()
    return peers


def shutdown_sockets(peers: dict[int, tuple]) -> None:
    """Shut those sockets down (if they still go to the same peer): a blocked recv returns."""
    now = socket_peers()
    for fd, peer in peers.items():
        if now.get(fd) == peer:
            s = socket.socket(fileno=os.dup(fd))
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                s.close()


def bounded(fn: Callable[[], Any], timeout: float, what: str, on_timeout: Callable[[], None] | None = None):
    """fn() in a daemon thread; DeviceError(what) when it does not return within `timeout` s.

    On timeout `on_timeout` (e.g. shutting the session's socket down) should unblock the thread,
    so no call is left hanging in the background.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err

    th = threading.Thread(target=target, daemon=True, name=f"deepchip-rpc:{what}")
    th.start()
    th.join(timeout)
    if th.is_alive():
        if on_timeout is not None:
            on_timeout()
            th.join(5)
        raise DeviceError(f"{what}: no answer within {timeout:g} s (device dead, stopped or busy)")
    if "error" in box:
        err = box["error"]
        if isinstance(err, (DeviceError, InputError)):
            raise err
        first = str(err).strip().splitlines()
        raise DeviceError(f"{what} failed: {type(err).__name__}: {first[-1] if first else ''}") from err
    return box.get("value")


def new_sockets(before: dict) -> dict:
    return {fd: p for fd, p in socket_peers().items() if before.get(fd) != p}

"""One process per contender: scripts/bench.py's peers take turns, each in its own process.

In one process, the runtimes' thread pools meet: onnxruntime's and OpenVINO's workers keep
spinning or holding their arena for a while after a run, and TVM's pool, which expects both cores,
then waits for a core at every parallel launch. Measured on a znver3 (2 cores), the MLP ran 37 us
alone and 0.5-4 ms after OpenVINO's turn in the same process. A contender here is built in a
child process (spawned: nothing of the parent's runtimes is inherited) from a module-level
factory `factory(*args) -> timer`, and serves `n -> n durations (s)` over a pipe; between turns
it sleeps in `recv`, so whoever runs has the cores to itself; and a turn ends only once the
contender's process has gone quiet (`_settle`): a runtime's worker threads keep spinning after
the runs (TVM's pool: 0.19 s of a core after a ResNet-44 turn, measured on a 2-core znver4 VM),
and the next contender's turn, a few milliseconds, would otherwise run on one free core. That
penalized whoever ran after a spinning runtime and relied on both cores (ResNet-44 split by rows:
0.24 ms alone, 0.38-0.55 ms in turns).
"""
from __future__ import annotations

import multiprocessing as mp
import time
import traceback

_CTX = mp.get_context("spawn")


def _serve(conn, factory, args):
    try:
        timer = factory(*args)
        conn.send(("ready", None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it with the child's traceback
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        n = conn.recv()
        if n is None:
            return
        try:
            conn.send(("ok", timer(n)))
        except BaseException:  # noqa: BLE001 - as above
            conn.send(("error", traceback.format_exc()))


class Isolated:
    """`timer(n)` of a contender living in its own process; `close()` ends it."""

    def __init__(self, name: str, factory, *args, timeout_s: float = 600.0):
        self.name, self.timeout_s = name, timeout_s
        self.conn, child = _CTX.Pipe()
        self.proc = _CTX.Process(target=_serve, args=(child, factory, args), daemon=True, name=f"bench-{name}")
        self.proc.start()
        child.close()
        self._reply()

    def _reply(self):
        if not self.conn.poll(self.timeout_s):
            self.close()
            raise TimeoutError(f"bench contender {self.name}: no answer in {self.timeout_s:.0f} s")
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"bench contender {self.name}: its process died (exit code {self.proc.exitcode})") from None
        if status == "error":
            self.close()
            raise RuntimeError(f"bench contender {self.name} failed in its process:\n{value}")
        return value

    def __call__(self, n: int) -> list[float]:
        self.conn.send(n)
        times = self._reply()
        self._settle()
        return times

    def _settle(self, interval_s: float = 0.02, limit_s: float = 2.0) -> None:
        """Return once the contender's process uses under a tenth of a core over `interval_s`
        (its threads stopped spinning), or after `limit_s`."""
        import psutil

        try:
            proc = psutil.Process(self.proc.pid)
            deadline, last = time.monotonic() + limit_s, sum(proc.cpu_times()[:2])
            while time.monotonic() < deadline:
                time.sleep(interval_s)
                now = sum(proc.cpu_times()[:2])
                if now - last < 0.1 * interval_s:
                    return
                last = now
        except psutil.NoSuchProcess:  # it ended: nothing left to spin
            return

    def close(self):
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
        self.conn.close()

"""tvm_deepchip/timing.py: turns and sessions of the benchmark's contenders (fake timers: no timing here)."""
from tvm_deepchip.timing import fastest_sessions, interleaved_stats


def _fixed(seconds):
    calls = []

    def timer(n):
        calls.append(n)
        return [seconds] * n
    timer.calls = calls
    return timer


def test_interleaved_stats_turns_and_medians():
    a, b = _fixed(0.002), _fixed(0.001)
    stats = interleaved_stats({"a": a, "b": b}, runs=10, rounds=5)
    assert stats["a"]["ms"] == 2.0 and stats["b"]["ms"] == 1.0
    assert stats["a"]["block_ms"] == [2.0] * 5
    assert a.calls == [2] * 6 and b.calls == [2] * 6  # one warm-up turn, then 5 turns of 2 runs


def test_fastest_session_counts_and_all_are_kept():
    stats = {"ort#0": {"ms": 0.9, "block_ms": [0.9]}, "ort#1": {"ms": 0.6, "block_ms": [0.6, 0.7]},
             "ort#2": {"ms": 1.0, "block_ms": [1.0]}, "ours#0": {"ms": 0.2, "block_ms": [0.2]}}
    out = fastest_sessions(stats)
    assert set(out) == {"ort", "ours"}
    assert out["ort"]["ms"] == 0.6 and out["ort"]["block_ms"] == [0.6, 0.7]
    assert out["ort"]["session_ms"] == [0.6, 0.9, 1.0]
    assert out["ours"]["session_ms"] == [0.2]


def test_names_without_a_session_suffix_pass_through():
    out = fastest_sessions({"deepchip:x86-avx2": {"ms": 0.3, "block_ms": [0.3]}})
    assert out == {"deepchip:x86-avx2": {"ms": 0.3, "block_ms": [0.3], "session_ms": [0.3]}}

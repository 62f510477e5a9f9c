"""TVM's CPU tensor intrinsics (x86, arm_cpu) registered without its GPU ones.

MetaSchedule's TuneContext imports the package `tvm.s_tir.tensor_intrin` on first use, whose
__init__ parses every intrinsic TVM has: CUDA's and ROCm's too, 272 TVMScript functions, each
parse calling inspect.stack() (which scans sys.modules for every import-machinery frame). With
this package's modules loaded that import took 97 s on an AMD EPYC znver1, 400 s called 50 frames
deep (a pytest fixture), and tuning paid it once per process before its first trial. The CPU
targets we tune for use only the x86 and arm_cpu intrinsics (TVM's own rules tensorize with
them, ours register their own): 4.9 s. So the package is entered in sys.modules without running
its __init__ and those two submodules are imported; a later import of any other submodule
(`tvm.s_tir.tensor_intrin.cuda`) still works, the package's path being the real one.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

PACKAGE = "tvm.s_tir.tensor_intrin"
CPU_MODULES = ("x86", "arm_cpu")


def register() -> None:
    """Make `import tvm.s_tir.tensor_intrin` cheap: the package without its __init__, its CPU
    intrinsics registered. Nothing to do where the package is already imported."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    for name in CPU_MODULES:
        importlib.import_module(f"{PACKAGE}.{name}")

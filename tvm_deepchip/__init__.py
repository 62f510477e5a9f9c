"""tvm-deepchip: compile DeepChip-style ternary/int8 quantized CNNs with TVM for x86 and ARM.

Public entry points: `quantize` (float ONNX -> DeepChip QDQ ONNX) and `compile` (QDQ ONNX ->
native library for a target preset).
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

from . import threads  # noqa: E402

threads.configure()  # before TVM's runtime sizes its thread pool (tvm_deepchip/threads.py)

# schedules/ and tuning_logs/ live at the repository's top level (the design card's layout); an
# installed package holds them as tvm_deepchip.schedules / tvm_deepchip.tuning_logs (pyproject's
# package-dir). In a source checkout, let the same import names find the top-level folders.
_root = Path(__file__).resolve().parent.parent
if (_root / "schedules" / "__init__.py").is_file() and not (Path(__file__).parent / "schedules").exists():
    __path__.append(str(_root))  # type: ignore[name-defined]


def quantize(*args, **kwargs):
    from .quantizer import quantize as _quantize

    return _quantize(*args, **kwargs)


def compile(*args, **kwargs):  # noqa: A001
    from .compiler import compile as _compile

    return _compile(*args, **kwargs)

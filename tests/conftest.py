"""Suite-wide: the ISA switch as a pytest option, and the header naming this machine's ISA class."""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--x86-isa", metavar="CLASS", default=None,
                     help="act as on an x86 CPU of this ISA class (e.g. x86-avx2 on an AVX-512 machine): "
                          "sets $DEEPCHIP_X86_ISA, so every `x86` build targets it and only the classes "
                          "it includes run natively")


def pytest_configure(config):
    from tvm_deepchip import isa
    from tvm_deepchip.errors import InputError

    chosen = config.getoption("--x86-isa")
    if chosen:
        try:
            cls = isa.get(chosen)
        except InputError as err:
            raise pytest.UsageError(f"--x86-isa: {err}") from None
        if not cls.is_x86:
            raise pytest.UsageError(f"--x86-isa {chosen}: not an x86 class; choose one of {list(isa.X86_CLASSES)}")
        os.environ[isa.X86_SWITCH] = chosen


def pytest_report_header(config):
    import isa_devices

    return isa_devices.header()

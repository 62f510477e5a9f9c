"""Where the primitive tests check a build for an ISA class (tvm_deepchip/isa.py).

- an x86 class this CPU runs (AVX2 code runs on AVX-512 machines too): natively, bit for bit;
- an x86 class it lacks: built, and its assembly checked (the class's signature instruction is
  there, no instruction of a wider class is); the test passes on what it could check;
- an aarch64 class: cross-compiled, uploaded once per test to the RPC device at $DEEPCHIP_RPC
  (the QEMU aarch64 device `scripts/test.sh` brings up, or a board) and run there. Without a
  device it fails under CI=true and skips locally, after the build and assembly checks.

Every build's assembly is checked: an AVX2 user's kernel must not hold AVX-512 (zmm) or VNNI
instructions, a NEON-only board's no `sdot`: those would be illegal instructions there.

The switch $DEEPCHIP_X86_ISA (isa.X86_SWITCH, or `pytest --x86-isa CLASS`) makes the suite act as
on a CPU of that class: the `x86` preset targets it, and only the classes it includes run natively.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tvm_deepchip import isa, targets

RPC = os.environ.get("DEEPCHIP_RPC")
X86_ORDER = isa.X86_CLASSES  # each class includes the ones before it: avx2 < avx512 < avx512-vnni
# instructions a CPU of the class lacks (absent from its builds), and each int8 dot-product form
FORBIDDEN = {"x86-avx2": ("zmm", "vpdpbusd"), "x86-avx512": ("vpdpbusd",), "aarch64-neon": ("sdot",)}
DOT_INSTRUCTION = {"vnni": ("vpdpbusd",), "sdot": ("sdot",),
                   # int16 pairs, uint8 codes of 7-bit weights (+ vpmaddwd), or their int16 pair sums
                   "pmaddwd": ("vpmaddwd", "vpmaddubsw")}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def suite_x86_class() -> isa.IsaClass:
    """The class the suite treats as this machine's: the switch's, else the CPU's own."""
    chosen = os.environ.get(isa.X86_SWITCH, "").strip()
    return isa.get(chosen) if chosen else isa.host_class()


def runs_natively(cls: isa.IsaClass) -> bool:
    if not (cls.is_x86 and isa.runs_here(cls)):
        return False
    return X86_ORDER.index(cls.name) <= X86_ORDER.index(suite_x86_class().name)


def preset(cls: isa.IsaClass) -> targets.TargetPreset:
    """The `x86` preset (this CPU, or the switch's class) for the suite's own class, so the
    suite builds what `deepchip compile --target x86` builds here; the class's preset otherwise."""
    if cls.is_x86 and cls.name == suite_x86_class().name:
        return targets.get_preset("x86")
    return targets.get_preset(cls.name)


def check_assembly(cls: isa.IsaClass, lib, primitive: str, wide: bool = False) -> None:
    """No instruction the class lacks; the int8 conv and dense use the class's dot product; `wide`: a
    vectorized conv case that must fill AVX-512's zmm registers on an AVX-512 class."""
    asm = lib.inspect_source("asm")
    for insn in FORBIDDEN.get(cls.name, ()):
        assert insn not in asm, f"{cls.name} build of {primitive} holds {insn!r}: illegal on that CPU"
    bit_dot = ("ternary_dense_packed", "bwn_dense", "bwn_conv2d")
    if cls.dot and primitive in ("int8_conv2d", "int8_dense") + bit_dot:
        insns = DOT_INSTRUCTION[cls.dot]
        assert any(i in asm for i in insns), f"{cls.name} build of {primitive} does not use {' or '.join(map(repr, insns))}"
    if primitive in bit_dot and cls.mask_registers:  # bit_dot: bits to -1/0 bytes, or to -1/+1 (a masked blend)
        insn = "vpmovm2b" if primitive == "ternary_dense_packed" else "vpblendmb"
        assert insn in asm, f"{cls.name} build of {primitive} does not expand its bits with {insn}"
    if wide and cls.is_x86 and cls.vector_bytes == 64:
        assert "zmm" in asm, f"{cls.name} build of {primitive} uses no 512-bit (zmm) registers"


def run(cls: isa.IsaClass, lowered, lib, inputs: list):
    """Outputs of `lib` on each input where the class runs (natively or on the RPC device);
    None where it cannot run here (an x86 class this CPU lacks: assembly checked only)."""
    if cls.is_x86:
        return [_run_local(lowered, lib, qx) for qx in inputs] if runs_natively(cls) else None
    if not RPC:
        msg = (f"{cls.name}: built and assembly checked; the numeric check needs the aarch64 RPC device "
               f"(DEEPCHIP_RPC unset: run `eval \"$(bash .ci/qemu_up.sh)\"` or scripts/test.sh)")
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return _run_remote(cls, lowered, lib, inputs)


def _args(lowered, qx, dev):
    import tvm

    args = [tvm.runtime.tensor(qx, dev)] + [tvm.runtime.tensor(c, dev) for c in lowered.consts]
    return args + [tvm.runtime.empty(lowered.out_shape, lowered.out_dtype, dev)]


def _run_local(lowered, lib, qx):
    import tvm

    args = _args(lowered, qx, tvm.cpu())
    lib["main"](*args)
    return args[-1].numpy()


def _run_remote(cls, lowered, lib, inputs: list, timeout: float = 120.0):
    from tvm_deepchip import parallel_launch, remote

    pre = preset(cls)
    targets.check_cross_compiler(pre)
    with tempfile.TemporaryDirectory(prefix="deepchip-isa-") as tmp:
        so = Path(tmp) / f"{lowered.primitive}.so"
        parallel_launch.export(lib, so, pre.cross_compiler)  # as a deployed library: our launcher linked in
        dev_session = remote.connect(rpc=RPC, timeout=timeout)
        try:
            sess = dev_session.session
            dev_session.call(lambda: sess.upload(str(so)), f"uploading {so.name}")
            rlib = dev_session.call(lambda: sess.load_module(so.name), f"loading {so.name}")
            outs = []
            for qx in inputs:
                args = dev_session.call(lambda qx=qx: _args(lowered, qx, sess.cpu()), "sending the input")
                dev_session.call(lambda: rlib["main"](*args), f"running {so.name}")
                outs.append(dev_session.call(lambda: args[-1].numpy(), "fetching the output"))
            return outs
        finally:
            rlib = args = sess = None
            dev_session.close()  # a direct server serves one session at a time


def header() -> str:
    host = isa.host_class()
    switch = os.environ.get(isa.X86_SWITCH, "").strip()
    native = [c for c, k in isa.CLASSES.items() if runs_natively(k)]
    lines = [f"ISA: this CPU is {host.name} (LLVM cpu {isa.host_cpu()})"
             + (f"; {isa.X86_SWITCH}={switch}: x86 builds target {switch}" if switch else ""),
             f"ISA: primitives run natively for {', '.join(native)}; assembly-checked only: "
             + (", ".join(c for c in isa.X86_CLASSES if c not in native) or "none"),
             "ISA: aarch64 classes run on " + (f"the RPC device {RPC}" if RPC else
                                               "no device (DEEPCHIP_RPC unset): " + ("fail (CI)" if in_ci() else "skip"))]
    return "\n".join(lines)

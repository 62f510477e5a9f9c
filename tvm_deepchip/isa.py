"""ISA classes: the one table from a TVM target to the instruction-set facts the project reads.

A class groups the CPUs for which our kernels are the same code: the same vector width and the
same int8 dot-product form. Tuning logs are matched by class (a log of another class is foreign),
the tests run every primitive for every class, and the benchmark keeps one section per class.
Nothing else asks a target for CPU features.

Classes (representative TVM targets in `IsaClass.target`):
- `x86-avx2`: AVX2 + FMA, no AVX-512 (AMD Zen 1-3, Intel client CPUs before Ice Lake);
- `x86-avx512`: AVX-512BW without VNNI (Skylake-SP);
- `x86-avx512-vnni`: AVX-512 with VNNI `vpdpbusd` (Cascade Lake and later servers, AMD Zen 4/5);
- `aarch64-neon`: NEON without dotprod (Cortex-A53/A72: Raspberry Pi 3 and 4);
- `aarch64-dotprod`: NEON with `sdot` (Cortex-A55/A76 and later).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class IsaClass:
    name: str
    arch: str  # "x86_64" or "aarch64"
    vector_bytes: int  # width of the vector registers our schedules fill
    vector_registers: int  # how many there are (register tiles are sized to fit)
    # the int8 dot product: "vnni" (vpdpbusd, u8 x s8, 4 channels), "sdot" (s8 x s8, 4 channels),
    # "pmaddwd" (vpmaddwd on int16 codes, channel pairs: exact, where vpmaddubsw would saturate;
    # layers of 7-bit weights take uint8 codes through vpmaddubsw + vpmaddwd: int8_weights.dot_operand),
    # or None (plain vector multiply-adds)
    dot: str | None
    int8_operand: str  # the type the activations are fed to the int8 dot products in
    target: dict  # a representative TVM target of the class
    # the type the sparse ternary convs' layout pass stores input codes in, where not their own
    # 8-bit type: int16 on AVX2, so each tap is one vector add from memory, with no widening per
    # tap (AVX2 builds on an Intel Xeon: ResNet-44's and SVHN's conv5/6 10-20% faster); with
    # 512-bit vectors it measured 5% slower (every load then splits a cache line), and NEON
    # widens inside its add (uaddw)
    sparse_taps: str | None = None
    # instructions a vector popcount of 32-bit lanes takes: 1 with AVX-512 VPOPCNTDQ (every CPU of
    # the VNNI class we measured has it; LLVM emits it from the target's features), else the
    # nibble lookup (vpshufb, two adds) or NEON's cnt and pairwise adds (schedules/xnor.py)
    popcount_steps: int = 4
    # the lane width, in bits, of the XNOR kernels' popcounted words where a pixel's words pair up
    # (xnor_conv2d.paired): 64 on x86 without VPOPCNTDQ, whose nibble lookup adds up a lane's byte
    # counts with one vpsadbw for 64-bit lanes and five instructions for 32-bit ones (SVHN ConvNet
    # BNN on an AMD EPYC znver4, the two forms in one process, medians of paired ratios: the AVX2
    # build 0.79-0.84x the time, the x86-avx512 build 0.86x); 32 where the popcount is one
    # instruction a lane (VPOPCNTD) or NEON's cnt + pairwise adds (one add more for 64 bits)
    popcount_bits: int = 32

    @property
    def is_x86(self) -> bool:
        return self.arch == "x86_64"

    @property
    def pair_sums(self) -> bool:
        """x86 without VNNI: binary and ternary weights' vpmaddubsw pair sums accumulate in int16
        (primitives/pair_sums), one multiply a step instead of two."""
        return self.dot == "pmaddwd"

    @property
    def mask_registers(self) -> bool:
        """AVX-512's k registers: a 64-bit word of weight bits becomes 64 bytes of -1/0 in two
        instructions (kmovq, vpmovm2b), where AVX2 and NEON take 4-5 per 32 or 16 (bit_dot)."""
        return self.is_x86 and self.vector_bytes == 64


def _x86(mcpu: str) -> dict:
    return {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": mcpu}


def _arm(*mattr: str) -> dict:
    return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon", *mattr],
            "keys": ["arm_cpu", "cpu"]}


# x86 VNNI multiplies unsigned by signed bytes (vpdpbusd); ARM's sdot signed by signed; without
# VNNI, x86 multiplies int16 codes (vpmaddwd: 8-bit codes of either type fit, nothing saturates).
CLASSES: dict[str, IsaClass] = {c.name: c for c in (
    IsaClass("x86-avx2", "x86_64", 32, 16, "pmaddwd", "int16", _x86("haswell"), sparse_taps="int16", popcount_bits=64),
    IsaClass("x86-avx512", "x86_64", 64, 32, "pmaddwd", "int16", _x86("skylake-avx512"), popcount_bits=64),
    IsaClass("x86-avx512-vnni", "x86_64", 64, 32, "vnni", "uint8", _x86("znver4"), popcount_steps=1),
    IsaClass("aarch64-neon", "aarch64", 16, 32, None, "int8", _arm()),
    IsaClass("aarch64-dotprod", "aarch64", 16, 32, "sdot", "int8", _arm("+dotprod")),
)}
X86_CLASSES = tuple(n for n, c in CLASSES.items() if c.is_x86)
ARM_CLASSES = tuple(n for n, c in CLASSES.items() if not c.is_x86)

# The switch that makes every x86 build (the `x86` preset: CLI, Python API, test suite) target
# one ISA class instead of this machine's CPU, e.g. DEEPCHIP_X86_ISA=x86-avx2 on an AVX-512 host
# to build what an AVX2 user gets.
X86_SWITCH = "DEEPCHIP_X86_ISA"


def get(name: str) -> IsaClass:
    if name not in CLASSES:
        raise InputError(f"unknown ISA class {name!r}; choose one of {sorted(CLASSES)}")
    return CLASSES[name]


def _has(feature: str, target) -> bool:
    from tvm.target import codegen

    return bool(codegen.target_has_features(feature, target))


def classify(target) -> IsaClass:
    """The ISA class of a TVM target (a `tvm.target.Target` or a target dict). A non-CPU target
    or an architecture we have no kernels for raises InputError naming it."""
    import tvm

    tgt = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
    if str(tgt.kind.name) != "llvm":
        raise InputError(f"target kind {tgt.kind.name!r} is not a CPU: tvm-deepchip builds for llvm "
                         f"(x86-64 or aarch64) targets only")
    triple = str(tgt.attrs.get("mtriple", "") or "")
    if triple.startswith("aarch64"):
        return CLASSES["aarch64-dotprod" if _has("dotprod", tgt) else "aarch64-neon"]
    if triple and not triple.startswith("x86_64"):
        raise InputError(f"target triple {triple!r}: tvm-deepchip has kernels for x86_64 and aarch64 only")
    if _has("avx512bw", tgt):
        return CLASSES["x86-avx512-vnni" if _has("avx512vnni", tgt) else "x86-avx512"]
    if _has("avx2", tgt):
        return CLASSES["x86-avx2"]
    raise InputError(f"target {dict(tgt.export())!r}: the x86 kernels need AVX2 at least (mcpu haswell or newer)")


def current() -> IsaClass:
    """The class of the target in scope (`with target:`, as schedules run); x86-avx2 if none."""
    from tvm.target import Target

    target = Target.current(allow_none=True)
    return classify(target) if target is not None else CLASSES["x86-avx2"]


def host_cpu() -> str:
    """LLVM's name for this machine's CPU (e.g. znver3)."""
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


def host_x86_target() -> dict:
    """The target of this machine's x86 CPU, or of the class named by $DEEPCHIP_X86_ISA."""
    chosen = os.environ.get(X86_SWITCH, "").strip()
    if chosen:
        cls = get(chosen)
        if not cls.is_x86:
            raise InputError(f"{X86_SWITCH}={chosen}: not an x86 class; choose one of {list(X86_CLASSES)}")
        spec = dict(cls.target)
    else:
        spec = _x86(host_cpu())
    spec["num-cores"] = os.cpu_count() or 1
    return spec


def host_class() -> IsaClass:
    """The class of this machine's own CPU (ignores the switch)."""
    return classify(_x86(host_cpu()))


def runs_here(cls: IsaClass) -> bool:
    """Can code built for `cls` run natively on this machine? (x86 classes whose features this
    CPU has; aarch64 classes run only on a device or under QEMU.)"""
    if not cls.is_x86:
        return False
    host = host_class()
    order = ("x86-avx2", "x86-avx512", "x86-avx512-vnni")
    return order.index(cls.name) <= order.index(host.name)

"""x86 schedules (target key `cpu`). Vector widths follow the target: 64-byte registers where
it has AVX-512 (BW), 32-byte (AVX2) otherwise."""
from ..common import Isa

AVX2 = Isa("avx2", 32)
AVX512 = Isa("avx512", 64)


def isa() -> Isa:
    """The ISA of the target in scope (`with target:`); AVX2 when none is set."""
    from tvm.target import Target, codegen

    target = Target.current(allow_none=True)
    if target is not None and str(target.kind) == "llvm" and codegen.target_has_features("avx512bw", target):
        return AVX512
    return AVX2

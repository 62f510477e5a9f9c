"""x86 schedules (target key `cpu`). Vector widths follow the target's ISA class
(tvm_deepchip/isa.py): 64-byte registers on the AVX-512 classes, 32-byte (AVX2) otherwise."""
from tvm_deepchip import isa as isa_table

from ..common import Isa

AVX2 = Isa("avx2", 32)
AVX512 = Isa("avx512", 64)


def isa() -> Isa:
    """The ISA of the target in scope (`with target:`); AVX2 when none is set, and for the
    aarch64 targets that fall back to these schedules."""
    cls = isa_table.current()
    return AVX512 if cls.is_x86 and cls.vector_bytes == 64 else AVX2

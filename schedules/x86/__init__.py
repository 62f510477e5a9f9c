"""x86 schedules (target key `cpu`). Vectors are sized for AVX2 (32-byte registers), which
every x86-64 machine this project targets has; on AVX-512 machines the sampled vector-length
knob reaches 64-byte vectors."""
from ..common import Isa

ISA = Isa("avx2", 32)

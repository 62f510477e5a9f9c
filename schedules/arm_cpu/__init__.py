"""arm_cpu schedules (target key `arm_cpu`): NEON, 16-byte registers."""
from ..common import Isa

ISA = Isa("neon", 16)

"""x86 schedules (target key `cpu`) where they differ from the other families: the int8 conv on
VNNI `vpdpbusd` or `vpmaddwd` (the ISA class of the target in scope says which), and those
tensor intrinsics."""

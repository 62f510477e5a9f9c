"""x86 schedules (target key `cpu`) where they differ from the other families: the int8 conv and
dense on VNNI `vpdpbusd` or `vpmaddwd` (the ISA class of the target in scope says which:
dot_choice.py), and those tensor intrinsics."""

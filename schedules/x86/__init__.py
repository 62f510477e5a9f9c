"""x86 schedules (target key `cpu`) where they differ from the other families: the int8 conv and
dense on VNNI `vpdpbusd`, `vpmaddwd`, or `vpmaddubsw` + `vpmaddwd` for 7-bit weights (the ISA
class of the target in scope and the layer's operand say which: dot_choice.py), and those tensor
intrinsics."""

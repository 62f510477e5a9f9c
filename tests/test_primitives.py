"""The primitive registry: one record per (op, format), lowering as a lookup, roles the schedules find."""
from __future__ import annotations

import numpy as np
import pytest
import tvm

import primitive_cases as pc
from tvm_deepchip import primitives
from tvm_deepchip.errors import InputError
from tvm_deepchip.formats import BY_INPUT, CHOICES, KERNEL_FORMATS, Format
from tvm_deepchip.primitives import roles
from tvm_deepchip.schedules import _RULES, load_all, tagged_block


def test_formats_are_one_vocabulary():
    assert CHOICES == ("sparse", "delta", "packed", "dot", "int8", "bits", "float")
    assert KERNEL_FORMATS == ("sparse", "delta", "packed", "dot", "int8", "bits")
    assert f"{Format.SPARSE}" == "sparse" and repr(Format.INT8) == "'int8'" and Format("packed") is Format.PACKED


def test_every_op_and_kernel_format_has_one_primitive_with_schedules_for_both_families():
    load_all()
    keys = [(p.op, p.format) for p in primitives.PRIMITIVES]
    formats = KERNEL_FORMATS + BY_INPUT  # chosen, or given by the layer's input (XNOR)
    assert sorted(keys) == sorted({(op, Format(f)) for op in ("conv2d", "dense") for f in formats})
    for p in primitives.PRIMITIVES:
        assert primitives.lookup(p.op, p.format.value) is p
        assert p.rule == f"deepchip_{p.stem}"
        for key in ("cpu", "arm_cpu"):  # the target keys of schedules/x86 and schedules/arm_cpu
            assert (key, p.rule) in _RULES, (key, p.rule)


def _layer(kind="ternary", op="conv2d", symmetric=False):
    rng = np.random.default_rng(0)
    shape = (8, 5, 3, 3) if op == "conv2d" else (8, 37)
    return pc.make_layer(rng, op, kind, shape, pad=1 if op == "conv2d" else 0, symmetric=symmetric)


def _binary(op="conv2d"):
    """A BWN layer: int8 codes +-1 (layer_check reads {-a, +a} weights so)."""
    layer = _layer("int8", op)
    layer.codes = np.where(np.random.default_rng(1).random(layer.codes.shape) < 0.5, -1, 1).astype(np.int8)
    return layer


def test_formats_for_and_refusals():
    assert primitives.formats_for(_layer()) == ("sparse", "delta", "packed")
    assert primitives.formats_for(_layer(symmetric=True)) == ("sparse", "delta", "packed", "int8")
    assert primitives.formats_for(_layer("int8")) == ("int8",)
    assert primitives.formats_for(_layer(op="dense")) == ("sparse", "delta", "packed", "dot")
    assert primitives.formats_for(_binary(op="dense")) == ("int8", "bits")
    assert primitives.formats_for(_binary(), (1, 5, 8, 8)) == ("int8", "bits")  # 64 positions
    assert primitives.formats_for(_binary(), (1, 5, 9, 8)) == ("int8",)  # 72
    strided = _binary()
    strided.strides = (2, 2)  # a 3x3 kernel at stride 2 gains zero taps (phases), which one plane cannot hold
    assert primitives.formats_for(strided, (1, 5, 5, 5)) == ("int8",)
    with pytest.raises(InputError, match=r"layer 'conv2d_int8': format 'bits' runs a conv only of at most 64 output "
                                         r"positions whose strides divide its kernel; this one has kernel 3x3, "
                                         r"strides 2x2, padding \(1, 1, 1, 1\), input 5x5, 3x3 output positions"):
        primitives.lower_layer(strided, (1, 5, 5, 5), "bits")
    with pytest.raises(InputError, match=r"layer 'conv2d_int8': format 'bits' needs binary weights"):
        primitives.lower_layer(_layer("int8"), (1, 5, 5, 5), "bits")
    with pytest.raises(InputError, match=r"layer 'conv2d_ternary': format 'dot' runs a conv only where its kernel covers"):
        primitives.lower_layer(_layer(), (1, 5, 9, 7), "dot")
    with pytest.raises(InputError, match=r"layer 'conv2d_ternary': no primitive for format 'float'"):
        primitives.lower_layer(_layer(), (1, 5, 9, 7), "float")
    with pytest.raises(InputError, match=r"format 'int8' needs Wp == Wn"):
        primitives.lower_layer(_layer(), (1, 5, 9, 7), "int8")
    with pytest.raises(InputError, match=r"format 'sparse' needs ternary weights, the layer has int8"):
        primitives.lower_layer(_layer("int8"), (1, 5, 9, 7), "sparse")
    with pytest.raises(InputError, match=r"conv2d input \(1, 4, 9, 7\) does not match weight"):
        primitives.lower_layer(_layer(), (1, 4, 9, 7), "sparse")


@pytest.mark.parametrize("op, fmt", [(p.op, p.format.value) for p in primitives.PRIMITIVES if p.format not in BY_INPUT])
def test_prim_func_declares_the_roles_the_schedules_look_up(op, fmt):  # (XNOR's: tests/test_xnor.py)
    shape = {"conv2d": (1, 5, 9, 7), "dense": (2, 37)}[op]
    layer = _binary(op) if fmt == "bits" else _layer(op=op, symmetric=True)
    if (op, fmt) == ("conv2d", "dot"):  # a conv whose kernel covers its input
        layer.padding, shape = (0, 0, 0, 0), (1, 5, 3, 3)
    lowered = primitives.lower_layer(layer, shape, fmt)
    func = primitives.prim_func(lowered)
    assert tagged_block(func) == (roles.EPILOGUE_NAME, f"deepchip_{lowered.primitive}")
    sch = tvm.s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    found = {roles.role_of(sch.get(b)) for b in blocks}
    assert roles.EPILOGUE in found
    assert (roles.ACCUMULATOR in found) == (fmt != "delta")  # delta: the walk applies the epilogue
    assert (roles.ROW_SUMS in found) == (fmt == "sparse")
    assert roles.LAYOUT in found
    n_acc = sum(roles.role_of(sch.get(b)) == roles.ACCUMULATOR for b in blocks)
    # dot, dense packed (bit_dot): both planes in one accumulator; delta: none, its walk is the epilogue's block
    one = {"int8", "dot", "bits"} | ({"packed"} if op == "dense" else set())
    assert n_acc == (1 if fmt in one else 0 if fmt == "delta" else 2)
    assert (roles.CROP in found) == (op == "conv2d" and fmt not in ("int8", "dot", "bits"))  # (dot: the dense form's crop)
    assert len(func.params) == 2 + len(lowered.consts)  # x, the constants, the output


def test_index_tables_get_valid_dummies():
    lowered = primitives.lower_layer(_layer(), (1, 5, 9, 7), "sparse")
    tables = lowered.consts[:4]  # rows and row tables of both signs; the epilogue's constants follow
    assert {str(t.dtype) for t in tables} == {"uint64", "int32"}  # rows in words of four uint16 offsets
    for t in tables:
        dummy = primitives.valid_dummy(t.shape, str(t.dtype))
        assert dummy.shape == t.shape and dummy.dtype == t.dtype and not dummy.any()
    assert primitives.valid_dummy((3,), "float64") is None and primitives.valid_dummy((3,), "int8") is None
    delta = primitives.lower_layer(_layer(), (1, 5, 9, 7), "delta")
    stream, starts = delta.consts[:2]  # an all-zero stream is valid: every list empty
    assert not primitives.valid_dummy(stream.shape, str(stream.dtype)).any() and str(starts.dtype) in ("uint16", "int32")


@pytest.mark.parametrize("stride, pad, step", [(2, 0, 2), (2, 1, 1), (1, 0, 1)])
def test_a_strided_1x1_conv_reads_only_the_pixels_it_uses(stride, pad, step):
    """conv_layout's step form: a 1x1 conv without padding and stride s is a stride-1 conv over
    every s-th pixel (one phase plane, a quarter of the layout at s = 2), with the layer's output
    shape; padded or unstrided ones keep the phase form."""
    from tvm_deepchip.primitives import conv_layout

    layer = pc.make_layer(np.random.default_rng(0), "conv2d", "ternary", (8, 16, 1, 1), stride=stride, pad=pad)
    in_shape = (1, 16, 11, 10)
    geo = conv_layout.geometry(layer, in_shape)
    full = conv_layout.ConvGeometry.of(in_shape, layer.codes.shape, layer.strides, layer.padding)
    assert geo.step == step and geo.out_shape() == full.out_shape()
    if step > 1:
        assert (geo.sh, geo.sw, geo.h, geo.w) == (1, 1, 6, 5) and geo.image * 4 <= full.image

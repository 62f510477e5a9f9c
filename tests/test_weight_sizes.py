"""One size function per weight form (tvm_deepchip/weight_sizes.py): each counts what its name
says (checked against the packed arrays, the encoder's bytes or a count by hand), and the
kernels, the quantizer's report and the compression table agree with it."""
from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvm_deepchip import encodings, models, weight_sizes as W
from tvm_deepchip.primitives import (sparse_rows, ternary_conv2d_packed, ternary_conv2d_sparse, ternary_dense_packed,
                                     ternary_dense_sparse)
from tvm_deepchip.primitives.conv_layout import ConvGeometry
from tvm_deepchip.quantizer import quantize
from tvm_deepchip.ternary import ternarize

ROOT = Path(__file__).resolve().parent.parent


def signs(shape, sparsity, seed=0):
    nz = 1.0 - sparsity
    return np.random.default_rng(seed).choice([-1, 0, 1], size=shape, p=[nz / 2, sparsity, nz / 2]).astype(np.int8)


def rows_by_hand(s2: np.ndarray, offset_bytes: int) -> int:
    """Balanced rows of one length L (a multiple of the four offsets a stored word holds) for
    both signs (plus the all-pad row), int32 row tables."""
    total = 0
    for sign in (1, -1):
        counts = (s2 == sign).sum(1)
        length = -(-sparse_rows.choose_row_length(counts) // 4) * 4
        per_channel = np.ceil(counts / length).astype(int)
        total += (per_channel.sum() + 1) * length * offset_bytes + len(counts) * max(1, per_channel.max()) * 4
    return int(total)


@pytest.mark.parametrize("co,k,sparsity", [(8, 64, 0.9), (5, 37, 0.5), (16, 600, 0.95), (3, 31, 0.0), (4, 9, 1.0)])
def test_dense_kernels_count_what_they_read(co, k, sparsity):
    s2 = signs((co, k), sparsity, seed=co * k)
    rows = ternary_dense_sparse.pack_signs(s2)
    tables = (rows.rows_p, rows.map_p, rows.rows_n, rows.map_n)
    assert rows.nbytes() == W.index_rows_bytes(*tables) == sum(t.nbytes for t in tables)
    assert W.index_rows_bytes(*tables) == rows_by_hand(s2, offset_bytes=2)  # uint16 offsets below 64K
    words = ternary_dense_packed.pack(SimpleNamespace(codes=s2))
    assert words.nbytes() == W.bit_words_bytes(co, k) == words.words.nbytes


@pytest.mark.parametrize("ci,hw,co,kernel,stride", [(4, 9, 6, 3, 1), (3, 11, 8, 3, 2), (5, 7, 4, 1, 1), (2, 12, 3, 5, 2)])
def test_conv_kernels_count_what_they_read(ci, hw, co, kernel, stride):
    geo = ConvGeometry.of((1, ci, hw, hw), (co, ci, kernel, kernel), (stride, stride), (1, 1, 1, 1))
    s = signs((co, ci, kernel, kernel), 0.8, seed=ci * hw)
    rows = ternary_conv2d_sparse.pack(SimpleNamespace(codes=s), geo)
    tables = (rows.rows_p, rows.map_p, rows.rows_n, rows.map_n)
    assert rows.nbytes() == W.index_rows_bytes(*tables) == sum(t.nbytes for t in tables)
    planes = ternary_conv2d_packed.pack(SimpleNamespace(codes=s), geo)
    taps = geo.planes * geo.khq * geo.kwq  # phase-split taps: more than Ci*KH*KW when strided
    assert planes.nbytes() == W.bit_planes_bytes(co, taps) == planes.planes.nbytes


def test_ideal_forms_count_by_hand():
    """offset_lists_bits: ceil(log2 K)-bit offsets for every non-zero plus two 16-bit lengths per
    channel; the 2-bit codes are the bit-planes without their padding to whole words."""
    for co, k, sparsity in [(64, 576, 0.9), (10, 37, 0.5), (3, 2, 0.0)]:
        s2 = signs((co, k), sparsity, seed=k)
        nnz = int(np.count_nonzero(s2))
        by_hand = (nnz * max(1, math.ceil(math.log2(k))) + co * 2 * 16) / s2.size
        assert W.offset_lists_bits(1 - nnz / s2.size, k) == pytest.approx(by_hand, rel=1e-12)
    assert W.bit_planes_bytes(7, 64) * 8 == W.TWO_BIT_CODES_BITS * 7 * 64
    assert W.bit_planes_bytes(7, 65) * 8 > W.TWO_BIT_CODES_BITS * 7 * 65


def test_stored_and_gap8_count_by_hand():
    s = signs((6, 3, 3, 3), 0.9, seed=3)
    for e in encodings.ENCODINGS:
        assert W.stored_bytes(s, e) == len(encodings.encode(s, e))
    s2 = np.zeros((2, 600), np.int8)
    s2[0, [0, 300, 599]] = 1  # gaps 0, 299 (one escape), 298 (one escape)
    s2[1, 10] = -1
    # +1 lists: 1 + 2 + 2 = 5 fields in channel 0, none in 1 -> 2 x 5; -1 lists: 1 field -> 2 x 1
    assert W.gap8_lists_bytes(s2) == 2 * 5 + 2 * 1


def test_quantizer_report_agrees():
    model = models.svhn_convnet()
    calib = np.random.default_rng(0).random((4, 3, 40, 40), dtype=np.float32)
    _, report = quantize(model, calib=calib, sparsity=0.9)
    assert len(report.ternary_layers()) == 6
    for r in report.ternary_layers():
        k = int(np.prod(r.shape[1:]))
        assert r.bits["packed"] == W.TWO_BIT_CODES_BITS
        assert r.bits["sparse"] == W.offset_lists_bits(r.sparsity, k)
        nnz = round((1 - r.sparsity) * r.weights)
        assert r.bits["sparse"] == pytest.approx((nnz * math.ceil(math.log2(k)) + 32 * r.shape[0]) / r.weights)


def _table_module():
    spec = importlib.util.spec_from_file_location("compression_table", ROOT / "scripts" / "compression_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _float_model(seed=0):
    """first conv, two inner convs (one 1x1), a Gemm; the first and last stay float in the table."""
    rng = np.random.default_rng(seed)
    layers = [("c1", (8, 3, 3, 3)), ("c2", (16, 8, 3, 3)), ("c3", (40, 16, 1, 1)), ("fc", (10, 40))]
    inits, nodes, cur = [], [], "x"
    for name, shape in layers:
        inits.append(numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), f"{name}.w"))
        if name == "fc":
            nodes += [helper.make_node("Flatten", [cur], ["flat"]),
                      helper.make_node("Gemm", ["flat", f"{name}.w"], ["y"], name=name, transB=1)]
        else:
            nodes.append(helper.make_node("Conv", [cur, f"{name}.w"], [name], name=name, pads=[1, 1, 1, 1]
                                          if shape[2] == 3 else [0, 0, 0, 0]))
            cur = name
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph), dict(layers)


def test_compression_table_agrees():
    table = _table_module()
    model, shapes = _float_model()
    rows = table.model_rows(model, 0.9)
    assert [r["kind"] for r in rows] == ["float", "ternary", "ternary", "float"]
    w = {i.name.split(".")[0]: numpy_helper.to_array(i) for i in model.graph.initializer}
    for r in rows[1:-1]:
        s = ternarize(w[r["layer"]], sparsity=0.9).signs
        s2 = s.reshape(s.shape[0], -1)
        assert r["sparse"] == ternary_dense_sparse.pack_signs(s2).nbytes() == rows_by_hand(s2, 2)
        if s.ndim == 2:  # dense: bit_dot's words; convs: the packed conv's planes
            assert r["packed"] == ternary_dense_packed.pack(SimpleNamespace(codes=s2)).nbytes()
        else:
            assert r["packed"] == W.bit_planes_bytes(*s2.shape)
        assert r["smallest"] == min(r["delta"], r["sparse"], r["packed"])
        assert r["default"] == r["sparse"]  # 1x1 maps, rows of a few KB, 16-40 channels: format_rule keeps the rows
        assert r["delta"] < r["sparse"] and r["delta"] == table.runtime_delta_bytes("Conv", s, {
            "strides": [1, 1], "pads": [1, 1, 1, 1] if s.shape[2] == 3 else [0, 0, 0, 0], "in_shape": [1, s.shape[1], 1, 1]})
        assert r["encodings"] == {e: len(encodings.encode(s, e)) for e in table.DELTA}
        assert r["stored"] == min(r["encodings"].values()) + 8  # + Wp, Wn as float32
    assert all(r["sparse"] == r["fp32"] == 4 * math.prod(shapes[r["layer"]]) for r in (rows[0], rows[-1]))

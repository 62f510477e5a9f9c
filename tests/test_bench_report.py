"""scripts/bench_report.py: the targets, work and rooflines it derives from measurements (no timing here)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_report  # noqa: E402

PEAKS = {"dot_kind": "vpmaddwd+vpaddd ymm (int16 pairs)", "vector_bytes": 32, "dot_macs_per_s": 80e9,
         "add16_per_s": 200e9, "ldadd16_per_s": 50e9, "fma_per_s": 50e9}


def _row(model, sparsity, ms, ort_fp32, ort_int8, ov_int8):
    conv = {"layer": "conv2", "kind": "ternary", "format": "sparse", "shape": [64, 48, 3, 3],
            "out_shape": [1, 64, 18, 18], "sparsity": 0.9}
    first = {"layer": "conv1", "kind": "int8", "format": "int8", "shape": [48, 3, 5, 5], "out_shape": [1, 48, 36, 36]}
    return {"model": model, "sparsity": sparsity, "ms": ms, "block_ms": [ms, ms * 1.1],
            "peers": {"ort_fp32": {"ms": ort_fp32}, "ort_int8": {"ms": ort_int8}, "ov_int8": {"ms": ov_int8}},
            "weight_bytes": 100, "fp32_weight_bytes": 1000, "schedules": {"a": "default"}, "tuning_log": None,
            "layers": {"conv1": 50.0, "conv2": 20.0}, "report": [first, conv],
            "argmax_agrees_with_ort": True, "max_abs_diff_vs_ort": 0.0}


def _section(rows):
    return {"machine": {"cpu": "test cpu", "llvm_cpu": "znver3", "isa": ["avx2", "fma"], "cores": 2, "python": "3"},
            "command": "python3 scripts/bench.py", "date": "today", "threads": 2, "runs": 10, "peaks": PEAKS,
            "rows": rows}


def test_layer_work_counts_macs_for_int8_and_nonzero_adds_for_ternary():
    row = _row("svhn_convnet", 0.9, 0.1, 1, 1, 1)
    first, conv = row["report"]
    assert bench_report.layer_work(first) == ("int8", 48 * 3 * 25 * 36 * 36)
    kind, adds = bench_report.layer_work(conv)
    assert kind == "add" and adds == pytest.approx(64 * 48 * 9 * 18 * 18 * 0.1)
    # roofline on 2 cores at the measured rates
    assert bench_report.roofline_us(first, PEAKS, 2) == pytest.approx(1e6 * 48 * 75 * 1296 / 160e9)
    assert bench_report.roofline_us(conv, PEAKS, 2) == pytest.approx(1e6 * adds / 100e9)


def test_sparse_layers_with_one_output_position_are_gather_bound():
    fc = {"layer": "fc1", "kind": "ternary", "format": "sparse", "shape": [4096, 9216], "out_shape": [1, 4096],
          "sparsity": 0.9}
    conv7 = {"layer": "conv7", "kind": "ternary", "format": "sparse", "shape": [512, 128, 5, 5],
             "out_shape": [1, 512, 1, 1], "sparsity": 0.9}
    for row in (fc, conv7):
        kind, taps = bench_report.layer_work(row)
        assert kind == "gather" and taps == pytest.approx(bench_report._prod(row["shape"]) * 0.1)
        assert bench_report.roofline_us(row, {**PEAKS, "gather_per_s": 5e9}, 2) == pytest.approx(1e6 * taps / 10e9)
        assert bench_report.roofline_us(row, PEAKS, 2) == pytest.approx(1e6 * taps / 100e9)  # older sections
    # packed: up to 4 positions run dot products over expanded bits (bit_dot, packed_windows), more add
    assert bench_report.layer_work({**fc, "format": "packed"}) == ("int8", 2.0 * 4096 * 9216)
    windows = {**conv7, "format": "packed", "out_shape": [1, 512, 2, 2]}
    assert bench_report.layer_work(windows) == ("int8", 2.0 * 512 * 128 * 25 * 4)
    spatial = {**conv7, "format": "packed", "out_shape": [1, 512, 4, 4]}
    assert bench_report.layer_work(spatial) == ("add", pytest.approx(512 * 128 * 25 * 16 * 0.1))
    assert bench_report.layer_work({**fc, "format": "dot"}) == ("int8", 2.0 * 4096 * 9216)  # both planes, every weight


def test_layers_of_7_bit_weights_meet_the_narrow_dot_roofline():
    """A dot layer whose codes go in as uint8 (BWN's +-1 weights through vpmaddubsw without VNNI)
    is held to the narrow dot-product peak; a section measured before that peak, to the int8 one."""
    bwn = {"layer": "conv2", "kind": "int8", "format": "int8", "dot_operand": "uint8", "shape": [64, 48, 3, 3],
           "out_shape": [1, 64, 18, 18]}
    macs = 64 * 48 * 9 * 18 * 18
    assert bench_report.layer_work(bwn) == ("narrow", macs)
    assert bench_report.layer_work({**bwn, "dot_operand": "int16"}) == ("int8", macs)
    assert bench_report.roofline_us(bwn, {**PEAKS, "narrow_dot_macs_per_s": 120e9}, 2) == pytest.approx(1e6 * macs / 240e9)
    assert bench_report.roofline_us(bwn, PEAKS, 2) == pytest.approx(1e6 * macs / 160e9)


def test_pair_sum_layers_meet_the_pair_dot_roofline():
    """A layer whose pairs accumulate in int16 (binary weights without VNNI: primitives/pair_sums)
    is held to that form's peak; a section measured before that peak, to the narrow one."""
    bwn = {"layer": "conv2", "kind": "int8", "format": "int8", "dot_operand": "uint8", "pair_sums": True,
           "shape": [64, 48, 3, 3], "out_shape": [1, 64, 18, 18]}
    macs = 64 * 48 * 9 * 18 * 18
    assert bench_report.layer_work(bwn) == ("pairs", macs)
    peaks = {**PEAKS, "narrow_dot_macs_per_s": 120e9}
    assert bench_report.roofline_us(bwn, peaks, 2) == pytest.approx(1e6 * macs / 240e9)
    assert bench_report.roofline_us(bwn, {**peaks, "pair_dot_macs_per_s": 200e9}, 2) == pytest.approx(1e6 * macs / 400e9)


def test_targets_per_model_family_and_best_int8_peer():
    net = _row("svhn_convnet", 0.9, 0.1, ort_fp32=0.6, ort_int8=0.3, ov_int8=0.2)
    assert [t[2] for t in bench_report.targets_of(net)] == [5.0, 1.5]
    assert bench_report.peer_ms(net, "best_int8") == 0.2  # the faster of the two int8 peers
    assert bench_report.targets_of(_row("svhn_convnet", 0.95, 0.1, 1, 1, 1)) == []  # targets are at 90%
    assert [t[2] for t in bench_report.targets_of(_row("digits", None, 0.1, 1, 1, 1))] == [3.0]
    assert [t[2] for t in bench_report.targets_of(_row("mlp_784_512_512_10", 0.9, 0.1, 1, 1, 1))] == [2.0, 1.0]


def test_report_says_met_and_missed_from_the_measurements(tmp_path):
    rows = [_row("svhn_convnet", 0.9, 0.1, ort_fp32=0.6, ort_int8=0.3, ov_int8=0.2),  # 6x FP32, 2x int8: met
            _row("resnet44", 0.9, 1.0, ort_fp32=1.25, ort_int8=2.0, ov_int8=1.5)]  # 1.25x / 1.5x: missed
    out = tmp_path / "BENCHMARKS.md"
    bench_report.write_report({"x86-avx2": _section(rows)}, out)
    text = out.read_text()
    assert "| svhn_convnet 90%: 5x onnxruntime FP32 | 6.00x | met |" in text
    assert "| svhn_convnet 90%: 1.5x best int8 peer | 2.00x | met |" in text
    assert "| resnet44 90%: 5x onnxruntime FP32 | 1.25x | missed by 4.0x |" in text
    assert "| resnet44 90%: 1.5x best int8 peer | 1.50x | met |" in text
    assert "## x86-avx2" in text and (tmp_path / "bench.png").stat().st_size > 0


def test_a_lower_class_built_on_a_bigger_host_is_a_section_of_its_own(tmp_path):
    """AVX2 built on an AVX-512 VNNI machine: beside the AVX2 section measured on an AVX2 machine,
    named for both, saying its peers used the host's instructions."""
    import bench

    key = bench.section_key("x86-avx2", "x86-avx512-vnni")
    assert key != "x86-avx2" and bench.section_key("x86-avx2", "x86-avx2") == "x86-avx2"
    assert bench.host_note("x86-avx2", "x86-avx2") is None
    row = _row("svhn_convnet", 0.9, 0.1, 1, 1, 1)
    sections = {"x86-avx2": _section([row]),
                key: {**_section([row]), "class": "x86-avx2", "note": bench.host_note("x86-avx2", "x86-avx512-vnni")}}
    out = tmp_path / "BENCHMARKS.md"
    bench_report.write_report(sections, out)
    text = out.read_text()
    assert text.count("building for `x86-avx2`") == 2
    assert f"## {key}: AVX2" in text and "the peers (onnxruntime, OpenVINO) use the host's" in text


def test_targets_show_the_time_needed_and_the_layer_rooflines(tmp_path):
    row = _row("svhn_convnet", 0.9, 0.1, ort_fp32=0.6, ort_int8=0.3, ov_int8=0.2)
    out = tmp_path / "BENCHMARKS.md"
    bench_report.write_report({"x86-avx2": _section([row])}, out)
    roof = bench_report.rooflines_ms(row, PEAKS, 2)
    first, conv = row["report"]
    assert roof == pytest.approx((bench_report.roofline_us(first, PEAKS, 2) + bench_report.roofline_us(conv, PEAKS, 2)) / 1e3)
    assert f"| svhn_convnet 90%: 5x onnxruntime FP32 | 6.00x | met | 0.120 | {roof:.3f} |" in out.read_text()


def test_baseline_format_columns_compare_the_same_build_in_the_replaced_format():
    """With a baseline (the format the default replaced, timed in the same turns), each row shows
    its time, our speed-up over it and the ternary bytes against their entropy bound; sections
    without one keep the old columns."""
    plain = _row("svhn_convnet", 0.9, 0.2, 1, 1, 1)
    row = {**plain, "baseline_format": "sparse", "baseline": {"ms": 0.25, "block_ms": [0.25, 0.3, 0.2]},
           "baseline_one_process": [1.1, 1.2, 1.3, 1.4, 1.5], "ternary_vs_entropy": 1.44, "block_ms": [0.2, 0.2, 0.25]}
    text = "\n".join(bench_report._section("x86-avx2", _section([row])))
    assert ("with sparse layers ms | vs sparse | vs sparse, paired blocks | vs sparse, one process "
            "| ternary bytes / entropy |") in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| svhn_convnet 90%"))
    # block ratios 1.25, 1.5, 0.8: their median and range beside the ratio of the medians; the one-process
    # pairs' median and quartiles
    assert line.rstrip(" |").endswith("| 1.25x | 1.25x (0.80-1.50) | 1.30x (1.20-1.40) | 1.44x")
    assert "vs sparse" not in "\n".join(bench_report._section("x86-avx2", _section([plain])))
    same = {**plain, "baseline_format": "sparse", "baseline_same": True, "ternary_vs_entropy": 4.7}
    text = "\n".join(bench_report._section("x86-avx2", _section([row, same])))
    lines = [ln for ln in text.splitlines() if ln.startswith("| svhn_convnet 90%")]
    assert lines[0].rstrip(" |").endswith("| 1.25x | 1.25x (0.80-1.50) | 1.30x (1.20-1.40) | 1.44x")  # its own baseline
    assert lines[1].rstrip(" |").endswith("| same kernels | 1x (same build) | | | 4.70x")  # no second build to time
    assert lines[1].count("|") == lines[0].count("|")  # every row fills every column
    fc = {"layer": "fc", "kind": "ternary", "format": "delta", "shape": [8, 8], "out_shape": [1, 8], "sparsity": 0.5}
    assert bench_report.layer_work(fc)[0] == "gather"  # one output position: gather-adds, as the sparse form


def test_larq_compute_engine_column_and_its_check_print_for_bnn_rows():
    """A BNN row with the Larq Compute Engine peer (scripts/bench_larq.py) gets its column and a
    note saying what LCE ran and how its logits compared with onnxruntime's; rows without it get an
    empty cell and no note."""
    lce = {"versions": {"larq_compute_engine": "0.16.0", "tensorflow": "2.16.2"},
           "notes": ["first/last layers and activations float (the ONNX model rounds them to int8)",
                     "layer2.0.conv1: stride 2 'same' pads bottom/right (TF) where ONNX pads [1, 1, 1, 1]"],
           "ops": {"LceBconv2d": 44, "CONV_2D": 1}, "argmax_agrees_with_ort": True, "max_abs_diff_vs_ort": 0.0213,
           "max_abs_logit_ort": 2.79}
    bnn = _row("resnet44", None, 0.5, 1.0, 1.2, 0.8)
    bnn = {**bnn, "scheme": "xnor", "peers": {**bnn["peers"], "lce": {"ms": 2.5, "block_ms": [2.4, 2.6]}}, "lce": lce}
    bwn = {**_row("resnet44", None, 0.6, 1.0, 1.2, 0.8), "scheme": "bwn"}
    text = "\n".join(bench_report._section("x86-avx2", _section([bnn, bwn])))
    header = next(ln for ln in text.splitlines() if ln.startswith("| model |"))
    assert header.split(" | ")[4] == "Larq Compute Engine ms"  # after the four ort / OpenVINO columns
    cells = {ln.split(" | ")[0]: ln.split(" | ") for ln in text.splitlines() if ln.startswith("| resnet44")}
    assert cells["| resnet44 BNN"][4] == "2.500 (2.400-2.600)" and cells["| resnet44 BWN"][4] == ""
    note = bench_report.lce_note(bnn)
    assert f"- {note}" in text and bench_report.lce_note(bwn) is None
    assert note.startswith("resnet44 BNN: Larq Compute Engine 0.16.0 (TensorFlow 2.16.2)")
    assert "44 binary convolutions" in note and "argmax agrees" in note and "difference 0.021" in note
    assert "layer2.0.conv1: stride 2" in note and "first/last layers and activations" not in note
    assert "argmax differs" in bench_report.lce_note({**bnn, "lce": {**lce, "argmax_agrees_with_ort": False}})


def test_larq_peer_is_skipped_with_a_reason_without_its_venv(tmp_path):
    import bench_larq

    python, why = bench_larq.available({})
    assert python is None and "DEEPCHIP_LARQ_PYTHON is not set" in why and "setup_larq.sh" in why
    python, why = bench_larq.available({"DEEPCHIP_LARQ_PYTHON": str(tmp_path / "nothing")})
    assert python is None and "is not an executable file" in why
    exe = tmp_path / "python"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert bench_larq.available({"DEEPCHIP_LARQ_PYTHON": str(exe)}) == (str(exe), "")
    err = "2026 E cuda_dnn.cc: Unable to register\nTraceback (most recent call last):\n  File x\nValueError: no keras"
    assert bench_larq.first_lines(err).startswith("ValueError: no keras | Traceback")


def test_a_section_re_measured_by_a_newer_build_of_its_class_says_so(tmp_path):
    old = {**_section([_row("svhn_convnet", 0.9, 0.4, 1, 0.5, 0.5)]), "class": "x86-avx2", "date": "2026-12-02 08:38 UTC"}
    new = {**_section([_row("svhn_convnet", 0.9, 0.1, 1, 0.5, 0.5)]), "class": "x86-avx2", "date": "2026-12-05 14:55 UTC"}
    other = {**_section([_row("svhn_convnet", 0.9, 0.05, 1, 0.5, 0.5)]), "class": "x86-avx512-vnni",
             "date": "2026-12-06 10:00 UTC"}
    sections = {"x86-avx2": old, "x86-avx2 on x86-avx512-vnni": new, "x86-avx512-vnni": other}
    note = bench_report.newer_build("x86-avx2", sections)
    assert note is not None and "`x86-avx2 on x86-avx512-vnni`" in note and "2026-12-05 14:55 UTC" in note
    assert bench_report.newer_build("x86-avx2 on x86-avx512-vnni", sections) is None  # the newest of its class
    assert bench_report.newer_build("x86-avx512-vnni", sections) is None  # no other build of its class
    out = tmp_path / "BENCHMARKS.md"
    bench_report.write_report(sections, out)
    assert out.read_text().count("times a newer x86-avx2 build") == 1


def test_the_round_trip_each_model_ran_at_is_reported(tmp_path):
    """The run's start and end round trips, and the range around each model's turns with the
    wait it allowed (scripts/bench.py's settle); sections without them print no such range."""
    rows = [_row("svhn_convnet", 0.9, 0.1, 0.6, 0.3, 0.2), _row("resnet44", 0.9, 1.0, 1.25, 2.0, 1.5)]
    rows[0]["round_trip_ns"], rows[1]["round_trip_ns"] = [96.4, 120.0], [131.0, 101.0]
    sec = {**_section(rows), "round_trip_ns": [88.0, 350.0], "steady_ns": 200.0, "settle_s": 600.0,
           "retries": 2, "steady_spread": 1.5}
    out = tmp_path / "BENCHMARKS.md"
    bench_report.write_report({"x86-avx2": sec}, out)
    assert ("at the run's start and end: 88 / 350 ns; before and after each model's turns (each waits up to "
            "600 s for it to fall under 200 ns or 1.5x the run's lowest, and a model whose turns end above it "
            "is measured again, 2 times at most): 96-131 ns.") in out.read_text()
    bench_report.write_report({"x86-avx2": {**_section(rows), "round_trip_ns": [88.0, 350.0]}}, out)
    assert "at the run's start and end: 88 / 350 ns. On a VM" in out.read_text()


def test_the_steady_round_trip_is_the_floor_or_near_the_runs_lowest():
    """scripts/bench.py waits for a round trip under --steady-ns, or within STEADY_SPREAD of the
    lowest the run has seen: a VM in its slow phase is waited on, a machine whose cores are always
    far apart is not."""
    import bench

    assert bench.steady_bound(200.0, []) == 200.0
    assert bench.steady_bound(200.0, [90.0, None, 350.0]) == 200.0  # a fast phase seen: 350 ns is slow
    assert bench.steady_bound(200.0, [350.0, 400.0]) == bench.STEADY_SPREAD * 350.0  # never faster: steady


def test_a_layers_roofline_is_the_larger_of_its_compute_and_memory_roofs():
    """Weights held in L2 stream at its read bandwidth, larger ones at L3's: a layer of few
    operations and many weight bytes (a dense layer at batch 1) is bound by them; sections
    without the bandwidths keep the compute roof alone."""
    memory = {"l2_bytes": 1 << 20, "l2_read_bytes_per_s": 100e9, "l3_bytes": 32 << 20, "l3_read_bytes_per_s": 50e9}
    dense = {"layer": "fc", "kind": "int8", "format": "int8", "shape": [1000, 4096], "out_shape": [1, 1000],
             "weight_bytes": 4096 * 1000}
    compute = 1e6 * 4096 * 1000 / 160e9
    assert bench_report.roofline_us(dense, PEAKS, 2) == pytest.approx(compute)
    assert bench_report.roof(dense, {**PEAKS, **memory}, 2) == pytest.approx((1e6 * 4096 * 1000 / 100e9, "L3"))
    small = {**dense, "shape": [100, 4096], "out_shape": [1, 100], "weight_bytes": 409600}
    slow_l2 = {**PEAKS, **memory, "l2_read_bytes_per_s": 60e9}  # 3.4 us of reads against 2.6 of dot products
    assert bench_report.roof(small, slow_l2, 2) == pytest.approx((1e6 * 409600 / 120e9, "L2"))
    assert bench_report.roof(small, {**PEAKS, **memory}, 2) == pytest.approx((1e6 * 409600 / 160e9, "compute"))
    conv = _row("svhn_convnet", 0.9, 0.1, 1, 1, 1)["report"][0]  # 48 x 75 weights, 1296 positions: compute-bound
    found = bench_report.roof({**conv, "weight_bytes": 48 * 75}, {**PEAKS, **memory}, 2)
    assert found == pytest.approx((1e6 * 48 * 75 * 1296 / 160e9, "compute"))


def test_the_layer_table_names_the_roof_that_binds():
    memory = {"l2_bytes": 1 << 20, "l2_read_bytes_per_s": 100e9, "l3_bytes": 32 << 20, "l3_read_bytes_per_s": 50e9}
    row = _row("svhn_convnet", 0.9, 0.1, 1, 1, 1)
    row["report"][0]["weight_bytes"] = 3600
    row["report"][1]["weight_bytes"] = 2_000_000  # past L2: L3's rate, 20 us on two cores against 5.6 us of adds
    lines = bench_report._layers({**row, "layers": {"conv1": 50.0, "conv2": 40.0}}, {**PEAKS, **memory}, 2)
    conv2 = next(line for line in lines if line.startswith("| conv2 "))
    assert "| 2.00 MB | 20.0 | L3 | 2.0 |" in conv2
    assert "| compute |" in next(line for line in lines if line.startswith("| conv1 "))


def test_cache_sizes_come_from_sysfs_data_caches(tmp_path, monkeypatch):
    """scripts/bench.py reads L2 and L3 from sysfs (instruction caches skipped, K and M sizes), and
    asks read_bandwidth for half the L2 and a quarter of the L3 (at most 8 MB); no sizes, no memory roof."""
    import bench

    for i, (level, kind, size) in enumerate([(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
                                             (3, "Unified", "32M")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    monkeypatch.setattr(bench, "CACHE_DIR", tmp_path)
    assert bench.cache_bytes() == {1: 32 << 10, 2: 1 << 20, 3: 32 << 20}
    asked = []

    def program(name, *flags, args=()):
        asked.append((name, args))
        return {"read_bytes_per_s": {str(a): 1e11 / (i + 1) for i, a in enumerate(args)}}

    monkeypatch.setattr(bench, "_peak_program", program)
    assert bench.read_bandwidth("x86-avx2") == {"l2_bytes": 1 << 20, "l2_read_bytes_per_s": 1e11,
                                                "l3_bytes": 32 << 20, "l3_read_bytes_per_s": 5e10}
    assert asked == [("read_bandwidth", (512 << 10, 8 << 20))]
    monkeypatch.setattr(bench, "CACHE_DIR", tmp_path / "none")
    assert bench.read_bandwidth("x86-avx2") == {}


def test_a_layer_far_slower_than_its_twins_is_timed_again():
    """scripts/bench.py's per-layer table: a layer over 3x the median of the layers with its kind,
    shapes and format is an outlier of the host (timed again); fewer than 3 twins, no verdict."""
    import bench

    key, other = ("binary", (1, 64, 8, 8), (64, 64, 3, 3), "xnor"), ("int8", (1, 3, 32, 32), (16, 3, 3, 3), "int8")
    twins = {f"l{i}": key for i in range(5)} | {"conv1": other, "fc": ("int8", (1, 64), (10, 64), "int8")}
    best = {"l0": 2.3e-6, "l1": 2.2e-6, "l2": 207e-6, "l3": 2.5e-6, "l4": 6.0e-6, "conv1": 50e-6, "fc": 1e-7}
    assert bench.outliers(best, twins) == ["l2"]  # l4: 2.6x the median, kept
    assert bench.outliers({**best, "l2": 2.4e-6}, twins) == []

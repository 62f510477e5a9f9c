"""ternary_conv2d_delta: bit-exact against its numpy reference over the fuzzed shapes of every
conv primitive (tests/primitive_cases.py), on every ISA class, and over the lists that exercise
the format's corners: escapes (gaps above 255), a channel with no non-zero weight and one with
every weight non-zero, the pointwise form (one output position) and small 2-D outputs."""
import numpy as np
import pytest

from primitive_cases import all_classes, check, conv_suite, make_layer
from tvm_deepchip import primitives
from tvm_deepchip.primitives import conv_layout, delta_lists, delta_walk, ternary_conv2d_delta

test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact = conv_suite("delta", "ternary")


def _layer(rng, shape, sparsity, **kw):
    return make_layer(rng, "conv2d", "ternary", shape, sparsity=sparsity, **kw)


def _escapes(w) -> int:
    """Escape entries (zero bytes of lists flagged as holding them) in a packed stream."""
    count, ptr = 0, 0
    for _ in range(2 * w.channels):
        n, escapes, _, ptr = delta_lists.read_head(w.stream, ptr)
        count += int((w.stream[ptr : ptr + n] == 0).sum()) if escapes else 0
        ptr += n
    return count


@pytest.mark.parametrize("cls", all_classes())
def test_escapes_and_extreme_channels(cls):
    """99.5% zeros over 64x5x5 taps (gaps far above 255: escapes in most lists), one channel all
    zero, one all non-zero (lists of 1600: multi-byte counts, an int32 accumulator)."""
    rng = np.random.default_rng(7)
    layer = _layer(rng, (12, 64, 5, 5), 0.995, pad=2)
    layer.codes[3] = 0
    layer.codes[5] = rng.choice(np.array([-1, 1], np.int8), size=layer.codes[5].shape)
    w = ternary_conv2d_delta.pack(layer, ternary_conv2d_delta.conv_layout.geometry(layer, (1, 64, 9, 9)))
    assert _escapes(w) > 0 and w.longest > 255
    check(layer, (1, 64, 9, 9), "delta", rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_int16_partial_sums_of_long_lists(cls):
    """Lists longer than an int16 sum holds (128 uint8 codes) add their taps in int16 partial
    sums of at most 128 taps: a channel of 144 +1 taps and one of 144 -1 taps over saturated
    inputs (144 * 255 overflows int16; float outputs show any wrap), one list of exactly 128."""
    rng = np.random.default_rng(13)
    layer = make_layer(rng, "conv2d", "ternary", (4, 16, 3, 3), pad=1, out=None, act=None)
    layer.codes[0], layer.codes[1] = 1, -1
    layer.codes[2] = 0
    layer.codes[2].reshape(-1)[:128] = 1
    w = ternary_conv2d_delta.pack(layer, ternary_conv2d_delta.conv_layout.geometry(layer, (1, 16, 6, 6)))
    assert w.longest == 144 > conv_layout.int16_taps("uint8") == 128
    got = check(layer, (1, 16, 6, 6), "delta", rng, saturated=True, cls=cls)
    assert got is None or np.ptp(got[0, 0]) > 0  # padding: border positions sum fewer taps


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("shape, in_shape, pad, stride", [
    ((40, 32, 5, 5), (1, 32, 5, 5), 0, 1),  # one position, kernel covers the plane: pointwise form
    ((24, 16, 3, 3), (1, 16, 3, 3), 0, 2),  # one position, strided: walked as a 1x1 spatial output
    ((16, 8, 3, 3), (2, 8, 4, 4), 0, 1),  # a 2x2 output, batch 2
])
def test_small_outputs(cls, shape, in_shape, pad, stride):
    rng = np.random.default_rng(11)
    check(_layer(rng, shape, 0.9, pad=pad, stride=stride), in_shape, "delta", rng, cls=cls)


def test_steps_cover_the_positions_in_few_walks():
    """Flat positions are walked in steps of the largest power-of-two number of vectors a third
    of the register file holds, the rest in one step of power-of-two parts, largest first, with
    the last whole step where both fit one step's registers."""
    steps = ternary_conv2d_delta.steps
    assert steps(1088, 32, 32) == (256, 4, (64,))  # ResNet-44's 32x32 maps, int16 on AVX-512: 5 walks, not 17
    assert steps(448, 32, 32) == (256, 1, (128, 64))
    assert steps(1088, 16, 16) == (128, 7, (128, 64))  # AVX2: 8 of its 16 registers a step, 12 the last
    assert steps(200, 16, 16) == (128, 0, (128, 64, 8))  # AlexNet's 13x13 on AVX2: one walk of 13 registers
    assert steps(144, 16, 16) == (128, 0, (128, 16))  # a core's rows of ResNet-44's 16x16 maps
    assert steps(248, 16, 16) == (128, 1, (64, 32, 16, 8))  # 8 + 8 registers: two walks
    assert steps(4096, 32, 64) == (256, 16, ())  # never more than 8 vectors (16 zmm: LLVM spilled)
    assert steps(16, 32, 32) == (16, 1, ())  # fewer positions than a vector
    assert steps(80, 32, 32) == (64, 0, (64, 16))  # ResNet-44's 8x8 maps: one walk of 2 zmm and a ymm
    assert steps(40, 32, 32) == (32, 0, (32, 8))  # SVHN ConvNet's 5x5 (33 positions): a zmm and an xmm
    assert steps(144, 32, 32) == (128, 0, (128, 16))
    for positions in (8, 24, 64, 80, 144, 320, 448, 1088, 4096):
        lanes, count, tail = steps(positions, 16, 32)
        assert count * lanes + sum(tail) == positions and sum(tail) <= 16 * 8
        assert all(t & (t - 1) == 0 for t in tail) and list(tail) == sorted(tail, reverse=True)


def test_walks_end_at_the_last_valid_column():
    """A walk computes the flat positions up to its last row's last valid column, in whole
    16-byte vectors of its accumulators: an 8x8 output, pad 1 (rows of 10): 78 -> 80 int16 lanes."""
    rng = np.random.default_rng(5)
    layer = _layer(rng, (16, 16, 3, 3), 0.9, pad=1)
    geo = ternary_conv2d_delta.conv_layout.geometry(layer, (1, 16, 8, 8))
    assert ternary_conv2d_delta.walked(8, geo, "int16") == 80
    assert ternary_conv2d_delta.walked(4, geo, "int16") == 40 and ternary_conv2d_delta.walked(4, geo, "int32") == 40
    assert ternary_conv2d_delta.walked(1, geo, "int32") == 8


@pytest.mark.parametrize("cls", all_classes())
def test_the_walk_covers_the_positions_the_crop_reads_in_whole_vectors(cls, monkeypatch):
    """An 8x8 output, pad 1: 80 flat positions (8 rows of 10), 128 in the flat buffer (whole
    blocks); the whole-output walk (no task split) takes the 78 up to the last valid column, in
    whole 16-byte vectors of its accumulators."""
    monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 10**9)
    rng = np.random.default_rng(19)
    layer = _layer(rng, (16, 16, 3, 3), 0.9, pad=1)
    geo = ternary_conv2d_delta.conv_layout.geometry(layer, (1, 16, 8, 8))
    w = ternary_conv2d_delta.pack(layer, geo)
    walk = ternary_conv2d_delta.walk_of(geo, w, "uint8", cls)
    vector = cls.vector_bytes // 2  # int16 accumulators
    walked = walk.outer[0] * walk.lanes + sum(walk.tail)
    assert geo.out_flat == 128 and walked == 80 and walk.lanes <= 64 and walk.step_lanes <= 8 * vector
    check(layer, (1, 16, 8, 8), "delta", rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("shape, in_shape, pad, stride, in_dtype", [
    ((16, 16, 3, 3), (1, 16, 12, 12), 1, 1, "uint8"),  # 2 tasks of 6 rows, a 1-row halo
    ((8, 6, 5, 5), (2, 6, 10, 9), 2, 1, "int8"),  # 5x5, batch 2, int8 codes, odd width
    ((8, 12, 1, 1), (1, 12, 16, 16), 0, 2, "uint8"),  # 1x1 stride 2: every 2nd pixel (geometry's step)
    ((12, 40, 3, 3), (1, 40, 8, 8), 1, 1, "uint8"),  # 360 taps a channel: lists past int16's bound
    ((16, 16, 3, 3), (1, 16, 9, 9), 1, 1, "uint8"),  # 9 rows: tasks of 5 and 4
    ((8, 8, 5, 5), (2, 8, 9, 11), 0, 1, "int8"),  # a 5x7 output (SVHN ConvNet's conv6 form), batch 2
    ((16, 8, 3, 3), (1, 8, 16, 16), 1, 2, "uint8"),  # stride 2 (ResNet-44's layer2.0.conv1 form): 4 phase planes
    ((8, 6, 5, 5), (2, 6, 11, 13), 2, 2, "int8"),  # stride 2, 5x5, odd sizes: phases of unequal pixel columns
])
def test_row_split_is_bit_exact(cls, shape, in_shape, pad, stride, in_dtype, monkeypatch):
    """Split by output rows (delta_rows: each task copies its rows and the halo, walks, writes
    its rows), on every class, saturated inputs included."""
    monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 0)
    rng = np.random.default_rng(23)
    layer = make_layer(rng, "conv2d", "ternary", shape, pad=pad, stride=stride, in_dtype=in_dtype,
                       out=in_dtype, sparsity=0.2 if shape[1] == 40 else 0.9)
    geo = conv_layout.geometry(layer, in_shape)
    walk = ternary_conv2d_delta.walk_of(geo, ternary_conv2d_delta.pack(layer, geo), in_dtype, cls)
    rs = walk.tasks
    assert rs is not None and not rs.by_channels and (rs.parts - 1) * rs.rows < geo.ho <= rs.parts * rs.rows
    check(layer, in_shape, "delta", rng, cls=cls)
    check(layer, in_shape, "delta", rng, cls=cls, saturated=True)


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("shape, in_shape, pad, in_dtype", [
    ((64, 32, 3, 3), (1, 32, 8, 8), 1, "uint8"),  # ResNet-44's layer3 form: 4 blocks, 2 a task
    ((40, 16, 3, 3), (2, 16, 7, 7), 0, "int8"),  # blocks of 16, 16, 8 over 2 tasks; batch 2, 5x5 output
])
def test_channel_split_is_bit_exact(cls, shape, in_shape, pad, in_dtype, monkeypatch):
    """Split by channel blocks (delta_rows: each task copies the whole image, walks and writes
    its blocks of channels), on every class, saturated inputs included."""
    monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 0)
    monkeypatch.setattr(ternary_conv2d_delta, "CHANNEL_SPLIT_SHARE", 10.0)
    rng = np.random.default_rng(31)
    layer = make_layer(rng, "conv2d", "ternary", shape, pad=pad, in_dtype=in_dtype, out=in_dtype)
    geo = conv_layout.geometry(layer, in_shape)
    tasks = ternary_conv2d_delta.walk_of(geo, ternary_conv2d_delta.pack(layer, geo), in_dtype, cls).tasks
    assert tasks is not None and tasks.by_channels
    first, second = tasks.blocks_of(0), tasks.blocks_of(1)  # every block, each in one task
    assert first[0] == 0 and first[1] == second[0] and second[1] == -(-shape[0] // delta_lists.CHANNEL_BLOCK)
    check(layer, in_shape, "delta", rng, cls=cls)
    check(layer, in_shape, "delta", rng, cls=cls, saturated=True)


def test_small_maps_split_by_channels_large_ones_by_rows(monkeypatch):
    """The choice: an 8x8 output (80 flat positions) walks 64 a task split by rows on AVX-512
    (vectors of 32), 96 for half the lists by channels: channels; a 32x32 output is within a
    vector either way: rows; fewer than two channel blocks: rows."""
    monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 0)
    rng = np.random.default_rng(37)
    for co, hw, by_channels in ((64, 8, True), (64, 32, False), (16, 8, False)):
        layer = make_layer(rng, "conv2d", "ternary", (co, 16, 3, 3), pad=1)
        geo = conv_layout.geometry(layer, (1, 16, hw, hw))
        tasks = ternary_conv2d_delta.task_split(geo, ternary_conv2d_delta.pack(layer, geo), "uint8", 32)
        assert tasks.by_channels is by_channels, (co, hw)


def test_row_split_needs_a_row_for_every_task(monkeypatch):
    """A one-row output keeps the whole-output walk; an odd height splits, the last task a row
    shorter; a strided conv splits its output rows (each task copies their phase rows)."""
    monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 0)
    monkeypatch.setattr(ternary_conv2d_delta, "CHANNEL_SPLIT_SHARE", 0.0)
    rng = np.random.default_rng(29)
    for shape, in_shape, pad, stride, rows in [((8, 8, 3, 3), (1, 8, 16, 16), 1, 2, 4),
                                               ((8, 8, 3, 3), (1, 8, 3, 12), 0, 1, None),
                                               ((8, 8, 3, 3), (1, 8, 9, 9), 1, 1, 5)]:
        layer = make_layer(rng, "conv2d", "ternary", shape, pad=pad, stride=stride)
        geo = conv_layout.geometry(layer, in_shape)
        rs = ternary_conv2d_delta.task_split(geo, ternary_conv2d_delta.pack(layer, geo), "uint8", 32)
        assert (rs and rs.rows) == rows, (in_shape, stride)


@pytest.mark.parametrize("cls", all_classes())
def test_flat_output_with_tail_steps(cls):
    """448 flat positions (16 rows of 26): on AVX-512 one step of 256 lanes, then 128 and 64."""
    rng = np.random.default_rng(17)
    check(_layer(rng, (8, 8, 3, 3), 0.8, pad=1), (1, 8, 16, 24), "delta", rng, cls=cls)


def test_pointwise_lists_are_padded_to_whole_steps():
    """The pointwise form: every list holds a multiple of the walk's step, after its head and its
    chains' start bytes, and none escapes (long gaps hop)."""
    rng = np.random.default_rng(3)
    layer = _layer(rng, (64, 32, 5, 5), 0.9)
    w = primitives.lower_layer(layer, (1, 32, 5, 5), "delta")
    stream = w.consts[0]
    assert stream.dtype == np.uint8 and w.primitive == "ternary_conv2d_delta"
    packed = ternary_conv2d_delta.pack(layer, ternary_conv2d_delta.conv_layout.geometry(layer, (1, 32, 5, 5)))
    assert packed.pad and packed.chains in delta_walk.POINT_CHAINS
    ptr = 0
    for _ in range(2 * packed.channels):
        n, escapes, head_bytes, ptr = delta_lists.read_head(packed.stream, ptr)
        assert head_bytes == 1  # lists of ~40 entries: one count byte
        assert not escapes and n % packed.pad == 0
        ptr += packed.chains - 1 + n
    assert ptr == len(packed.stream)


def test_run_time_bytes_near_the_entropy_bound():
    """At 90% zeros a list entry is a byte against ~5.7 bits of entropy a non-zero weight: the
    packed layer stays within 1.5x of the bound (uint16 rows with row tables: 3-5x)."""
    from tvm_deepchip.encodings import entropy_bound_bits

    rng = np.random.default_rng(5)
    layer = _layer(rng, (128, 128, 3, 3), 0.9, pad=1)
    geo = ternary_conv2d_delta.conv_layout.geometry(layer, (1, 128, 9, 9))
    w = ternary_conv2d_delta.pack(layer, geo)
    bound = entropy_bound_bits(layer.codes) * layer.codes.size / 8  # bytes
    assert w.nbytes() <= 1.5 * bound, (w.nbytes(), bound)
    sparse = primitives.lower_layer(layer, (1, 128, 9, 9), "sparse").weight_bytes
    assert sparse > 2.5 * w.nbytes()


@pytest.mark.parametrize("last_list", [0, 1, 15, 16, 17, 40])
def test_stream_ends_where_the_last_decode_reads(last_list):
    """The spatial form decodes DECODE_GROUP entries at a time: the stream holds exactly the bytes
    the last list's decode reads, no more (they count in the run-time bytes) and no fewer (a read
    past the array)."""
    g = delta_lists.DECODE_GROUP
    codes = np.zeros((3, 400), np.int8)
    codes[0, ::7], codes[1, 1::9] = 1, -1
    codes[2, :last_list] = -1  # the last list: the -1 taps of the last channel
    w = delta_lists.DeltaLists.of(codes)
    ptr = 0
    for _ in range(2 * w.channels):
        n, _, _, ptr = delta_lists.read_head(w.stream, ptr)
        end, ptr = ptr + -(-n // g) * g, ptr + n
    assert len(w.stream) == max(ptr, end)
    assert [list(t) for t in w.lists()[2]] == [[], list(range(last_list))]

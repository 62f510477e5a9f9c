"""The input layout every convolution primitive reads: DeepChip's flat, zero-point padded image.

The padded input of one image is laid out as one vector followed by a zero tail. A weight tap
(ci, ky, kx) is then a single offset, and the output at flat position p = oy*Wq + ox is the
sum of x[p + offset] over the taps: consecutive outputs read consecutive inputs, so one tap is
one vector add over many outputs. The Wq - Wo border columns of each row are computed and
discarded (cheaper than breaking the vector at every row).

Strided convolutions first split the padded image into its sh*sw phases (space-to-depth):
phase (py, px) holds the pixels (y*sh + py, x*sw + px), a plane of Hq x Wq = ceil(Hp/sh) x
ceil(Wp/sw). Tap (ci, ky, kx) reads phase (ky % sh, kx % sw) at (ky // sh, kx // sw), so a
strided conv becomes a stride-1 one over Ci*sh*sw phase planes, with the same contiguous
vector loads. Kernels are padded with zero taps to multiples of the stride so the reduction
loops stay affine (ky = kyq*sh + kyr).

A 1x1 conv without padding whose stride skips pixels (ResNet's projection shortcuts, 1x1 stride
2) reads only every s-th row and column: its geometry is a stride-1 conv over those pixels
(`step` = s; h, w count them), so the layout copies a quarter of the image, not its four phases
of which three hold no tap (ResNet-44's layer2.0.shortcut took 10.5 us for 13 K adds).

A stride-1 conv may have its kernel columns unfolded into planes (`unfold` = KW, `unfolded`):
plane (ci, kx) holds the padded pixels (y, ox + kx) for ox < Wo, so the layout's rows are Wo
wide, a tap (ci, ky, kx) is plane (ci, kx) at row ky, and the flat positions oy * Wo + ox are
exactly the outputs: no border columns, for a copy KW * Wo / Wp times the folded one's. The
delta walk takes it where the vector adds it saves outweigh that copy (ternary_conv2d_delta).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from . import roles

FLAT_BLOCK = 64  # flat output length is rounded up to this: whole vectors for any ISA
# ... or, for outputs of at most that many flat positions, to one of these: the shortest vector
# that holds them. AMD EPYC znver1 (AVX2; its 256-bit loads are two 128-bit ones), the trained
# digits model (2x2 and 4x4 maps: 8 and 24 flat positions, sparse layers), one process taking
# turns: 91 us with (16, 32), 72.5 with 8 added, 70 with 8 and 24; its layers in the delta format
# 99.6 / 99.5 us (unchanged). Multiples of 8 int16 lanes (128 bits: NEON's register, and the
# unit of Zen 1's vector pipes) cost one operation each there; on 256-bit pipes 8 lanes cost what
# 16 did and 24 what 32 did; a 512-bit machine that runs a zmm as one operation pays two for 24
SMALL_FLAT_BLOCKS = (8, 16, 24, 32)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ConvGeometry:
    n: int
    ci: int
    h: int
    w: int
    co: int
    kh: int
    kw: int
    sh: int
    sw: int
    pad: tuple  # top, left, bottom, right
    step: int = 1  # the layer's input is read every `step` rows and columns (h, w count those read)
    unfold: int = 1  # kernel columns unfolded into planes (KW; 1: folded): a stride-1 conv's layout rows Wo wide

    @classmethod
    def of(cls, in_shape, w_shape, strides, padding, name="layer"):
        if len(in_shape) != 4 or len(w_shape) != 4 or in_shape[1] != w_shape[1]:
            raise InputError(f"{name}: conv2d input {tuple(in_shape)} does not match weight {tuple(w_shape)} (NCHW/OIHW)")
        g = cls(*map(int, in_shape), int(w_shape[0]), int(w_shape[2]), int(w_shape[3]),
                int(strides[0]), int(strides[1]), tuple(int(p) for p in padding))
        if g.ho < 1 or g.wo < 1:
            raise InputError(f"{name}: kernel {g.kh}x{g.kw} larger than padded input {g.hp}x{g.wp}")
        return g

    hp = property(lambda g: g.h + g.pad[0] + g.pad[2])
    wp = property(lambda g: g.w + g.pad[1] + g.pad[3])
    ho = property(lambda g: (g.hp - g.kh) // g.sh + 1)
    wo = property(lambda g: (g.wp - g.kw) // g.sw + 1)
    hq = property(lambda g: _ceil(g.hp, g.sh))  # one phase plane
    wq = property(lambda g: g.wo if g.unfold > 1 else _ceil(g.wp, g.sw))
    plane = property(lambda g: g.hq * g.wq)
    khq = property(lambda g: _ceil(g.kh, g.sh))  # kernel in phase taps
    kwq = property(lambda g: 1 if g.unfold > 1 else _ceil(g.kw, g.sw))  # (unfolded: the columns are planes)
    planes = property(lambda g: g.ci * g.sh * g.sw * g.unfold)
    image = property(lambda g: g.planes * g.plane)  # padded codes of one image
    # rounded up to whole blocks; a small output to one short vector (16 or 32 lanes)
    out_flat = property(lambda g: _ceil(g.ho * g.wq, g.flat_block) * g.flat_block)
    flat_block = property(lambda g: next((b for b in SMALL_FLAT_BLOCKS if g.ho * g.wq <= b), FLAT_BLOCK))
    # flat-position form where the discarded positions (border columns, rounding up to whole
    # blocks) at most double the work, or where one short vector covers a small output that the
    # (oy, ox) form would split into rows of a few lanes (a 2x2 output: 1 vector op a tap, not 2);
    # a 1x1 output uses (oy, ox) (scalar sums)
    flat = property(lambda g: g.out_flat <= 3 * g.ho * g.wo or (g.out_flat < FLAT_BLOCK and g.ho * g.wo > 1))
    # zero tail: padded list entries and discarded positions land here. Whole planes long, so
    # the layout loop splits into (plane, y, x) without div/mod in the inner loops.
    flat_len = property(lambda g: (g.planes + _ceil(g.out_flat + g.plane + FLAT_BLOCK, g.plane)) * g.plane)

    def grouped(self, group: int) -> "ConvGeometry":
        """The geometry over channel groups of `group` (the layout's planes hold groups)."""
        return replace(self, ci=_ceil(self.ci, group))

    def out_shape(self):
        return (self.n, self.co, self.ho, self.wo)

    def phase_kernel(self, w: np.ndarray) -> np.ndarray:
        """[Co, Ci, KH, KW] -> [Co, Ci, sh, sw, KHq, KWq]: zero taps appended to multiples of
        the strides, then taps grouped by the phase they read (the reduction order). Unfolded:
        [Co, Ci, 1, KW, KH, 1], a column's taps in the plane it reads."""
        if self.unfold > 1:
            return np.ascontiguousarray(w.transpose(0, 1, 3, 2))[:, :, None, :, :, None]
        kh, kw = self.khq * self.sh, self.kwq * self.sw
        w = np.pad(w, ((0, 0), (0, 0), (0, kh - self.kh), (0, kw - self.kw)))
        w = w.reshape(self.co, self.ci, self.khq, self.sh, self.kwq, self.sw)
        return np.ascontiguousarray(w.transpose(0, 1, 3, 5, 2, 4))

    def unphase_kernel(self, wq: np.ndarray) -> np.ndarray:
        """Inverse of phase_kernel."""
        if self.unfold > 1:
            return np.ascontiguousarray(wq.reshape(self.co, self.ci, self.kw, self.kh).transpose(0, 1, 3, 2))
        w = wq.reshape(self.co, self.ci, self.sh, self.sw, self.khq, self.kwq).transpose(0, 1, 4, 2, 5, 3)
        return w.reshape(self.co, self.ci, self.khq * self.sh, self.kwq * self.sw)[:, :, : self.kh, : self.kw]

    def tap_offset(self, ci, kyr, kxr, kyq, kxq):
        """Flat offset of tap (ci, kyq*sh + kyr, kxq*sw + kxr) (numpy or TE expressions) of the
        folded layout (an unfolded one's taps: tap_offsets)."""
        assert self.unfold == 1, "an unfolded layout's columns are planes: tap_offsets"
        return self.plane_start(ci, kyr, kxr) + kyq * self.wq + kxq

    def plane_start(self, c, py=0, px=0, ux=0):
        """Flat offset of the plane of channel c, phase (py, px) and unfolded kernel column ux
        (numpy, TE or Python integers): the layout's plane order."""
        q = (c * self.sh + py) * self.sw + px
        return (q * self.unfold + ux if self.unfold > 1 else q) * self.plane

    def tap_offsets(self) -> np.ndarray:
        """Flat offset of every tap, shaped like one channel's weights [Ci, KH, KW]."""
        ci, ky, kx = np.meshgrid(np.arange(self.ci), np.arange(self.kh), np.arange(self.kw), indexing="ij")
        if self.unfold > 1:
            return (self.plane_start(ci, ux=kx) + ky * self.wq).astype(np.int64)
        return self.tap_offset(ci, ky % self.sh, kx % self.sw, ky // self.sh, kx // self.sw).astype(np.int64)

    def base(self, oy, ox):
        """Flat offset of output (oy, ox) in the phase planes."""
        return oy * self.wq + ox


def geometry(layer, in_shape) -> ConvGeometry:
    """The geometry of a conv2d layer on input `in_shape`, checked (NCHW / OIHW); a 1x1 conv
    without padding and with one stride s > 1 as a stride-1 conv over every s-th pixel."""
    g = ConvGeometry.of(in_shape, layer.codes.shape, layer.strides, layer.padding, layer.name)
    if (g.kh, g.kw) == (1, 1) and not any(g.pad) and g.sh == g.sw > 1:
        return replace(g, h=_ceil(g.h, g.sh), w=_ceil(g.w, g.sw), sh=1, sw=1, step=g.sh)
    return g


def unfolded(geo: ConvGeometry) -> ConvGeometry | None:
    """geo with its kernel columns unfolded into planes (the module's docstring), where it has
    columns to unfold and reads its input whole at stride 1 over a flat output; else None."""
    if geo.kw < 2 or geo.unfold > 1 or (geo.sh, geo.sw, geo.step) != (1, 1, 1) or not geo.flat:
        return None
    wide = replace(geo, unfold=geo.kw)
    return wide if wide.flat else None


def geometry_where(layer, in_shape, runs, fmt: str, needs: str) -> ConvGeometry:
    """geometry(), for a format that runs only the convs `runs(geo)` accepts; else one clear
    error naming the layer, the format, what it `needs` and the layer's kernel, strides, padding
    and input."""
    from ..errors import InputError

    geo = geometry(layer, in_shape)
    if not runs(geo):
        raise InputError(f"layer {layer.name!r}: format {fmt!r} runs a conv only {needs}; this one has kernel "
                         f"{geo.kh}x{geo.kw}, strides {geo.sh}x{geo.sw}, padding {geo.pad}, input {geo.h}x{geo.w}, "
                         f"{geo.ho}x{geo.wo} output positions")
    return geo


def np_read(qx: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """The pixels of a layer's input the geometry reads (every `step`-th row and column)."""
    return qx[:, :, :: geo.step, :: geo.step] if geo.step > 1 else qx


def code_shift(from_dtype: str, to_dtype: str) -> int:
    """What 8-bit codes are shifted by to move between int8 and uint8 (0 for the same type, and
    into int16, which holds either)."""
    if from_dtype == to_dtype or to_dtype == "int16":
        return 0
    return 128 if to_dtype == "uint8" else -128


# -- TE stages -------------------------------------------------------------------------------
def te_flat(x, geo: ConvGeometry, zp: int, name="xflat", group: int = 1, dtype: str | None = None,
            widen: str | None = None, pixel=None):
    """[N, flat_len]: the phase planes of the zero-point padded image, then the zero tail.

    With `group` > 1 the planes hold groups of that many channels, innermost:
    [N, flat_len, group] of `geo.grouped(group)`, so one tap reads `group` consecutive
    channels (a dot-product operand); channels past Ci read zero. `dtype` (the other 8-bit type)
    shifts the codes by 128 into it: int8 q -> uint8 q + 128, uint8 q -> int8 q - 128 (the
    padding's zero point moves with them). `widen` (int16) stores the codes in that wider type
    instead (IsaClass.sparse_taps). `pixel(n, c, y, x)`: the input code at that pixel where x is not
    the codes themselves (row_reads.window_max: x is a max pool's input); else x[n, c, y, x]."""
    from tvm import te, tirx

    top, left = geo.pad[0], geo.pad[1]
    g = geo.grouped(group)
    dtype = dtype or x.dtype
    shift = code_shift(x.dtype, dtype)
    pixel = pixel or (lambda n, c, y, xx: x[n, c, y, xx])

    def f(n, i, *lane):
        q, r = i // g.plane, i % g.plane
        ux = 0
        if g.unfold > 1:  # plane (c, kx): the pixels kx columns on
            q, ux = q // g.unfold, q % g.unfold
        c, py, px = q // (g.sh * g.sw), (q // g.sw) % g.sh, q % g.sw
        ch = c * group + lane[0] if lane else c
        y = (r // g.wq) * g.sh + py - top
        xx = (r % g.wq) * g.sw + px + ux - left
        inside = tirx.all(y >= 0, y < geo.h, xx >= 0, xx < geo.w)
        val = tirx.if_then_else(inside, pixel(n, tirx.min(ch, geo.ci - 1), y * geo.step, xx * geo.step), tirx.const(zp, x.dtype))
        if shift:
            val = (val.astype("int32") + shift).astype(dtype)
        if lane:
            val = tirx.if_then_else(ch < geo.ci, val, tirx.const(0, dtype))
        if widen:
            return tirx.if_then_else(i < g.image, val.astype(widen), tirx.const(0, widen))
        return tirx.if_then_else(i < g.image, val, tirx.const(0, dtype))

    shape = (geo.n, g.flat_len) + ((group,) if group > 1 else ())
    # the schedule splits the flat loop by these extents (schedules/common._finish_producers)
    return te.compute(shape, f, name=name, attrs=roles.attrs(roles.LAYOUT, **{roles.SPLIT_KEY: [g.hq, g.wq]}))


def te_dense_taps(geo: ConvGeometry, name: str):
    """Reduce axes over every (stride-padded) tap and the tap's flat offset (TE)."""
    from tvm import te

    axes = [te.reduce_axis((0, e), name=f"{a}_{name}") for a, e in
            (("ci", geo.ci), ("kyr", geo.sh), ("kxr", geo.sw), ("kyq", geo.khq), ("kxq", geo.kwq))]
    ci, kyr, kxr, kyq, kxq = axes
    return axes, geo.tap_offset(ci, kyr, kxr, kyq, kxq)


def te_output(y, geo: ConvGeometry, name="crop"):
    """The valid outputs of a flat-position result [N, Co, out_flat] (identity otherwise)."""
    from tvm import te

    if not geo.flat:
        return y
    return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n, c, oy * geo.wq + ox], name=name,
                      attrs=roles.attrs(roles.CROP))


def space(geo: ConvGeometry) -> tuple:
    """Output positions the kernels iterate: flat, or (oy, ox)."""
    return (geo.out_flat,) if geo.flat else (geo.ho, geo.wo)


def position(geo: ConvGeometry, pos) -> object:
    """Flat offset of an output position (TE index tuple from `space`)."""
    return pos[0] if geo.flat else geo.base(*pos)


# -- numpy references ------------------------------------------------------------------------
def np_pad(qx: np.ndarray, geo: ConvGeometry, zp: int) -> np.ndarray:
    """The pixels the geometry reads, zero-point padded."""
    t, l, b, r = geo.pad
    return np.pad(np_read(qx, geo), ((0, 0), (0, 0), (t, b), (l, r)), constant_values=zp)


def np_flat(qx: np.ndarray, geo: ConvGeometry, zp: int) -> np.ndarray:
    xp = np_pad(qx, geo, zp)
    if geo.unfold > 1:  # plane (ci, kx): columns kx .. kx + Wo - 1
        planes = np.stack([xp[..., kx : kx + geo.wo] for kx in range(geo.unfold)], axis=2)
    else:
        xp = np.pad(xp, ((0, 0), (0, 0), (0, geo.hq * geo.sh - geo.hp), (0, geo.wq * geo.sw - geo.wp)), constant_values=zp)
        planes = xp.reshape(geo.n, geo.ci, geo.hq, geo.sh, geo.wq, geo.sw).transpose(0, 1, 3, 5, 2, 4)
    xf = np.zeros((geo.n, geo.flat_len), qx.dtype)
    xf[:, : geo.image] = planes.reshape(geo.n, -1)
    return xf


def np_windows(qx: np.ndarray, geo: ConvGeometry, zp: int) -> np.ndarray:
    """[N, Ho, Wo, Ci*KH*KW] int64 patches (im2col) of the padded input."""
    xp = np_pad(qx, geo, zp).astype(np.int64)
    win = np.lib.stride_tricks.sliding_window_view(xp, (geo.kh, geo.kw), axis=(2, 3))
    win = win[:, :, :: geo.sh, :: geo.sw][:, :, : geo.ho, : geo.wo]  # n, ci, ho, wo, kh, kw
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(geo.n, geo.ho, geo.wo, -1)


def acc_dtype(in_dtype: str, taps: int) -> str:
    """Narrowest safe accumulator for a sum of `taps` 8-bit codes: int16 when the bound allows."""
    return "int16" if int(taps) <= int16_taps(in_dtype) else "int32"


def int16_taps(in_dtype: str) -> int:
    """How many 8-bit codes of `in_dtype` an int16 sum holds exactly (128 uint8, 255 int8)."""
    return int(np.iinfo(np.int16).max) // (255 if in_dtype == "uint8" else 128)

"""Input layouts the convolution primitives read: the zero-point padded input, 4-D or flattened.

The flat layout is DeepChip's: the padded input of one image laid out as one vector of
Ci*Hp*Wp codes followed by a zero tail. A weight tap (ci, ky, kx) is then a single offset
ci*Hp*Wp + ky*Wp + kx, and for stride 1 the output at flat position p = oy*Wp + ox is the sum
of x[p + offset] over the taps: consecutive outputs read consecutive inputs, so one tap is one
vector add over many outputs. The Wp - Wo border columns of each row are computed and
discarded (cheaper than breaking the vector at every row). Taps lists are padded to equal
length with an offset into the zero tail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

FLAT_BLOCK = 64  # flat output length is rounded up to this: whole vectors for any ISA


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
    k = property(lambda g: g.ci * g.kh * g.kw)
    # flat-position form: stride 1, and only where the discarded positions (border columns,
    # rounding up to whole blocks) at most double the work (a 5x5 -> 1x1 layer would not)
    flat = property(lambda g: g.sh == 1 and g.sw == 1 and g.out_flat <= 2 * g.ho * g.wo)
    image = property(lambda g: g.ci * g.hp * g.wp)  # padded codes of one image
    out_flat = property(lambda g: -(-g.ho * g.wp // FLAT_BLOCK) * FLAT_BLOCK)
    # tail of zeros: padded list entries and the discarded positions past the last row land
    # here. Whole images long, so the layout loop splits into (channel, y, x) without div/mod.
    flat_len = property(lambda g: (g.ci + -(-(max(g.out_flat, g.hp * g.wp) + FLAT_BLOCK) // (g.hp * g.wp))) * g.hp * g.wp)

    def out_shape(self):
        return (self.n, self.co, self.ho, self.wo)

    def tap_offsets(self) -> np.ndarray:
        """Flat offset of every weight tap, shaped like one output channel's weights [Ci, KH, KW]."""
        ci, ky, kx = np.meshgrid(np.arange(self.ci), np.arange(self.kh), np.arange(self.kw), indexing="ij")
        return (ci * self.hp * self.wp + ky * self.wp + kx).astype(np.int64)

    def base(self, oy, ox):
        """Flat offset of the top-left tap of output (oy, ox)."""
        return oy * self.sh * self.wp + ox * self.sw


# -- TE stages -------------------------------------------------------------------------------
def te_pad(x, geo: ConvGeometry, zp: int, name="xpad"):
    """[N, Ci, Hp, Wp] with the border filled with the input zero point (a real value of 0)."""
    from tvm import te, tirx

    top, left = geo.pad[0], geo.pad[1]

    def f(n, c, y, xx):
        inside = tirx.all(y >= top, y < top + geo.h, xx >= left, xx < left + geo.w)
        return tirx.if_then_else(inside, x[n, c, y - top, xx - left], tirx.const(zp, x.dtype))

    return te.compute((geo.n, geo.ci, geo.hp, geo.wp), f, name=name)


def te_flat(x, geo: ConvGeometry, zp: int, name="xflat"):
    """[N, flat_len]: padded image flattened, then the zero tail."""
    from tvm import te, tirx

    top, left, hw = geo.pad[0], geo.pad[1], geo.hp * geo.wp

    def f(n, i):
        c, r = i // hw, i % hw
        y, xx = r // geo.wp - top, r % geo.wp - left
        inside = tirx.all(y >= 0, y < geo.h, xx >= 0, xx < geo.w)
        val = tirx.if_then_else(inside, x[n, tirx.min(c, geo.ci - 1), y, xx], tirx.const(zp, x.dtype))
        return tirx.if_then_else(i < geo.image, val, tirx.const(0, x.dtype))

    # the schedule splits the flat loop by these extents (schedules/common._finish_producers)
    return te.compute((geo.n, geo.flat_len), f, name=name, attrs={"deepchip_split": [geo.hp, geo.wp]})


# -- numpy references ------------------------------------------------------------------------
def np_pad(qx: np.ndarray, geo: ConvGeometry, zp: int) -> np.ndarray:
    t, l, b, r = geo.pad
    return np.pad(qx, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=zp)


def np_flat(qx: np.ndarray, geo: ConvGeometry, zp: int) -> np.ndarray:
    xf = np.zeros((geo.n, geo.flat_len), qx.dtype)
    xf[:, : geo.image] = np_pad(qx, geo, zp).reshape(geo.n, -1)
    return xf


def np_windows(qx: np.ndarray, geo: ConvGeometry, zp: int) -> np.ndarray:
    """[N, Ho, Wo, Ci*KH*KW] int64 patches (im2col) of the padded input."""
    xp = np_pad(qx, geo, zp).astype(np.int64)
    win = np.lib.stride_tricks.sliding_window_view(xp, (geo.kh, geo.kw), axis=(2, 3))
    win = win[:, :, :: geo.sh, :: geo.sw][:, :, : geo.ho, : geo.wo]  # n, ci, ho, wo, kh, kw
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(geo.n, geo.ho, geo.wo, -1)


def acc_dtype(in_dtype: str, taps: int) -> str:
    """Narrowest safe accumulator for a sum of `taps` 8-bit codes: int16 when the bound allows."""
    bound = (255 if in_dtype == "uint8" else 128) * max(int(taps), 1)
    return "int16" if bound <= np.iinfo(np.int16).max else "int32"

"""Rewrite rule: the XNOR layers of the plan become XNOR kernels on bit-packed values.

pattern      act(binarize(x) (*) W + b), chained through max pools (passes/xnor_match.py)
replacement  the value of each layer that is not written as bits (its output quantize, or its
             float output) = kernel(bits of its input), where the bits of an input are
               - the kernel of the XNOR layer that writes them (bits out), then its max pools
                 on bits (binary_pack.te_pool), recursively;
               - else the binarization of the codes of a dequantize (an integer compare) or of a
                 float tensor, packed (binary_pack.te_pack); or, where the kernel can pack its
                 input itself as it copies it (LoweredLayer.te_binarized: the XNOR convs), that
                 kernel over the codes (floats) and the thresholds, with no pack kernel.
             A chain of XNOR layers is emitted where its last layer is replaced; its float values
             are then dead (DeadCodeElimination).

Like LowerQuantLayers, the pass decides nothing: the plan holds each layer's kernel, built for the
output the analysis found (the same analysis, run again on the function rewritten here).
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..formats import Format
from ..layer import OutBinary
from ..primitives import binary_pack
from .lower_quant_layers import LAYER_ATTR, OPAQUE
from .patterns import const_value
from .xnor_match import decide_outputs, find_sites


def planned_sites(func, plan) -> list:
    """The XNOR sites of `func` the plan lowers, their outputs decided among themselves."""
    sites = [s for s in find_sites(func) if (lo := plan.lowered(s.name)) is not None and lo.format == Format.XNOR]
    decide_outputs(func, sites)
    return sites


@mutator
class _Rewrite(PyExprMutator):
    def __init__(self, mod, func, plan):
        super().__init__(mod)
        self.plan = plan
        self.var2val = relax.analysis.get_var2val(func)
        self.sites = planned_sites(func, plan)
        self.replaced = [(self.var2val[s.out], s) for s in self.sites if not isinstance(s.layer.out, OutBinary)]
        self._bits, self._site_bits = {}, {}

    def visit_call_(self, call):
        for value, site in self.replaced:
            if call.same_as(value):
                return self._kernel(site)
        return super().visit_call_(call)

    def _kernel(self, site):
        planned = self.plan.lowered(site.name)
        if planned.layer.out.__class__ is not site.layer.out.__class__:
            raise RuntimeError(f"layer {site.name!r}: the plan's output ({type(planned.layer.out).__name__}) "
                               f"differs from the rewrite's ({type(site.layer.out).__name__})")
        kernel = planned.kernel
        consts = [relax.const(c, str(c.dtype)) for c in kernel.consts]
        if kernel.te_binarized is not None and self._writer(site.binarize) is None:
            # the kernel packs its input as it copies it: no pack kernel before it (not named by
            # its layer: its arguments are not the layer kernel's, so no later rule re-emits it)
            x, thr = self._pack_args(site)
            return self.builder_.emit_te(lambda t, th, *c: kernel.te_binarized(t, th, *c), x, thr, *consts,
                                         primfunc_name_hint=f"deepchip_{kernel.primitive}_binarized",
                                         primfunc_attrs={"op_pattern": OPAQUE})
        # (named by its layer, as LowerQuantLayers names its kernels: IntegerAdd fuses a residual
        # add into a kernel writing codes that only the add reads)
        return self.builder_.emit_te(kernel.te_func, self._input_bits(site.binarize), *consts,
                                     primfunc_name_hint=f"deepchip_{kernel.primitive}",
                                     primfunc_attrs={"op_pattern": OPAQUE, LAYER_ATTR: site.name})

    def _input_bits(self, binarize):
        for key, bits in self._bits.items():
            if key.same_as(binarize):
                return bits
        bits = self._from_writer(binarize)
        if bits is None:
            bits = self._packed(next(s for s in self.sites if s.binarize.same_as(binarize)))
        self._bits[binarize] = bits
        return bits

    def _writer(self, binarize):
        """(the XNOR site that writes the bits of this binarization, the pools on the way), or None."""
        for site in self.sites:
            for var, pools in site.feeds:
                if self.var2val[var].same_as(binarize):
                    return site, pools
        return None

    def _from_writer(self, binarize):
        """The bits an XNOR layer writes for this binarization, through its pools (None: no such layer)."""
        found = self._writer(binarize)
        if found is None:
            return None
        site, pools = found
        if site.name not in self._site_bits:
            self._site_bits[site.name] = self._kernel(site)
        bits = self._site_bits[site.name]
        for pool in pools:
            bits = self.builder_.emit_te(lambda b, pool=pool: binary_pack.te_pool(b, pool), bits, primfunc_name_hint="bit_maxpool")
        return bits

    def _packed(self, site):
        """The site's input binarized and packed (binary_pack.te_pack)."""
        x, thr = self._pack_args(site)
        return self.builder_.emit_te(binary_pack.te_pack, x, thr, primfunc_name_hint="binarize_pack",
                                     primfunc_attrs={"op_pattern": OPAQUE})

    def _pack_args(self, site):
        """(values, thresholds) whose compare binarizes the site's input: the 8-bit codes against
        integer thresholds where it reads a dequantize of them, else the floats against tau."""
        x = site.x
        value = self.var2val.get(x, x)
        thr = relax.const(site.tau, "float32")
        if isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.dequantize":
            q, scale, zp = value.args[0], const_value(value.args[1], self.var2val), const_value(value.args[2], self.var2val)
            dtype = str(q.ty.dtype)
            if scale is not None and zp is not None and scale.size == 1 and zp.size == 1 and dtype in ("uint8", "int8"):
                codes = binary_pack.code_thresholds(float(scale.reshape(())), int(zp.reshape(())), dtype, site.tau)
                x, thr = q, relax.const(codes.astype("int32"), "int32")
        return self.visit_expr(x), thr


@tvm.transform.module_pass(opt_level=0, name="DeepChipLowerXnorLayers")
class LowerXnorLayers:
    def __init__(self, plan):
        self.plan = plan

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        for gv, func in list(mod.functions.items()):
            if isinstance(func, relax.Function):
                rewrite = _Rewrite(mod, func, self.plan)
                if rewrite.replaced:
                    rewrite.builder_.update_func(gv, rewrite.visit_expr(func))
                    mod = rewrite.builder_.get()
        return relax.transform.DeadCodeElimination()(mod)

"""`prepare(model, scheme, keep)`: any torch model of the usual parts, ready for quantization-aware
training in one of DeepChip's schemes (torch.fx tracing and module swapping, no per-model code).

Schemes (the weights of the layers not kept; kept layers are int8 per channel in every scheme):
- "ternary": TTQ, {-Wn, 0, +Wp} with learned Wp, Wn (`qat.TernaryConv2d` / `TernaryLinear`);
- "bwn": BinaryConnect / Binary-Weight-Networks, {-a[c], +a[c]} (`schemes.binary_weight`);
- "xnor": BNN / XNOR-Net: binary weights as "bwn" and binary inputs (`schemes.BinaryAct`).
8-bit activations sit exactly where the quantizer puts its QDQ pairs (DEVELOPERS.md, "The
quantized ONNX form"), so the exported model computes what training computed: on the input of
every 8-bit layer, on its output (after BatchNorm and the activation) unless it is the last
layer or its output is binarized, on both inputs and the output of a residual add. Activations
become `QuantAct`s with their own range (ReLU6 [0, 6], Hardtanh [min, max], clipped ReLU
[0, 1], ReLU observed); the other points get observed ranges. Under "xnor" an activation whose
value reaches a binary layer is removed: BNN's sign is the activation there (the sign of a ReLU
output would be +1 everywhere).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import fx, nn
from torch.nn import functional as F

from ..errors import InputError
from . import graph as G
from .graph import ACT, ADD, BINARY, BN, GAP, LAYER
from .qat import ClippedAct, TernaryConv2d, TernaryLinear
from .schemes import BinaryAct, BinaryConv2d, BinaryLinear, Int8Conv2d, Int8Linear, QuantAct, Requant

SCHEMES = ("ternary", "bwn", "xnor")


@dataclass
class Prepared:
    """What `export` needs to know about a prepared model (`model.deepchip`)."""
    scheme: str
    layers: list  # module names of the weight layers, in graph order
    keep: list  # the int8 ones


class PreparedModule(fx.GraphModule):
    """The traced model; `deepchip` lives in `meta`, which GraphModule's deepcopy carries."""

    @property
    def deepchip(self) -> Prepared:
        return self.meta["deepchip"]


def _keep(keep, names: list[str]) -> list[str]:
    if keep is None:
        return sorted({names[0], names[-1]}, key=names.index)
    keep = [keep] if isinstance(keep, str) else list(keep)
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise InputError(f"keep names {unknown}, which are not Conv2d/Linear layers of the model (its layers: {names})")
    return sorted(set(keep), key=names.index)


def _check_layers(gm, nodes, scheme, binary) -> None:
    targets = [str(n.target) for n in nodes]
    shared = sorted({t for t in targets if targets.count(t) > 1})
    if shared:
        raise InputError(f"module(s) {shared} are called more than once; each call must be its own layer "
                         "(its own weights, activation ranges and ONNX node)")
    for node in nodes:
        mod = G.module(gm, node)
        if isinstance(mod, nn.Conv2d) and mod.padding_mode != "zeros":
            raise InputError(f"module {node.target!r}: padding_mode {mod.padding_mode!r}; ONNX Conv pads with zeros")
        if isinstance(mod, nn.Conv2d) and mod.groups != 1 and node in binary:
            raise InputError(f"module {node.target!r}: grouped convolution (groups={mod.groups}) under scheme "
                             f"{scheme!r}; binary layers need groups=1 (or keep the layer: keep=[...])")
    for node in gm.graph.nodes:
        if G.kind(gm, node) == BN and G.kind(gm, G.data_input(node)) != LAYER:
            raise InputError(f"BatchNorm {node.target!r} does not directly follow a Conv2d/Linear; "
                             "it could not be folded into a layer at export")
        if G.kind(gm, node) == BN and G.sole_user(G.data_input(node)) is not node:
            raise InputError(f"BatchNorm {node.target!r}: the layer before it is also read elsewhere; "
                             "it could not be folded into that layer at export")


def _swap(mod, cls, **kw):
    new = cls(mod.in_channels, mod.out_channels, mod.kernel_size, stride=mod.stride, padding=mod.padding,
              dilation=mod.dilation, groups=mod.groups, bias=mod.bias is not None, **kw) \
        if isinstance(mod, nn.Conv2d) else cls(mod.in_features, mod.out_features, bias=mod.bias is not None, **kw)
    new.load_state_dict(mod.state_dict(), strict=False)
    return new.to(mod.weight.dtype)


def _act_range(gm, node) -> tuple[float, float | None]:
    mod = G.module(gm, node)
    if isinstance(mod, nn.Hardtanh):  # ReLU6 included
        return float(mod.min_val), float(mod.max_val)
    if isinstance(mod, ClippedAct):
        return 0.0, 1.0
    if node.target is F.relu6:
        return 0.0, 6.0
    if node.target is F.hardtanh:
        lo = node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", -1.0)
        hi = node.args[2] if len(node.args) > 2 else node.kwargs.get("max_val", 1.0)
        return float(lo), float(hi)
    return 0.0, None  # ReLU: observed


def _reaches(gm, node, targets: set) -> bool:
    """Whether `node`'s value reaches the data input of a layer in `targets` through pooling/flatten
    (and the layer's binarization)."""
    for user in node.users:
        if user in targets:
            return True
        if G.kind(gm, user) in (G.PASS, GAP, G.AVG, BINARY) and _reaches(gm, user, targets):
            return True
    return False


def _activations(gm, binary: set) -> None:
    for node in list(gm.graph.nodes):
        if G.kind(gm, node) != ACT:
            continue
        src = G.data_input(node)
        if binary and _reaches(gm, node, binary):
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
            continue
        # a QuantAct per call, also where one module is called several times: observed ranges differ
        new = G.insert_after(gm, node, f"{node.name}_quant", QuantAct(*_act_range(gm, node)))
        new.args = (src,)
        gm.graph.erase_node(node)


def _ensure_quantized(gm, node, name) -> None:
    if G.quant_source(gm, node) is None:
        G.insert_after(gm, node, name, QuantAct(lo=None))


def _output_point(gm, node) -> fx.Node:
    """The value the quantizer pairs as a layer's output: after its BatchNorm."""
    user = G.sole_user(node)
    return user if user is not None and G.kind(gm, user) == BN else node


def _eight_bit_points(gm, eight_bit: set, last) -> None:
    for node in list(gm.graph.nodes):
        k = G.kind(gm, node)
        if k == GAP and G.quant_source(gm, G.data_input(node)) is not None:
            G.insert_after(gm, node, f"{node.name}_requant", Requant(G.quant_source(gm, G.data_input(node))))
        elif k == ADD:
            for i, arg in enumerate(node.args[:2]):
                _ensure_quantized(gm, arg, f"{node.name}_in{i}_quant")
            user = G.sole_user(node)
            if user is None or G.kind(gm, user) != G.QUANT:
                G.insert_after(gm, node, f"{node.name}_quant", QuantAct(lo=None))
        elif node in eight_bit:
            _ensure_quantized(gm, G.data_input(node), f"{str(node.target).replace('.', '_')}_in_quant")
            out = _output_point(gm, node)
            user = G.sole_user(out)
            binarized = all(G.kind(gm, u) == BINARY for u in out.users)
            if node is not last and not binarized and (user is None or G.kind(gm, user) != G.QUANT):
                G.insert_after(gm, out, f"{str(node.target).replace('.', '_')}_out_quant", QuantAct(lo=None))


def prepare(model: nn.Module, scheme: str, keep=None, *, t: float = 0.05, per_channel: bool = False) -> PreparedModule:
    """A copy of `model` ready for quantization-aware training in `scheme`; `keep`: module names of
    the layers kept int8 (default: the first and the last). Ternary layers start at threshold
    t*max|W| (set `qat.set_sparsity` for a target sparsity); per_channel: Wp, Wn per output channel."""
    if scheme not in SCHEMES:
        raise InputError(f"scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}")
    gm = G.trace(copy.deepcopy(model))
    kinds = {node: G.kind(gm, node) for node in gm.graph.nodes}  # refuses unsupported ops first
    layers = [n for n, k in kinds.items() if k == LAYER]
    if not layers:
        raise InputError(f"{type(model).__name__} has no Conv2d or Linear layer to quantize")
    names = [str(n.target) for n in layers]
    kept = _keep(keep, names)
    binary = {n for n in layers if scheme == "xnor" and str(n.target) not in kept}
    _check_layers(gm, layers, scheme, binary)
    for node in layers:
        mod = G.module(gm, node)
        conv = isinstance(mod, nn.Conv2d)
        if str(node.target) in kept:
            new = _swap(mod, Int8Conv2d if conv else Int8Linear)
        elif scheme == "ternary":
            new = _swap(mod, TernaryConv2d if conv else TernaryLinear, t=t, per_channel=per_channel)
            new.init_scales()
        else:
            new = _swap(mod, BinaryConv2d if conv else BinaryLinear)
        G.set_module(gm, node.target, new)
    for node in [n for n in layers if n in binary]:  # in graph order: reproducible names
        b = G.insert_after(gm, G.data_input(node), f"{str(node.target).replace('.', '_')}_binarize", BinaryAct())
        for other in list(b.users):  # only this layer reads the binarized value
            if other is not node:
                other.replace_input_with(b, G.data_input(b))
    _activations(gm, binary)
    _eight_bit_points(gm, set(layers) - binary, layers[-1])
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    out = PreparedModule(gm, gm.graph, type(model).__name__)
    out.meta["deepchip"] = Prepared(scheme, names, kept)
    return out

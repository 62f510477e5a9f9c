"""What each node of a traced (torch.fx) model is, for `prepare` and `export`.

Kinds: a weight layer (Conv2d, Linear), BatchNorm, an activation (ReLU, ReLU6, Hardtanh, a
clipped ReLU), a residual add, a pass-through op (max pooling, flatten/view/reshape, dropout,
identity: they keep an 8-bit value on its grid), a global average pool (keeps the range, not the
grid: the quantizer re-rounds it with its input's scale), an average pool (neither), the
quantizers `prepare` puts in, and shape arithmetic. Anything else is refused by name: an
unknown op would get no quantization and the exported model would not be what was trained.
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn
from torch.nn import functional as F

from ..errors import InputError
from . import schemes
from .qat import ClippedAct

LAYER, BN, ACT, ADD, PASS, GAP, AVG, QUANT, BINARY, REQUANT, META, IO = (
    "layer", "bn", "act", "add", "pass", "gap", "avg", "quant", "binary", "requant", "meta", "io")

_MODULES = [
    ((nn.Conv2d, nn.Linear), LAYER),
    ((nn.BatchNorm1d, nn.BatchNorm2d), BN),
    ((nn.ReLU, nn.Hardtanh, ClippedAct), ACT),  # ReLU6 is a Hardtanh
    ((nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity), PASS),
    ((nn.AvgPool2d,), AVG),
    ((schemes.QuantAct,), QUANT),
    ((schemes.BinaryAct,), BINARY),
    ((schemes.Requant,), REQUANT),
]
_FUNCTIONS = {
    operator.add: ADD, operator.iadd: ADD, torch.add: ADD,
    F.relu: ACT, torch.relu: ACT, F.relu6: ACT, F.hardtanh: ACT,
    torch.flatten: PASS, F.max_pool2d: PASS, F.dropout: PASS, torch.reshape: PASS,
    F.avg_pool2d: AVG, F.adaptive_avg_pool2d: GAP,
    operator.getitem: META, getattr: META,
}
_METHODS = {"add": ADD, "relu": ACT, "flatten": PASS, "view": PASS, "reshape": PASS, "size": META}


def _global(output_size) -> bool:
    return output_size in (1, (1, 1), [1, 1])


def kind(gm: fx.GraphModule, node: fx.Node) -> str:
    """The node's kind, or InputError naming it."""
    if node.op in ("placeholder", "output", "get_attr"):
        return IO
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if isinstance(mod, nn.AdaptiveAvgPool2d) and _global(mod.output_size):
            return GAP
        for types, k in _MODULES:
            if isinstance(mod, types):
                return k
        raise InputError(f"module {node.target!r} ({type(mod).__name__}) is not supported for DeepChip training "
                         "(supported: Conv2d, Linear, BatchNorm1d/2d, ReLU, ReLU6, Hardtanh, MaxPool2d, AvgPool2d, "
                         "AdaptiveAvgPool2d(1), Flatten, Dropout, Identity and residual adds)")
    if node.op == "call_function":
        k = _FUNCTIONS.get(node.target)
        if k == GAP and not _global(node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")):
            k = None
        if k is None:
            raise InputError(f"operation {node.name!r} ({getattr(node.target, '__name__', node.target)}) is not "
                             "supported for DeepChip training")
        return k
    k = _METHODS.get(node.target)
    if k is None:
        raise InputError(f"operation {node.name!r} (tensor method .{node.target}) is not supported for DeepChip training")
    return k


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with the activations and quantizers known here as leaves (not traced into)."""

    def is_leaf_module(self, m, qualname):
        return isinstance(m, (ClippedAct, schemes.QuantAct, schemes.BinaryAct, schemes.Requant)) or \
            super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    try:
        tracer = _Tracer()
        return fx.GraphModule(model, tracer.trace(model), type(model).__name__)
    except Exception as err:
        raise InputError(f"{type(model).__name__} cannot be traced by torch.fx ({type(err).__name__}: {err}); "
                         "DeepChip training needs a forward without data-dependent control flow") from None


def module(gm: fx.GraphModule, node: fx.Node):
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def set_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent, _, child = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, child, new)


def sole_user(node: fx.Node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def data_input(node: fx.Node) -> fx.Node:
    return node.args[0]


def quant_source(gm: fx.GraphModule, node: fx.Node):
    """The QuantAct whose grid `node`'s value lies on (through pass-through ops), or None."""
    while True:
        k = kind(gm, node)
        if k == QUANT:
            return module(gm, node)
        if k == REQUANT:
            return module(gm, node).source[0]
        if k != PASS:
            return None
        node = data_input(node)


def insert_after(gm: fx.GraphModule, node: fx.Node, name: str, mod: nn.Module) -> fx.Node:
    """A new call of `mod` on `node`'s value, read by every former reader of `node`."""
    target = name
    while hasattr(gm, target):
        target += "_"
    gm.add_submodule(target, mod)
    with gm.graph.inserting_after(node):
        new = gm.graph.call_module(target, (node,))
    node.replace_all_uses_with(new, delete_user_cb=lambda u: u is not new)
    return new

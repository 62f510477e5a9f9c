"""ONNX -> Relax through TVM's frontend, with up-front checks that name the node at fault."""
from __future__ import annotations

import logging

import onnx

from .errors import InputError, UnsupportedError
from .layer_names import bind_named_weights, give_weights_inputs

log = logging.getLogger(__name__)


def supported_ops() -> set[str]:
    from tvm.relax.frontend.onnx import onnx_frontend

    return set(onnx_frontend._get_convert_map())


def check_ops(model: onnx.ModelProto) -> None:
    known = supported_ops()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in known:
            where = f"{node.domain}::" if node.domain not in ("", "ai.onnx") else ""
            raise UnsupportedError(
                f"node {node.name or '(unnamed)'!r}: op {where}{node.op_type} has no lowering in TVM's "
                f"ONNX frontend (outputs {list(node.output)})"
            )


def graph_inputs(model: onnx.ModelProto) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _dims(inp) -> list:
    """The ONNX input's dimensions: an int where static, None where dynamic."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in inp.type.tensor_type.shape.dim]


def _given(inp, shape) -> tuple[int, ...]:
    """An --input-shape for `inp`, checked: positive whole dimensions, the input's rank."""
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise InputError(f"--input-shape {inp.name}: {shape!r} is not a list of whole dimensions") from None
    if any(d < 1 for d in dims):
        raise InputError(f"--input-shape {inp.name}:{','.join(map(str, dims))}: dimensions must be >= 1")
    have = _dims(inp)
    if inp.type.tensor_type.HasField("shape") and len(dims) != len(have):
        example = ",".join(str(d) if d is not None else "?" for d in have)
        raise InputError(f"--input-shape {inp.name}:{','.join(map(str, dims))} has {len(dims)} dimensions; input "
                         f"{inp.name!r} has {len(have)} ({example})")
    return dims


def _check_names(model, override) -> None:
    names = [i.name for i in graph_inputs(model)]
    unknown = sorted(set(override or {}) - set(names))
    if unknown:
        raise InputError(f"--input-shape names {unknown}: the model's inputs are {names}")


def warn_static_overrides(model: onnx.ModelProto, override: dict | None) -> None:
    """A warning for every static dimension an --input-shape changes (the graph may assume it)."""
    for inp in graph_inputs(model):
        if override and inp.name in override:
            have = _dims(inp)
            changed = [i for i, (h, d) in enumerate(zip(have, _given(inp, override[inp.name]))) if h is not None and h != d]
            if changed:
                log.warning("--input-shape %s:%s changes static dimension(s) %s of input %r (the model says %s); "
                            "the graph (e.g. Reshape constants) may not fit the new shape",
                            inp.name, ",".join(map(str, override[inp.name])), changed, inp.name, have)


def static_input_shapes(model: onnx.ModelProto, override: dict | None = None) -> dict[str, tuple]:
    """Input name -> static shape; dynamic dims need `override` (e.g. {"input": (1, 3, 32, 32)})."""
    _check_names(model, override)
    shapes = {}
    for inp in graph_inputs(model):
        if override and inp.name in override:
            shapes[inp.name] = _given(inp, override[inp.name])
            continue
        dims = inp.type.tensor_type.shape.dim
        shape = tuple(_dims(inp))
        if any(d is None for d in shape):
            named = [d.dim_value if s is not None else (d.dim_param or "?") for d, s in zip(dims, shape)]
            example = ",".join(str(s) if s is not None else ("1" if i == 0 else "?") for i, s in enumerate(shape))
            raise InputError(
                f"input {inp.name!r} has a dynamic shape {named}; tvm-deepchip compiles static shapes: "
                f"give one with --input-shape {inp.name}:{example} (input_shapes= in Python)"
            )
        shapes[inp.name] = shape
    return shapes


def to_relax(model: onnx.ModelProto, input_shapes: dict | None = None):
    """Import into a Relax IRModule with weights as constants (so passes can read them), each
    layer's weight constant carrying its ONNX node name (layer_names)."""
    from tvm.relax.frontend.onnx import from_onnx

    check_ops(model)
    shapes = static_input_shapes(model, input_shapes)
    annotated, weights = give_weights_inputs(model)
    return bind_named_weights(from_onnx(annotated, shape_dict=shapes, keep_params_in_input=False), weights)

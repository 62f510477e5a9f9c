"""ONNX -> Relax through TVM's frontend, with up-front checks that name the node at fault."""
from __future__ import annotations

import onnx

from .errors import InputError, UnsupportedError
from .layer_names import bind_named_weights, give_weights_inputs


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


def static_input_shapes(model: onnx.ModelProto, override: dict | None = None) -> dict[str, tuple]:
    """Input name -> static shape; dynamic dims need `override` (e.g. {"input": (1, 3, 32, 32)})."""
    shapes = {}
    for inp in graph_inputs(model):
        if override and inp.name in override:
            shapes[inp.name] = tuple(int(d) for d in override[inp.name])
            continue
        dims = inp.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
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

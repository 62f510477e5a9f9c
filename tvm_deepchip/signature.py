"""The input signature of a compiled model, stored inside its library, so that `deepchip run` and
`bench` can check the inputs (count, rank, shape, dtype) against it before anything runs.

`attach` adds a Relax function `deepchip_signature` to the module before the build; it returns
the names, shapes and dtypes of `main`'s parameters as one JSON string. `read` asks a loaded VM
(local or over RPC) for it; libraries built before it existed have none, and then only the
number of inputs is checked (the VM knows its arity).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import InputError

FUNCTION = "deepchip_signature"


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # ints; None for a dimension the module leaves symbolic
    dtype: str

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name!r} [{dims}] {self.dtype}"


def of_module(mod) -> list[InputSpec]:
    """The parameters of the Relax module's `main` (what the VM will check at its entry)."""
    from tvm import tirx

    specs = []
    for p in mod["main"].params:
        ty = p.ty
        dims = [int(d) if isinstance(d, tirx.IntImm) else None for d in ty.shape.values] if ty.shape is not None else []
        specs.append(InputSpec(p.name, tuple(dims), str(ty.dtype)))
    return specs


def attach(mod):
    """`mod` with a `deepchip_signature` function returning the signature of `main` as JSON."""
    import tvm
    from tvm import relax

    text = json.dumps({"inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in of_module(mod)]})
    mod = mod.clone()
    mod[FUNCTION] = relax.Function([], tvm.ir.StringImm(text)).with_attr("global_symbol", FUNCTION)
    return mod


def read(vm) -> list[InputSpec] | None:
    """The signature stored in a loaded model (a relax.VirtualMachine, local or remote), or None."""
    try:
        get = vm.module[FUNCTION]
    except AttributeError:
        return None
    data = json.loads(str(get()))
    return [InputSpec(d["name"], tuple(d["shape"]), d["dtype"]) for d in data["inputs"]]


def param_names(vm) -> list[str]:
    """The names of `main`'s parameters (any Relax VM has them)."""
    n = vm._get_function_arity("main")
    return [str(vm._get_function_param_name("main", i)) for i in range(n)]


def check(vm, xs: list, model: str) -> None:
    """InputError naming the input and both shapes/dtypes if `xs` do not fit the model's `main`."""
    specs = read(vm)
    names = [s.name for s in specs] if specs is not None else param_names(vm)
    if len(xs) != len(names):
        want = ", ".join(s.describe() for s in specs) if specs is not None else ", ".join(repr(n) for n in names)
        raise InputError(f"{model} takes {len(names)} input(s) ({want}), but {len(xs)} --input were given")
    for i, (x, spec) in enumerate(zip(xs, specs or [])):
        x = np.asarray(x)
        got = f"[{', '.join(str(d) for d in x.shape)}] {x.dtype}"
        if x.ndim != len(spec.shape) or any(d is not None and d != g for d, g in zip(spec.shape, x.shape)):
            raise InputError(f"input {i} has shape {got}; {model} expects {spec.describe()}")
        if str(x.dtype) != spec.dtype:
            raise InputError(f"input {i} has dtype {x.dtype}; {model} expects {spec.describe()} "
                             f"(convert it, e.g. x.astype(np.{spec.dtype}))")

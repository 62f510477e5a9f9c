"""Loading and saving ONNX models with clear errors (writes go through output_paths)."""
from __future__ import annotations

import os
from pathlib import Path

import onnx

from .errors import InputError
from .output_paths import atomic_file

atomic_output = atomic_file  # the name older callers use


def load_model(path: str | os.PathLike, check: bool = True) -> onnx.ModelProto:
    """Read an ONNX file; a missing file, a non-ONNX file or a model failing onnx's checker
    raises InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError, others raise their own
        raise InputError(f"{path}: not an ONNX model ({type(err).__name__}: {err})") from None
    if not model.graph.node and not model.graph.input:
        raise InputError(f"{path}: not an ONNX model (no graph)")
    if check:
        check_model(model, str(path))
    return model


def check_model(model: onnx.ModelProto, where: str = "model") -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0]
        raise InputError(f"{where}: fails the ONNX checker: {first}") from None


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    with atomic_file(path) as tmp:
        onnx.save(model, str(tmp))

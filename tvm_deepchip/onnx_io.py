"""Loading and saving ONNX models with clear errors, and writes that never leave half a file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import onnx

from .errors import InputError


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


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """Yield a temporary path next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp:
        onnx.save(model, str(tmp))

"""The loops of a TIR statement, for tests that check what a schedule made of a PrimFunc."""
import tvm


def _nodes(stmt, kind) -> list:
    """Every `kind` statement under `stmt` (a walk over the statement fields TIR nests by)."""
    found = [stmt] if isinstance(stmt, kind) else []
    for field in ("body", "seq", "block", "then_case", "else_case", "init"):
        child = getattr(stmt, field, None)
        for c in (child if isinstance(child, (list, tuple, tvm.ir.Array)) else [child]):
            if isinstance(c, tvm.tirx.Stmt):
                found += _nodes(c, kind)
    return found


def loops(stmt) -> list:
    """Every For under `stmt`."""
    return _nodes(stmt, tvm.tirx.For)


def stored(stmt) -> set:
    """The names of the buffers written under `stmt`."""
    return {s.buffer.name for s in _nodes(stmt, tvm.tirx.BufferStore)}


def stores(stmt, name: str) -> int:
    """How many stores to buffer `name` there are under `stmt`."""
    return sum(s.buffer.name == name for s in _nodes(stmt, tvm.tirx.BufferStore))


def runs_on_cores(func) -> bool:
    """Whether a scheduled PrimFunc holds a parallel loop."""
    return tvm.tirx.ForKind.PARALLEL in {lp.kind for lp in loops(func.body)}

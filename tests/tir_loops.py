"""The loops of a TIR statement, for tests that check what a schedule made of a PrimFunc."""
import tvm


def loops(stmt) -> list:
    """Every For under `stmt` (a walk over the statement fields TIR nests by)."""
    found = [stmt] if isinstance(stmt, tvm.tirx.For) else []
    for field in ("body", "seq", "block", "then_case", "else_case", "init"):
        child = getattr(stmt, field, None)
        for c in (child if isinstance(child, (list, tuple, tvm.ir.Array)) else [child]):
            if isinstance(c, tvm.tirx.Stmt):
                found += loops(c)
    return found


def runs_on_cores(func) -> bool:
    """Whether a scheduled PrimFunc holds a parallel loop."""
    return tvm.tirx.ForKind.PARALLEL in {lp.kind for lp in loops(func.body)}

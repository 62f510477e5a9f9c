"""The roles of a primitive's TE blocks: declared by the compute (a block annotation, ROLE_KEY),
looked up by the schedules. A schedule asks "the accumulators the epilogue reads", never for a
block name.

The annotations are part of a kernel's workload: tuning records match a primitive only with the
same annotations (the committed logs were rewritten once when they were introduced,
scripts/migrate_log_roles.py).
"""
from __future__ import annotations

ROLE_KEY = "deepchip_role"
SPLIT_KEY = "deepchip_split"  # on a LAYOUT block: the (H, W) extents its flat loop splits into
WORDS_KEY = "deepchip_words"  # on ROW_SUMS: offsets a uint64 word of its rows holds (sparse_rows.in_words)
ROWS_SPLIT_KEY = "deepchip_rows_split"  # on a LAYOUT copy: it splits its rows over the cores (grouped_layout)
PARTS_KEY = "deepchip_parts"  # on an ACCUMULATOR of sparse rows: its channel parts (sparse_rows.pack_rows)

ACCUMULATOR = "accumulator"  # a reduction the epilogue reads: acc_p / acc_n, or an int8 layer's acc
PAIR_SUMS = "pair_sums"  # int16 sums of product pairs an int8 accumulator widens a chunk at a time (pair_sums)
ROW_SUMS = "row_sums"  # sparse_rows' sums over index rows, which the accumulators gather
EPILOGUE = "epilogue"  # the requantizing output block; it carries the schedule_rule
LAYOUT = "layout"  # the input copied into the kernel's layout (conv_layout.te_flat, dense_layout.te_slotted)
BIT_VALUES = "bit_values"  # each channel's compare as its bit of a packed word (binary_bits.te_pack)
CROP = "crop"  # the valid outputs copied out of the flat positions (conv_layout.te_output)
RESIDUAL = "residual"  # a quantized residual add fused after a conv's output (primitives/int8_add)

# Tuning records find the epilogue by its name (their traces start with GetSBlock), so it keeps one.
EPILOGUE_NAME = "epilogue"


def attrs(role: str, **more) -> dict:
    """te.compute attrs declaring a block's role (and any other annotations)."""
    return {ROLE_KEY: role, **more}


def epilogue_attrs(rule: str) -> dict:
    """The epilogue's attrs: its role and the schedule rule that selects the primitive's schedule."""
    return attrs(EPILOGUE, schedule_rule=rule)


def role_of(block) -> str | None:
    """The role of a block (an SBlock node, e.g. sch.get(block_rv)); None for blocks we did not make."""
    role = block.annotations.get(ROLE_KEY)
    return None if role is None else str(role)


def having(sch, blocks, role: str) -> list:
    """The blocks (BlockRVs of `sch`) with `role`, in order."""
    return [b for b in blocks if role_of(sch.get(b)) == role]


def top_blocks(sch) -> list:
    """The PrimFunc's top-level blocks: the root block's children, or the one block that is the
    whole function (a kernel that is a single te.extern over its arguments has no root block)."""
    try:
        return list(sch.get_child_blocks(sch.get_sblock("root")))
    except Exception:  # noqa: BLE001 - TVM raises its own error type for a missing block
        try:
            return [sch.get_sblock(EPILOGUE_NAME)]
        except Exception:  # noqa: BLE001
            return []

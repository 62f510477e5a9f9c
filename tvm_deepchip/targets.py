"""Target presets: one table from a short name to TVM target, cross compiler and RPC key.

TVM 0.27 only takes target dicts (the "llvm -mcpu=..." string form raises). The x86 preset asks
LLVM for the host CPU so the target describes the machine's real ISA (AVX2, AVX-512, VNNI...).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from .errors import InputError, ToolchainError


@dataclass(frozen=True)
class TargetPreset:
    name: str
    target: dict
    cross_compiler: str | None = None  # None: the host compiler
    debian_packages: tuple = ()  # what provides the cross compiler
    rpc_key: str | None = None
    keys: tuple = field(default=("cpu",))  # target keys: pick schedules/<family> registrations
    # the input operand of the int8 kernels' dot products: x86 VNNI multiplies unsigned by signed
    # bytes (vpdpbusd), ARM's dotprod signed by signed (sdot)
    int8_operand: str = "uint8"


def _host_x86() -> dict:
    from tvm.target import codegen

    return {
        "kind": "llvm",
        "mtriple": "x86_64-linux-gnu",
        "mcpu": codegen.llvm_get_system_cpu(),
        "num-cores": os.cpu_count() or 1,
    }


def _aarch64() -> dict:
    return {
        "kind": "llvm",
        "mtriple": "aarch64-linux-gnu",
        "mattr": ["+neon", "+dotprod"],
        "keys": ["arm_cpu", "cpu"],
        "num-cores": 2,
    }


_PRESETS = {
    "x86": lambda: TargetPreset("x86", _host_x86()),
    "aarch64": lambda: TargetPreset(
        "aarch64",
        _aarch64(),
        cross_compiler="aarch64-linux-gnu-g++",
        debian_packages=("g++-aarch64-linux-gnu",),
        rpc_key="aarch64",
        keys=("arm_cpu", "cpu"),
        int8_operand="int8",
    ),
}


def preset_names() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str | None = None, target_json: str | dict | None = None) -> TargetPreset:
    """A preset by short name, or a custom one from a TVM target dict (JSON text or dict)."""
    if target_json is not None:
        spec = json.loads(target_json) if isinstance(target_json, str) else dict(target_json)
        if not isinstance(spec, dict) or "kind" not in spec:
            raise InputError(f"--target-json must be a JSON object with a 'kind', got {target_json!r}")
        triple = spec.get("mtriple", "")
        is_arm = triple.startswith("aarch64")
        base = _PRESETS["aarch64" if is_arm else "x86"]()
        return TargetPreset(
            name or ("custom-" + (triple or spec["kind"])),
            spec,
            cross_compiler=base.cross_compiler if is_arm else None,
            debian_packages=base.debian_packages if is_arm else (),
            rpc_key=base.rpc_key,
            keys=tuple(spec.get("keys", base.keys)),
            int8_operand=base.int8_operand,
        )
    name = name or "x86"
    if name not in _PRESETS:
        raise InputError(f"unknown target {name!r}; choose one of {preset_names()} or pass --target-json")
    return _PRESETS[name]()


def tvm_target(preset: TargetPreset):
    import tvm

    return tvm.target.Target(preset.target)


def check_cross_compiler(preset: TargetPreset) -> str | None:
    """Path of the preset's cross compiler, or a ToolchainError naming the Debian package."""
    if preset.cross_compiler is None:
        return None
    path = shutil.which(preset.cross_compiler)
    if path is None:
        pkgs = " ".join(preset.debian_packages)
        raise ToolchainError(
            f"cross compiler {preset.cross_compiler!r} for target {preset.name!r} not found on PATH; "
            f"install it with: apt-get install {pkgs}"
        )
    return path


def target_dirname(preset: TargetPreset) -> str:
    """Directory name of the preset's tuning logs: short name plus CPU, e.g. x86-znver3."""
    cpu = preset.target.get("mcpu")
    return f"{preset.name}-{cpu}" if cpu else preset.name

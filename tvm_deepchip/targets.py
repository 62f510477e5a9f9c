"""Target presets: one table from a short name to TVM target, cross compiler and RPC key.

TVM 0.27 only takes target dicts (the "llvm -mcpu=..." string form raises). The x86 preset asks
LLVM for the host CPU so the target describes the machine's real ISA (AVX2, AVX-512, VNNI...).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from . import isa
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


def _aarch64_preset(name: str, cls_name: str) -> TargetPreset:
    cls = isa.get(cls_name)
    return TargetPreset(
        name,
        {**cls.target, "num-cores": 2},
        cross_compiler="aarch64-linux-gnu-g++",
        debian_packages=("g++-aarch64-linux-gnu",),
        rpc_key="aarch64",
        keys=("arm_cpu", "cpu"),
        int8_operand=cls.int8_operand,
    )


def _x86_preset(name: str, spec: dict) -> TargetPreset:
    return TargetPreset(name, spec, int8_operand=isa.classify(spec).int8_operand)


def _x86_class_preset(cls_name: str) -> TargetPreset:
    return _x86_preset(cls_name, {**isa.get(cls_name).target, "num-cores": os.cpu_count() or 1})


_PRESETS = {
    # this machine's CPU (or the ISA class named by $DEEPCHIP_X86_ISA, see isa.X86_SWITCH)
    "x86": lambda: _x86_preset("x86", isa.host_x86_target()),
    "aarch64": lambda: _aarch64_preset("aarch64", "aarch64-dotprod"),
    **{name: (lambda n=name: _aarch64_preset(n, n)) for name in isa.ARM_CLASSES},
    **{name: (lambda n=name: _x86_class_preset(n)) for name in isa.X86_CLASSES},
}


def preset_names() -> list[str]:
    return sorted(_PRESETS)


def _target_spec(target_json) -> dict:
    """A target dict from JSON text or a dict; malformed JSON or no 'kind' raises InputError."""
    if isinstance(target_json, str):
        try:
            spec = json.loads(target_json)
        except json.JSONDecodeError as err:
            raise InputError(f"--target-json {target_json!r}: not JSON ({err.msg} at column {err.colno})") from None
    else:
        spec = target_json
    if not isinstance(spec, dict) or "kind" not in spec:
        raise InputError(f"--target-json must be a JSON object with a 'kind', got {target_json!r}")
    try:
        import tvm

        tvm.target.Target(spec)
    except Exception as err:  # noqa: BLE001 - TVM raises its own error types for a bad target
        raise InputError(f"--target-json {target_json!r}: not a valid TVM target "
                         f"({str(err).strip().splitlines()[-1][:160]})") from None
    return dict(spec)


def get_preset(name: str | None = None, target_json: str | dict | None = None) -> TargetPreset:
    """A preset by short name, or a custom one from a TVM target dict (JSON text or dict)."""
    if name is not None and not str(name).strip():
        raise InputError(f"--target {name!r} is empty; choose one of {preset_names()} or pass --target-json")
    if target_json is not None:
        spec = _target_spec(target_json)
        cls = isa.classify(spec)  # only CPU targets we have kernels for; InputError otherwise
        base = _PRESETS["aarch64" if not cls.is_x86 else "x86"]()
        triple = spec.get("mtriple", "")
        return TargetPreset(
            name or ("custom-" + (triple or spec["kind"])),
            spec,
            cross_compiler=base.cross_compiler,
            debian_packages=base.debian_packages,
            rpc_key=base.rpc_key,
            keys=tuple(spec.get("keys", base.keys)),
            int8_operand=cls.int8_operand,
        )
    name = "x86" if name is None else name
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


def describe(preset: TargetPreset) -> str:
    """The build's target as reports name it: ISA class and CPU, e.g. 'x86-avx2 (mcpu haswell)',
    'aarch64-dotprod (mattr +neon,+dotprod)'."""
    cls = isa.classify(preset.target)
    spec = preset.target
    if spec.get("mcpu"):
        return f"{cls.name} (mcpu {spec['mcpu']})"
    if spec.get("mattr"):
        return f"{cls.name} (mattr {','.join(spec['mattr'])})"
    return cls.name

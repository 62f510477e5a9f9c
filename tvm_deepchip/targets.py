"""Target presets: one table from a short name to TVM target, cross compiler and RPC key.

TVM 0.27 only takes target dicts (the "llvm -mcpu=..." string form raises). The x86 preset asks
LLVM for the host CPU so the target describes the machine's real ISA (AVX2, AVX-512, VNNI...).
A build resolves its target once (`resolve`): the preset, the TVM target and the ISA class
(isa.py, the one table of CPU facts) travel together as one `BuildTarget`.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from . import isa
from .errors import InputError, ToolchainError


@dataclass(frozen=True)
class TargetPreset:
    name: str
    target: dict
    cross_compiler: str | None = None  # None: the host compiler
    debian_packages: tuple = ()  # what provides the cross compiler
    rpc_key: str | None = None


# the aarch64 presets' toolchain (tuning's builder and the tests' exports take it from here)
AARCH64_CROSS_COMPILER = "aarch64-linux-gnu-g++"
AARCH64_DEBIAN_PACKAGES = ("g++-aarch64-linux-gnu",)
CROSS_COMPILERS = (AARCH64_CROSS_COMPILER,)  # every preset's cross compiler


def _aarch64_preset(name: str, cls_name: str) -> TargetPreset:
    return TargetPreset(
        name,
        {**isa.get(cls_name).target, "num-cores": 2},
        cross_compiler=AARCH64_CROSS_COMPILER,
        debian_packages=AARCH64_DEBIAN_PACKAGES,
        rpc_key="aarch64",
    )


def _x86_class_preset(cls_name: str) -> TargetPreset:
    return TargetPreset(cls_name, {**isa.get(cls_name).target, "num-cores": os.cpu_count() or 1})


_PRESETS = {
    # this machine's CPU (or the ISA class named by $DEEPCHIP_X86_ISA, see isa.X86_SWITCH)
    "x86": lambda: TargetPreset("x86", isa.host_x86_target()),
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


def _custom_preset(name: str | None, spec: dict, cls: isa.IsaClass) -> TargetPreset:
    """A preset for any TVM target dict of class `cls`: toolchain and RPC key of its architecture."""
    base = _PRESETS["aarch64" if not cls.is_x86 else "x86"]()
    triple = spec.get("mtriple", "")
    return TargetPreset(
        name or ("custom-" + (triple or spec["kind"])),
        spec,
        cross_compiler=base.cross_compiler,
        debian_packages=base.debian_packages,
        rpc_key=base.rpc_key,
    )


def _check_name(name: str | None) -> None:
    if name is not None and not str(name).strip():
        raise InputError(f"--target {name!r} is empty; choose one of {preset_names()} or pass --target-json")


def _named_preset(name: str | None) -> TargetPreset:
    name = "x86" if name is None else name
    if name not in _PRESETS:
        raise InputError(f"unknown target {name!r}; choose one of {preset_names()} or pass --target-json")
    return _PRESETS[name]()


def get_preset(name: str | None = None, target_json: str | dict | None = None) -> TargetPreset:
    """A preset by short name, or a custom one from a TVM target dict (JSON text or dict)."""
    _check_name(name)
    if target_json is None:
        return _named_preset(name)
    spec = _target_spec(target_json)
    return _custom_preset(name, spec, isa.classify(spec))


@dataclass(frozen=True)
class BuildTarget:
    """What a build targets, asked once: the preset (toolchain, RPC key), its TVM target and its
    ISA class (vector width, int8 dot-product form and operand type)."""

    preset: TargetPreset
    tvm: object  # tvm.target.Target
    isa_class: isa.IsaClass

    @classmethod
    def of(cls, preset: TargetPreset, isa_class: isa.IsaClass | None = None) -> BuildTarget:
        import tvm

        return cls(preset, tvm.target.Target(preset.target), isa_class or isa.classify(preset.target))

    def describe(self) -> str:
        """The build's target as reports name it: ISA class and CPU, e.g. 'x86-avx2 (mcpu
        haswell)', 'aarch64-dotprod (mattr +neon,+dotprod)'."""
        spec = self.preset.target
        if spec.get("mcpu"):
            return f"{self.isa_class.name} (mcpu {spec['mcpu']})"
        if spec.get("mattr"):
            return f"{self.isa_class.name} (mattr {','.join(spec['mattr'])})"
        return self.isa_class.name


def resolve(name: str | None = None, target_json: str | dict | None = None) -> BuildTarget:
    """The build target of a preset name, or of a TVM target dict (JSON text or dict) of a CPU we
    have kernels for (else InputError)."""
    _check_name(name)
    if target_json is None:
        return BuildTarget.of(_named_preset(name))
    spec = _target_spec(target_json)
    cls = isa.classify(spec)  # only CPU targets we have kernels for; InputError otherwise
    return BuildTarget.of(_custom_preset(name, spec, cls), cls)


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

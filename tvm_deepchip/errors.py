"""One exception family, so the CLI can print a clear one-line message instead of a traceback."""


class DeepChipError(Exception):
    """Base class: the message names what is wrong (file, node, op, shape) and what to do."""


class InputError(DeepChipError):
    """A model, a data file or an option the user gave is not usable."""


class UnsupportedError(DeepChipError):
    """The model needs something tvm-deepchip has no lowering for."""


class ToolchainError(DeepChipError):
    """A compiler, emulator or other system tool is missing or failed."""


class DeviceError(DeepChipError):
    """An RPC device or tracker is down, timed out or refused the work."""

"""Where outputs go: check an output path before any work, and write it atomically.

An output path is resolved first (symlinks followed: the link's target is written, the link
kept). A device, FIFO or socket is never replaced by a regular file, a directory never stands
where a file is wanted (or the reverse), and a place that cannot be written (read-only directory
or file system, a parent under a regular file, a parent that cannot be created) is refused with
one InputError naming the path. The `check_*` functions do this up front, cheaply, so commands
call them at argument time; the writers call them again, so library callers get the same.

Writers work in a private temporary directory next to the target and rename the finished file
into place: nothing half-written is ever seen under the target's name, and on any failure (or
a signal, see interrupts.py) the temporary directory is removed. The file is created by its
producer in that directory, so it gets the mode a plain `open()` (or a linker) gives under the
process umask; a file that already existed keeps its mode, as with `open(path, "w")`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import InputError

_LIVE: set[Path] = set()  # temporary directories of writes in progress (removed on a hard exit)
_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
          (stat.S_ISSOCK, "socket"))


def _named(path, what: str) -> str:
    return f"{what} {path}" if what else str(path)


def _resolve(path, shown: str) -> tuple[Path, os.stat_result | None]:
    """The path with symlinks followed, and its stat (None if nothing is there yet)."""
    target = Path(os.path.realpath(os.path.expanduser(os.fspath(path))))
    try:
        return target, os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return target, None
    except OSError as err:  # a symlink loop, a name too long, no permission to look
        raise InputError(f"{shown}: {err.strerror}") from None


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(st.st_mode)), "special file")


def _via(path, target: Path) -> str:
    return "" if Path(os.path.abspath(os.path.expanduser(os.fspath(path)))) == target else f" (-> {target})"


def _check_can_create_in(directory: Path, shown: str) -> None:
    """`directory` exists and takes new entries, or its missing part can be created."""
    existing = directory
    while not os.path.exists(existing):
        existing = existing.parent
    if not os.path.isdir(existing):
        raise InputError(f"{shown}: {existing} is a {_kind(existing.stat())}, not a directory")
    try:  # the only reliable test (root, read-only mounts, /proc): create a file and drop it
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        where = "in" if existing == directory else "the missing directories under"
        raise InputError(f"{shown}: cannot write {where} {existing} ({err.strerror})") from None


def check_file(path, what: str = "") -> Path:
    """The resolved path of a file about to be written (created or replaced); InputError if it
    names a directory or special file, is read-only, or its directory cannot be written."""
    shown = _named(path, what)
    target, st = _resolve(path, shown)
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{shown}{_via(path, target)}: is a {_kind(st)}, not a regular file; "
                             "give the name of a file to write")
        if not os.access(target, os.W_OK):
            raise InputError(f"{shown}{_via(path, target)}: the file is read-only")
    _check_can_create_in(target.parent, shown)
    return target


def check_dir(path, what: str = "") -> Path:
    """The resolved path of a directory that files will be written into (created if missing)."""
    return _check_directory(path, what, replaced=False)


def check_new_dir(path, what: str = "") -> Path:
    """The resolved path of a directory about to be written as a whole (created or replaced)."""
    return _check_directory(path, what, replaced=True)


def _check_directory(path, what: str, replaced: bool) -> Path:
    shown = _named(path, what)
    target, st = _resolve(path, shown)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{shown}{_via(path, target)}: is a {_kind(st)}, not a directory")
    # files go into an existing directory; a replaced one is renamed into its parent
    _check_can_create_in(target if st is not None and not replaced else target.parent, shown)
    return target


def umask() -> int:
    """The process umask, read without changing it (from /proc where it is there)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _remove(tmp: Path) -> None:
    for _ in range(5):  # a child process (a linker) may still be adding a file: try again
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.lexists(tmp):
            break
    _LIVE.discard(tmp)


def remove_temporaries() -> None:
    """Remove the temporary directories of every write in progress (for a hard exit)."""
    for tmp in list(_LIVE):
        _remove(tmp)


def _temporary_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _LIVE.add(tmp)
    return tmp


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path (same file name, in a private directory next to the target) for
    the producer to create; it replaces the resolved `path` only if the block succeeds."""
    target = check_file(path)
    tmp = None
    try:
        tmp = _temporary_dir(target)
        out = tmp / target.name
        yield out
        if target.exists():  # keep the mode of the file being replaced, as open(path, "w") does
            os.chmod(out, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(out, target)
    finally:
        if tmp is not None:
            _remove(tmp)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield an empty temporary directory next to `path`; it replaces the resolved `path`
    (a directory, if there is one) only if the block succeeds."""
    target = check_new_dir(path)
    tmp = old = None
    try:
        tmp = _temporary_dir(target)
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's are private; a plain mkdir's are not
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old)  # onto an empty directory: allowed
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                old = None
                raise
        else:
            os.replace(tmp, target)
    finally:
        if tmp is not None:
            _remove(tmp)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

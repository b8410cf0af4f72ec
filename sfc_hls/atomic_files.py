"""Atomic file and directory writes: readers never see partial output, nothing else is lost.

* :func:`write_bytes_atomic` / :func:`write_text_atomic` write a temporary
  sibling, ``fsync`` it and rename it into place (``os.replace`` is atomic on
  POSIX within one file system).  A new file gets the mode a plain ``open``
  gives (``0666 & ~umask``, 0644 under umask 0022); a replaced file keeps its
  mode.
* :func:`atomic_directory` fills a temporary sibling directory and renames it
  into place when complete (0755 under umask 0022), with a marker file
  (:data:`OUTPUT_MARKER`) listing what sfc-hls wrote.  With ``overwrite``
  (the commands' ``--force``) an existing path is replaced only if it is such
  a directory holding nothing beyond the listed entries; a regular file, a
  symlink, a directory without the marker or with other files is refused
  (:func:`check_output_directory`) and left untouched.
* Temporaries are named ``.NAME.<pid>-XXXXXXXX.tmp`` (``.old`` for a replaced
  directory on its way out).  A run killed before it could clean up leaves
  them behind; the next write of the same ``NAME`` removes those of processes
  that no longer exist (restoring a replaced directory whose replacement never
  landed), so a killed run never breaks the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OUTPUT_MARKER",
    "atomic_directory",
    "check_output_directory",
    "check_output_file",
    "write_bytes_atomic",
    "write_text_atomic",
]

#: File in every directory :func:`atomic_directory` writes: the entries sfc-hls put there.
OUTPUT_MARKER = ".sfc-hls-output.json"
_MARKER_FORMAT = "sfc-hls.output/1"


# ---------------------------------------------------------------------- modes and temporaries
def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of dead processes next to ``path`` (see the module docstring)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)-[A-Za-z0-9_]+\.(tmp|old)$")
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return
    for sibling in siblings:
        match = pattern.match(sibling.name)
        if match is None or _process_exists(int(match.group(1))):
            continue
        if match.group(2) == "old" and sibling.is_dir() and not os.path.lexists(path):
            os.replace(sibling, path)  # killed between the two renames: put it back
        elif sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                sibling.unlink()


# ---------------------------------------------------------------------- checks
def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_parent_writable(path: Path, what: str) -> None:
    """OSError naming ``path`` unless its directory exists (or can be created) and is writable."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {what} {path}: {ancestor} is not writable")


def check_output_file(path: str | os.PathLike[str]) -> None:
    """Check, before any work, that a file can be written at ``path`` (OSError naming it)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the file {path}: it is a directory")
    _check_parent_writable(path, "the file")


def _written_entries(directory: Path) -> list[str]:
    """Every file and folder under ``directory``, as sorted relative POSIX paths."""
    return sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.name != OUTPUT_MARKER
    )


def _check_replaceable(path: Path) -> None:
    """FileExistsError unless ``path`` is a directory sfc-hls wrote, holding nothing else."""
    refuse = f"--force replaces only a directory written by sfc-hls; {path}"
    if path.is_symlink() or not path.is_dir():
        kind = "a symbolic link" if path.is_symlink() else "not a directory"
        raise FileExistsError(f"{refuse} is {kind} (left untouched)")
    try:
        marker = json.loads((path / OUTPUT_MARKER).read_text())
        listed = set(marker["entries"]) if marker["format"] == _MARKER_FORMAT else None
    except (OSError, ValueError, KeyError, TypeError):
        listed = None
    if listed is None:
        raise FileExistsError(
            f"{refuse} has no valid {OUTPUT_MARKER} marker, so sfc-hls did not write it "
            "(left untouched; remove it yourself or choose another output)"
        )
    others = [entry for entry in _written_entries(path) if entry not in listed]
    if others:
        shown = ", ".join(others[:5]) + (
            f" (and {len(others) - 5} more)" if len(others) > 5 else ""
        )
        raise FileExistsError(
            f"{refuse} also holds files sfc-hls did not write: {shown} (left untouched; "
            "move them away first)"
        )


def check_output_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Check, before any work, that :func:`atomic_directory` may write ``path``.

    Raises FileExistsError when ``path`` exists and ``overwrite`` is false, or
    when ``overwrite`` is true but ``path`` is not a directory sfc-hls wrote
    (see the module docstring); OSError when its parent cannot be written.
    Temporaries of killed runs next to ``path`` are cleaned up first.
    """
    path = Path(path)
    _remove_stale_temporaries(path)
    if os.path.lexists(path):
        if not overwrite:
            raise FileExistsError(
                f"output directory {path} exists (use --force / overwrite=True to replace it)"
            )
        _check_replaceable(path)
    _check_parent_writable(path, "the output directory")


# ---------------------------------------------------------------------- writers
def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the file {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode())


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``path``, replacing a checked old ``path``."""
    if not os.path.lexists(path):
        os.replace(tmp, path)
        return
    # Checked again: ``path`` may have appeared or changed while the content was built.
    check_output_directory(path, overwrite=overwrite)
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".old"))
    os.replace(path, old)  # onto the empty directory just made: no other name is touched
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only if the block succeeds.

    Raises (before yielding) what :func:`check_output_directory` raises.  With
    ``overwrite`` an existing sfc-hls output directory is replaced once the
    new content is complete; nothing else is ever replaced or deleted.
    """
    path = Path(path)
    check_output_directory(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        marker = {"format": _MARKER_FORMAT, "entries": _written_entries(tmp)}
        (tmp / OUTPUT_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        _commit(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

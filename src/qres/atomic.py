"""Files appear whole or not at all: write to a temporary name in the same folder, then rename.

A reader never sees a half-written output, a failed write (disk full, a size limit, an error while
encoding, Ctrl-C) leaves nothing behind, and an existing file is replaced only when that is asked
for, atomically.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


class OutputExists(FileExistsError):
    """The output file exists and overwriting was not asked for."""


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, overwrite: bool = False, mode: int = 0o666) -> Iterator[Path]:
    """Yield a new empty temporary file beside `path` to write; when the block completes it is
    flushed to disk and renamed onto `path`, and when the block fails it is removed.

    Without `overwrite`, an existing `path` raises OutputExists (checked again at the rename, so a
    file created meanwhile is not clobbered). `mode` (before the umask) is the new file's mode.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExists(f"{path} exists (use --force to overwrite it)")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _rename_new(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rename_new(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path` only if `path` does not exist (a hard link refuses an existing name)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExists(f"{path} exists (use --force to overwrite it)") from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise OutputExists(f"{path} exists (use --force to overwrite it)") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False, mode: int = 0o666) -> None:
    """Write `data` to `path` through `replacing`."""
    with replacing(path, overwrite=overwrite, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False, mode: int = 0o666) -> None:
    """Write `text` (UTF-8) to `path` through `replacing`."""
    write_bytes(path, text.encode("utf-8"), overwrite=overwrite, mode=mode)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (following links), whether or not `b` exists yet."""
    a, b = Path(a), Path(b)
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()

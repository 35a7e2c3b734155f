"""The cache directory and writes that never leave a partial file behind.

Every file zoo writes goes to a temporary name in the same folder first and
is renamed into place once complete, so a crash or a concurrent reader sees
either the old content or the new one, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil
from typing import Iterator


def cache_dir() -> pathlib.Path:
    """The folder zoo caches corpora and tokenizers in, created on demand.

    ``$ZOO_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``.

    Example:
        >>> cache_dir().is_dir()
        True
    """
    if os.environ.get("ZOO_CACHE_DIR"):
        path = pathlib.Path(os.environ["ZOO_CACHE_DIR"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        path = pathlib.Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "zoo"
    else:
        path = pathlib.Path.home() / ".cache" / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _temporary_sibling(path: pathlib.Path, suffix: str = "") -> pathlib.Path:
    """A fresh hidden name in the folder of `path`, ending in ``.tmp`` and `suffix`."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}")


@contextlib.contextmanager
def atomic_file(path) -> Iterator[pathlib.Path]:
    """Yield a temporary file name that becomes `path` (fsynced, renamed) on normal exit.

    The name is in the folder of `path` and ends in the same suffix, for
    writers that insist on one (Keras's ``.keras``). On an exception the
    temporary file is removed and `path` is left untouched.

    Example:
        >>> import tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "model.keras"
        >>> with atomic_file(target) as temporary:
        ...     _ = temporary.write_text("1 2 3")
        >>> target.read_text(), temporary.suffix, temporary.exists()
        ('1 2 3', '.keras', False)
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path, path.suffix)
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, fsync and rename.

    Example:
        >>> import tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "data.bin"
        >>> atomic_write_bytes(target, b"\\x00\\x01")
        >>> target.read_bytes()
        b'\\x00\\x01'
    """
    with atomic_file(path) as temporary:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)


def atomic_write_text(path, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically (see :func:`atomic_write_bytes`).

    Example:
        >>> import tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
        >>> atomic_write_text(target, "héllo\\n")
        >>> target.read_text(encoding="utf-8")
        'héllo\\n'
    """
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path, *, replace: bool = True) -> Iterator[pathlib.Path]:
    """Yield a fresh temporary directory that becomes `path` on normal exit.

    An existing `path` is swapped out only once the new directory is
    complete: it is renamed aside, the new one renamed in, the old one
    deleted. On an exception the temporary directory is removed and `path`
    is left untouched. With ``replace=False`` an existing non-empty `path`
    is kept and :class:`FileExistsError` is raised instead (another writer
    won the race).

    Example:
        >>> import tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "model"
        >>> with atomic_directory(target) as folder:
        ...     _ = (folder / "weights.txt").write_text("1 2 3")
        >>> sorted(p.name for p in target.iterdir())
        ['weights.txt']
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    os.mkdir(temporary)
    try:
        yield temporary
        _publish_directory(temporary, path, replace=replace)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _publish_directory(temporary: pathlib.Path, path: pathlib.Path, *, replace: bool) -> None:
    """Rename `temporary` to `path`, swapping out an existing `path` if `replace`."""
    try:
        os.rename(temporary, path)
        return
    except OSError:
        if not path.exists():
            raise
    if not replace:
        raise FileExistsError(f"{path} already exists")
    old = _temporary_sibling(path)
    os.rename(path, old)
    os.rename(temporary, path)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()

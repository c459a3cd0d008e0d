"""Atomic outputs: write into a temporary sibling, rename into place at the end (DESIGN §2.6).

An interrupted or failed command leaves every earlier output intact and no half-written output
in place; the temporary sibling (``.<name>.tmp``) is removed on failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .errors import InputError


def tmp_sibling(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_settled(path: Path, settle_s: float = 0.5) -> None:
    """Remove ``path`` and keep removing it while background writers settle: zarr writes from an
    I/O thread that can still create files for a moment after the main thread was interrupted."""
    import time

    remove(path)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if Path(path).exists() or Path(path).is_symlink():
            remove(path)


def check_output_path(path: Path, *, want_dir: bool, where: str = "--out") -> Path:
    """Refuse an output path whose parent is a file, or that is a file where a folder is wanted."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{where} {path}", f"'{parent}' is a file, expected a folder")
    if want_dir and path.exists() and not path.is_dir():
        raise InputError(f"{where} {path}", "is a file, expected a folder (or a path that does not exist)")
    if not want_dir and path.is_dir():
        raise InputError(f"{where} {path}", "is a folder, expected a file path")
    return path


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT / SIGTERM until the block ends; yields a list that receives the signals held.

    For short write phases: zarr writes from an I/O thread, so an exception raised in the main
    thread mid-write would leave that thread writing into a folder being removed."""
    import signal

    got: list[int] = []

    def hold(signum, frame):  # noqa: ARG001
        got.append(signum)

    try:
        old = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        yield got
        return
    try:
        yield got
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def atomic_path(path: Path, *, is_dir: bool = True, keep_tmp_on_error: bool = False, defer_signals: bool = False):
    """Yield a temporary sibling of ``path``; on success replace ``path`` with it.

    With ``defer_signals`` (short write phases) an interruption during the block lets the writes
    finish, then discards them and raises KeyboardInterrupt: the earlier output stays in place."""
    if defer_signals:
        with deferred_signals() as got:
            with atomic_path(path, is_dir=is_dir, keep_tmp_on_error=keep_tmp_on_error) as tmp:
                yield tmp
                if got:
                    raise KeyboardInterrupt
        return
    path = Path(path)
    check_output_path(path, want_dir=is_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    try:  # an interruption at any point from here on removes the temporary sibling
        if not keep_tmp_on_error:
            remove(tmp)
        if is_dir:
            tmp.mkdir(parents=True, exist_ok=True)
        yield tmp
    except BaseException:
        if not keep_tmp_on_error:
            remove_settled(tmp)
        raise
    replace(tmp, path)


def replace(tmp: Path, path: Path) -> None:
    """Put ``tmp`` in place of ``path`` (a folder or a file): the old one is moved aside first and
    removed after, so ``path`` is never a mix of the two."""
    old = path.with_name(f".{path.name}.old")
    remove(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    remove(old)


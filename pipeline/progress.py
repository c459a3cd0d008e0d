"""Progress display for long commands: rich bars on a terminal, silent otherwise (or with --quiet)."""

from __future__ import annotations

import contextlib
import sys

_CFG = {"quiet": False, "verbose": False}


def configure(quiet: bool = False, verbose: bool = False) -> None:
    _CFG.update(quiet=quiet, verbose=verbose)


def enabled() -> bool:
    return not _CFG["quiet"] and sys.stderr.isatty()


def log(msg: str, *, verbose_only: bool = False) -> None:
    """A status line on stderr (suppressed by --quiet; verbose-only lines need --verbose)."""
    if _CFG["quiet"] or (verbose_only and not _CFG["verbose"]):
        return
    print(msg, file=sys.stderr, flush=True)


class _NullBar:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **kwargs) -> None:
        pass


class _RichBar:
    def __init__(self, progress, task):
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)

    def update(self, **kwargs) -> None:
        self._p.update(self._t, **kwargs)


@contextlib.contextmanager
def bar(description: str, total: int):
    """``with bar("train", total=epochs) as b: b.advance()`` — a rich progress bar or nothing."""
    if not enabled():
        yield _NullBar()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=False) as p:
        yield _RichBar(p, p.add_task(description, total=total))

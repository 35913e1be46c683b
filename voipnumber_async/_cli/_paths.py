"""`bulk`'s paths, checked before anything is written: distinct files, writable places."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Final

import click

__all__ = ["check_paths", "check_writable"]

#: Why two of the command's paths must differ, by (the later option, the earlier one).
_CLASHES: Final[Mapping[tuple[str, str], str]] = {
    ("--results", "FILE"): (
        "writing the results would destroy the input; give --results another path"
    ),
    ("--journal", "FILE"): "the journal would overwrite the input; give --journal another path",
    ("--journal", "--results"): (
        "writing the results would wipe the journal, and the next run would send every "
        "message again with new keys; give them different paths"
    ),
}
#: The files SQLite keeps beside a journal (it runs in WAL mode).
_JOURNAL_SIDECARS: Final = ("", "-wal", "-shm")


def check_paths(file: str, *, results: str | None, journal: str | None) -> None:
    """Refuse paths that are the same file, or that cannot be written.

    Raises:
        click.UsageError: Saying which paths clash, or which directory is missing or
            not writable.
    """
    given = [
        (name, path)
        for name, path in (("FILE", file), ("--results", results), ("--journal", journal))
        if path is not None
    ]
    for (first, path), (second, other) in itertools.combinations(given, 2):
        # Writing over one of SQLite's own files beside the journal corrupts it too.
        suffixes = _JOURNAL_SIDECARS if second == "--journal" else ("",)
        others = [other + suffix for suffix in suffixes]
        if any(_same_file(path, candidate) for candidate in others):
            raise click.UsageError(
                f"{second} {other} is the same file as {first}: {_CLASHES[second, first]}"
            )
    if results is not None:
        check_writable("--results", results)
    if journal is not None:
        check_writable("--journal", journal, directory_too=True)


def _same_file(first: str, second: str) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:  # hard links, and names that differ only in case on such file systems
        return os.path.samefile(first, second)
    except OSError:  # one does not exist yet
        return False


def check_writable(option: str, path: str, *, directory_too: bool = False) -> None:
    """Refuse `path` unless it can be written (and created, if it does not exist).

    `directory_too`: the directory must be writable even if the file exists (SQLite
    creates its -wal and -shm files beside it).
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise click.UsageError(
            f"{option} {path}: the directory {directory} does not exist; create it first, "
            "or choose a path in an existing directory"
        )
    exists = os.path.exists(target)
    if exists and not os.access(target, os.W_OK):
        raise click.UsageError(
            f"{option} {path} is not writable: change its permissions, or choose another path"
        )
    if (directory_too or not exists) and not os.access(directory, os.W_OK | os.X_OK):
        raise click.UsageError(
            f"{option} {path} cannot be written: the directory {directory} is not writable; "
            "choose a path in a directory you can write to"
        )

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free space before writing: an export, an unpacked import or a cache stops before its first byte
when a target directory's file system cannot hold what the plan needs.

Directories on one file system share its free space, so their needs are added up per file system
(device number of the nearest existing directory); the message names the first directory of each.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Tuple


class DiskSpaceError(OSError):
    """A target directory's file system has less free space than the plan needs."""


def existing_ancestor(path: str) -> str:
    """`path` itself when it exists, else its nearest existing parent directory."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the file system that holds (or will hold) `path`."""
    stat = os.statvfs(existing_ancestor(path))
    return stat.f_bavail * stat.f_frsize


def allocated(sizes: Iterable[int], path: str) -> int:
    """Bytes files of `sizes` occupy on the file system of `path` (each rounded up to whole blocks)."""
    block = max(1, os.statvfs(existing_ancestor(path)).f_frsize)
    return sum(-(-int(size) // block) * block for size in sizes)


def human(size: int) -> str:
    """`size` bytes in binary units, for messages next to the exact number."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def needs_by_filesystem(needs: Mapping[str, int]) -> List[Tuple[str, int, int]]:
    """(first directory, bytes needed, bytes free) per file system the directories of `needs` live on."""
    grouped: Dict[int, Tuple[str, int]] = {}
    for directory, size in needs.items():
        device = os.stat(existing_ancestor(directory)).st_dev
        first, total = grouped.get(device, (directory, 0))
        grouped[device] = (first, total + max(0, int(size)))
    return [(directory, total, free_bytes(directory)) for directory, total in grouped.values()]


def space_problems(needs: Mapping[str, int], what: str) -> List[str]:
    """One message per file system too small for `what` ([] when everything fits)."""
    return [
        f"not enough disk space for the {what}: {directory} needs {need} bytes ({human(need)}) "
        f"but its file system has {free} bytes ({human(free)}) free; nothing was written"
        for directory, need, free in needs_by_filesystem(needs)
        if need > free
    ]


def check_free_space(needs: Mapping[str, int], what: str) -> None:
    """Raise DiskSpaceError (all the too-small file systems in one message) before anything is written."""
    problems = space_problems(needs, what)
    if problems:
        raise DiskSpaceError("; ".join(problems))

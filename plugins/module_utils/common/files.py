# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written whole or not at all: the one atomic writer every stage uses.

The content goes to a temporary file in the target's own directory (a rename is atomic only within
one file system), which has its final mode from the moment it exists and replaces the target in one
rename: a reader sees the old file or the new one, never a part, and a secret is never readable by
others, not even while it is written. Temporary names are `.<name>.<random>.partial`, which listings
of a bundle skip.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Any, Iterator, Union


@contextlib.contextmanager
def atomic_write(path: str, mode: int = 0o644, binary: bool = False, fsync: bool = False) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` when the block ends without an exception.

    `mode` is set before anything is written; with `fsync` the content reaches the disk before the
    rename. On an exception the temporary file is removed and `path` is left as it was. The directory
    of `path` must exist.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: str, content: Union[str, bytes], mode: int = 0o644, fsync: bool = False) -> None:
    """Replace `path` with `content` (text is written as UTF-8) through `atomic_write`."""
    with atomic_write(path, mode, isinstance(content, bytes), fsync) as handle:
        handle.write(content)

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live progress for a person watching `ansible-playbook`: images done of total, bytes, rate and ETA, and a
line per finished image, in bursts at most every `interval` seconds, with every secret masked.

The copy engine reports through its progress callback (one line per event, the same lines the progress
file gets) and its live counters (`CopyStats`); `LiveProgress.record` is that callback, `tick` turns what
happened since the last burst into lines.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, List, Optional

from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import CopyStats
from ansible_collections.airgap.renku.plugins.module_utils.mirror.disk import human

MASK = "********"


def mask(line: str, secrets: Iterable[str]) -> str:
    """`line` with every secret (longest first, so no part of one survives) replaced."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        line = line.replace(secret, MASK)
    return line


def duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def status_line(stats: CopyStats, elapsed: float) -> str:
    """images done/total, bytes copied of planned, rate and ETA (when there is a rate to go by)."""
    done = stats.images_copied + stats.images_present
    line = f"{done}/{stats.images_total} images, {human(stats.bytes_copied)}"
    if stats.bytes_planned:
        line += f" of {human(stats.bytes_planned)}"
    rate = stats.bytes_copied / elapsed if elapsed > 0 else 0.0
    if rate > 0:
        line += f", {human(int(rate))}/s"
        left = max(0, stats.bytes_planned - stats.bytes_copied)
        if left and done < stats.images_total:
            line += f", ETA {duration(left / rate)}"
    return line + f", {duration(elapsed)} elapsed"


class LiveProgress:
    """Collects the engine's events; `tick` emits a burst (finished images, then the status line) when
    `interval` seconds passed since the last one, or always with `final`."""

    def __init__(
        self,
        stats: CopyStats,
        emit: Callable[[str], None],
        interval: float = 5.0,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats, self.emit, self.interval, self.clock = stats, emit, interval, clock
        self.secrets = [s for s in secrets if s]
        self.started = clock()
        self._last: Optional[float] = None
        self._finished: List[str] = []
        self._lock = threading.Lock()

    def record(self, msg: str) -> None:
        """The engine's progress callback: keeps the lines that finish an image (copied, exported or failed)."""
        if msg.startswith("image ") or (msg.startswith("plan ") and ": ERROR" in msg):
            with self._lock:
                self._finished.append(msg)

    def tick(self, final: bool = False) -> List[str]:
        """Emit and return the burst due now ([] when the last one was less than `interval` ago)."""
        now = self.clock()
        if not final and now - (self._last if self._last is not None else self.started) < self.interval:
            return []
        with self._lock:
            finished, self._finished = self._finished, []
        lines = [*finished, ("done: " if final else "") + status_line(self.stats, now - self.started)]
        lines = [mask(line, self.secrets) for line in lines]
        for line in lines:
            self.emit(line)
        self._last = now
        return lines

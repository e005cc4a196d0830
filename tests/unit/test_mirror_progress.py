"""Live progress lines: bursts at most every interval, a line per finished image, numbers, no secrets."""

from __future__ import annotations

from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import CopyStats
from ansible_collections.airgap.renku.plugins.module_utils.mirror.progress import (
    LiveProgress,
    duration,
    mask,
    status_line,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bursts_come_at_most_every_interval_with_each_finished_image():
    clock, shown = Clock(), []
    stats = CopyStats(images_total=4)
    live = LiveProgress(stats, shown.append, interval=5.0, secrets=["s3cret"], clock=clock)
    live.record("plan docker.io/library/alpine:3.20: to copy (2048 bytes)")
    live.record("blob sha256:0123456789ab -> x (1024 bytes)")
    live.record("image docker.io/library/alpine:3.20 -> 127.0.0.1:5002/alpine:3.20@sha256:ab")
    stats.add(images_copied=1, bytes_copied=4 * 1024 * 1024, bytes_planned=8 * 1024 * 1024)
    clock.now += 4.9
    assert live.tick() == [] and shown == []
    clock.now += 0.1
    burst = live.tick()
    assert burst[0] == "image docker.io/library/alpine:3.20 -> 127.0.0.1:5002/alpine:3.20@sha256:ab"
    assert burst[1] == "1/4 images, 4.0 MiB of 8.0 MiB, 819.2 KiB/s, ETA 5s, 5s elapsed"
    assert shown == burst
    clock.now += 1
    assert live.tick() == []  # the interval counts from the last burst
    live.record("plan quay.io/x/y:1: ERROR https://user:s3cret@quay.io refused")
    final = live.tick(final=True)
    assert final[0] == "plan quay.io/x/y:1: ERROR https://user:********@quay.io refused"
    assert final[1].startswith("done: 1/4 images") and all("s3cret" not in line for line in shown)


def test_status_without_a_rate_yet_has_no_eta():
    assert status_line(CopyStats(images_total=3), 0.5) == "0/3 images, 0 B, 0s elapsed"


def test_mask_longest_secret_first_and_durations():
    assert mask("a pass and password", ["pass", "password"]) == "a ******** and ********"
    assert (duration(59.4), duration(61), duration(3725)) == ("59s", "1m01s", "1h02m")

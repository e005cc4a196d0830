"""Streaming blobs: chunked framing, exact-size checks and the reused per-thread buffer."""

from __future__ import annotations

import io
import threading

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.oci import registry
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    CHUNK,
    RegistryError,
    _chunked,
    _Counter,
    read_views,
)


def test_chunked_framing_is_http_1_1_chunked_encoding():
    pieces = [b"hello", memoryview(b"0123456789abcdef" * 2)]
    wire = b"".join(bytes(part) for part in _chunked(pieces))
    assert wire == b"5\r\nhello\r\n20\r\n" + b"0123456789abcdef" * 2 + b"\r\n0\r\n\r\n"
    assert b"".join(_chunked([])) == b"0\r\n\r\n"


def test_counter_counts_and_passes_pieces_through_unchanged():
    piece = memoryview(b"abc")
    counter = _Counter([piece, b"", b"de"], "reg/repo@sha256:x", 5)
    assert list(counter) == [piece, b"de"]  # empty pieces are dropped, the others not copied
    assert counter.size == 5


@pytest.mark.parametrize(
    ("pieces", "message"),
    [([b"abc"], "ended after 3 of 5 bytes"), ([b"abc", b"def"], "more than the 5 bytes expected")],
)
def test_counter_refuses_a_stream_of_the_wrong_length_naming_the_blob(pieces, message):
    with pytest.raises(RegistryError, match=message) as caught:
        list(_Counter(pieces, "reg/repo@sha256:x", 5))
    assert "reg/repo@sha256:x" in str(caught.value)


def test_counter_without_expected_size_accepts_any_length():
    counter = _Counter([b"a" * 7], "reg/repo@sha256:x")
    assert b"".join(counter) == b"a" * 7 and counter.size == 7


def test_read_views_returns_the_data_through_one_reused_buffer():
    data = bytes(range(256)) * ((CHUNK * 2 + 1000) // 256)
    views = []
    collected = bytearray()
    for view in read_views(io.BytesIO(data).readinto):
        collected += view  # a view is only valid until the next piece is asked for
        views.append(view.obj)
    assert bytes(collected) == data
    assert len(views) == 3 and all(obj is views[0] for obj in views)  # one buffer, no allocation per piece


def test_each_thread_gets_its_own_buffer():
    buffers = {}

    def grab(name: str) -> None:
        next(read_views(io.BytesIO(b"x").readinto))
        buffers[name] = registry._BUFFERS.buffer.obj

    threads = [threading.Thread(target=grab, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert buffers["a"] is not buffers["b"]

"""The one atomic writer: whole file or nothing, final mode from the start, optional fsync."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.common import files


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_and_bytes_replace_the_file_with_the_mode_asked_for(tmp_path):
    path = tmp_path / "config"
    path.write_text("old")
    os.chmod(path, 0o644)
    files.write_atomic(str(path), "new ü\n", mode=0o600)
    assert path.read_text(encoding="utf-8") == "new ü\n" and mode_of(path) == 0o600
    files.write_atomic(str(path), b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes" and mode_of(path) == 0o644
    assert os.listdir(tmp_path) == ["config"]


def test_the_temporary_file_has_the_final_mode_before_anything_is_written(tmp_path):
    path = tmp_path / "secret"
    with files.atomic_write(str(path), mode=0o600) as handle:
        (temporary,) = [name for name in os.listdir(tmp_path) if name.startswith(".secret.")]
        assert temporary.endswith(".partial") and mode_of(tmp_path / temporary) == 0o600
        handle.write("token")
        assert not path.exists()
    assert path.read_text() == "token" and os.listdir(tmp_path) == ["secret"]


def test_an_exception_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "lock.yaml"
    path.write_text("before")
    with pytest.raises(ValueError, match="digest"), files.atomic_write(str(path), binary=True) as handle:
        handle.write(b"half")
        raise ValueError("digest mismatch")
    assert path.read_text() == "before" and os.listdir(tmp_path) == ["lock.yaml"]


def test_fsync_only_when_asked(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    files.write_atomic(str(tmp_path / "a"), "x")
    assert synced == []
    files.write_atomic(str(tmp_path / "b"), "x", fsync=True)
    assert len(synced) == 1 and (tmp_path / "b").read_text() == "x"


def test_the_directory_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.write_atomic(str(tmp_path / "missing" / "file"), "x")

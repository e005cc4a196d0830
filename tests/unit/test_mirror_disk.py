"""The free space check: needs added up per file system, messages with both numbers and the directory."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.disk import (
    DiskSpaceError,
    allocated,
    check_free_space,
    existing_ancestor,
    free_bytes,
    human,
    needs_by_filesystem,
    space_problems,
)


def test_missing_directory_is_measured_on_its_nearest_existing_parent(tmp_path):
    target = tmp_path / "not" / "yet" / "there"
    assert existing_ancestor(str(target)) == str(tmp_path)
    assert free_bytes(str(target)) == free_bytes(str(tmp_path)) > 0


def test_directories_on_one_file_system_add_up(tmp_path):
    one, two = tmp_path / "bundle", tmp_path / "archive"
    one.mkdir()
    (found,) = needs_by_filesystem({str(one): 100, str(two): 50})
    assert found[0] == str(one) and found[1] == 150


def test_too_little_space_names_directory_and_both_numbers(tmp_path):
    free = free_bytes(str(tmp_path))
    need = free + (1 << 40)
    (problem,) = space_problems({str(tmp_path / "bundle"): need}, "export")
    assert str(tmp_path / "bundle") in problem and str(need) in problem
    assert "export" in problem and "nothing was written" in problem
    reported = int(re.search(r"has (\d+) bytes", problem).group(1))
    assert abs(reported - free) < 64 << 20  # other writers on the same file system
    with pytest.raises(DiskSpaceError, match="needs"):
        check_free_space({str(tmp_path): need}, "export")
    assert os.listdir(tmp_path) == []


def test_enough_space_passes(tmp_path):
    check_free_space({str(tmp_path): 1}, "export")
    assert space_problems({str(tmp_path): 0}, "export") == []


def test_files_take_whole_blocks(tmp_path):
    block = os.statvfs(str(tmp_path)).f_frsize
    assert allocated([1, block, block + 1, 0], str(tmp_path)) == 4 * block


def test_human_units():
    assert human(512) == "512 B"
    assert human(3 * 1024 * 1024) == "3.0 MiB"

"""Where a repository's git bundle lives, and the names refused before anything is written."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.git import (
    GitMirrorError,
    _refs,
    git_bundle_path,
)


def test_bundle_named_after_the_repository():
    repo = {"source": "https://git.up.example/templates/python-basic.git"}
    assert git_bundle_path(repo, "/b/git") == "/b/git/python-basic.bundle"
    assert git_bundle_path({**repo, "source": repo["source"][:-4] + "/"}, "/b/git") == "/b/git/python-basic.bundle"
    assert git_bundle_path({**repo, "name": "py"}, "/b/git") == "/b/git/py.bundle"


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "a b", ""])
def test_unusable_names_are_refused_with_the_fix(name):
    with pytest.raises(GitMirrorError, match="set its `name`"):
        git_bundle_path({"source": "https://git.up.example/x.git", "name": name or "-"}, "/b")


def test_refs_read_from_ls_remote_and_bundle_list_heads():
    sha = "73fff6c8bcf221b8e38aebd4141f1b3ba2b038d6"
    ls_remote = f"{sha}\tHEAD\n{sha}\trefs/heads/main\n{sha}\trefs/tags/v1\n{sha}\trefs/tags/v1^{{}}\n"
    list_heads = f"{sha} refs/heads/main\n{sha} refs/tags/v1\n"
    assert _refs(ls_remote) == _refs(list_heads) == {"refs/heads/main": sha, "refs/tags/v1": sha}

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Template repositories to the internal git: mirrored directly, or carried in a `git bundle` file.

Every branch and tag of the source is made the destination's (`git push --prune` of a bare mirror
clone); a repository is unchanged when both already list the same refs. Across an air gap, the
connected side writes `<bundle_dir>/<name>.bundle` and the offline side pushes from it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional

from ansible_collections.airgap.renku.plugins.module_utils.common.files import atomic_write


class GitMirrorError(Exception):
    """A repository could not be listed, cloned, bundled or pushed."""


def _git_env(home: str) -> Dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def _git_auth(username: Optional[str], password: Optional[str]) -> List[str]:
    if not username:
        return []
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
    return ["-c", f"http.extraHeader=Authorization: Basic {token}"]


def _git(args: List[str], ca_file: Optional[str], auth: List[str], env: Dict[str, str], secret: str = "") -> str:
    cmd = ["git", *(["-c", f"http.sslCAInfo={ca_file}"] if ca_file else []), *auth, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip()[-1500:]
        raise GitMirrorError(f"git {args[0]} failed: {err.replace(secret, '********') if secret else err}")
    return proc.stdout


def _refs(text: str) -> Dict[str, str]:
    """Branches and tags of `git ls-remote` (tab) or `git bundle list-heads` (space) output."""
    refs = {}
    for line in text.splitlines():
        sha, _sep, name = line.replace("\t", " ").partition(" ")
        if name and not name.endswith("^{}") and (name.startswith("refs/heads/") or name.startswith("refs/tags/")):
            refs[name] = sha
    return refs


def mirror_git_repo(
    repo: Dict[str, Any], ca_file: Optional[str], check_mode: bool, cache_dir: Optional[str] = None
) -> Dict[str, Any]:
    """Make the destination's branches and tags equal to the source's; report whether they differed."""
    with tempfile.TemporaryDirectory(prefix="mirror-git-") as home:
        env = _git_env(home)
        src_auth = _git_auth(repo.get("source_username"), repo.get("source_password"))
        dst_auth = _git_auth(repo.get("username"), repo.get("password"))
        secret = repo.get("password") or ""
        src_refs = _refs(_git(["ls-remote", repo["source"]], ca_file, src_auth, env))
        dst_refs = _refs(_git(["ls-remote", repo["destination"]], ca_file, dst_auth, env, secret))
        result = {"source": repo["source"], "destination": repo["destination"], "refs": len(src_refs)}
        if src_refs == dst_refs:
            return {**result, "changed": False}
        if check_mode:
            return {**result, "changed": True}
        work = os.path.join(cache_dir or home, "mirror.git")
        if os.path.isdir(work):
            shutil.rmtree(work)
        _git(["clone", "--bare", "--mirror", repo["source"], work], ca_file, src_auth, env)
        _git(
            [
                "-C",
                work,
                "push",
                "--prune",
                repo["destination"],
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            ca_file,
            dst_auth,
            env,
            secret,
        )
        after = _refs(_git(["ls-remote", repo["destination"]], ca_file, dst_auth, env, secret))
        if after != src_refs:
            raise GitMirrorError(f"{repo['destination']}: refs differ from {repo['source']} after the push")
        return {**result, "changed": True}


# --------------------------------------------------------------------------------------------------
# git through a bundle (the connected and the offline side never meet)

_BUNDLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def git_bundle_path(repo: Dict[str, Any], bundle_dir: str) -> str:
    """`<bundle_dir>/<name>.bundle`; the name is the repository's C(name), else its URL's last part."""
    name = repo.get("name") or repo["source"].rstrip("/").rsplit("/", 1)[-1]
    name = name[:-4] if name.endswith(".git") else name
    if not _BUNDLE_NAME.match(name):
        raise GitMirrorError(
            f"repository {repo['source']}: {name!r} is not usable as a bundle file name; set its `name`"
            " (letters, digits, '.', '_', '-')"
        )
    return os.path.join(bundle_dir, f"{name}.bundle")


def export_git_repo(repo: Dict[str, Any], ca_file: Optional[str], bundle_dir: str, check_mode: bool) -> Dict[str, Any]:
    """Write the source's branches and tags into `<bundle_dir>/<name>.bundle` (a `git bundle`), unless
    the bundle already carries exactly those refs."""
    path = git_bundle_path(repo, bundle_dir)
    with tempfile.TemporaryDirectory(prefix="mirror-git-") as home:
        env = _git_env(home)
        src_auth = _git_auth(repo.get("source_username"), repo.get("source_password"))
        src_refs = _refs(_git(["ls-remote", repo["source"]], ca_file, src_auth, env))
        if not src_refs:
            raise GitMirrorError(f"{repo['source']}: no branches or tags to carry")
        have = _refs(_git(["bundle", "list-heads", path], None, [], env)) if os.path.isfile(path) else {}
        result = {"source": repo["source"], "bundle": path, "refs": len(src_refs)}
        if have == src_refs:
            return {**result, "changed": False}
        if check_mode:
            return {**result, "changed": True}
        work = os.path.join(home, "mirror.git")
        _git(["clone", "--bare", "--mirror", repo["source"], work], ca_file, src_auth, env)
        written = os.path.join(home, "repository.bundle")
        _git(["-C", work, "bundle", "create", written, "--branches", "--tags"], None, [], env)
        if _refs(_git(["bundle", "list-heads", written], None, [], env)) != src_refs:
            raise GitMirrorError(f"{repo['source']}: the bundle written does not carry the source's refs")
        os.makedirs(bundle_dir, exist_ok=True)
        with open(written, "rb") as source, atomic_write(path, binary=True) as out:
            shutil.copyfileobj(source, out)
        return {**result, "changed": True}


def import_git_repo(repo: Dict[str, Any], ca_file: Optional[str], bundle_dir: str, check_mode: bool) -> Dict[str, Any]:
    """Push the branches and tags a bundle carries to the repository's destination."""
    path = git_bundle_path(repo, bundle_dir)
    if not os.path.isfile(path):
        raise GitMirrorError(f"{path}: no bundle for {repo['source']} (was it exported with the same `name`?)")
    result = mirror_git_repo(
        {**repo, "source": path, "source_username": None, "source_password": None}, ca_file, check_mode
    )
    return {**result, "source": repo["source"], "bundle": path}

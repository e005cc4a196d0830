# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Charts to the internal OCI registry (versions made OCI-safe), or into a bundle's `charts/` directory.

OCI tags cannot carry `+`, and Helm and OCI registries disagree about a leading `v`: Helm looks up
`1.2.3` when asked for `v1.2.3` in some paths and not in others. Charts are therefore pushed with
the `v` removed (the chart is repackaged with the new version) and `+` build metadata kept in
Chart.yaml (Helm itself writes the tag with `_`, and maps it back on pull).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.common.files import atomic_write
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
    chart_source_args,
    helm_env,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Registry

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


# The suboptions of `charts[]` that say where a chart comes from (image_mirror and chart_mirror; chart_mirror
# requires the version). Suboptions cannot come from a doc fragment, so each module documents them.
CHART_SOURCE_OPTIONS: Dict[str, Dict[str, Any]] = {
    "chart": {"type": "str", "required": True},
    "repo": {"type": "str"},
    "version": {"type": "str"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
}


class ChartMirrorError(Exception):
    """A chart could not be pulled, repackaged or pushed."""


def oci_version(version: str) -> Tuple[str, str]:
    """(chart version to publish, OCI tag): `v1.2.3` -> (`1.2.3`, `1.2.3`); `1.0.0+g1` -> (`1.0.0+g1`, `1.0.0_g1`)."""
    text = str(version).strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    if not _SEMVER.match(text):
        raise ChartMirrorError(f"chart version {version!r} is not semantic (MAJOR.MINOR.PATCH[-pre][+build])")
    return text, text.replace("+", "_")


def chart_name(chart: Dict[str, Any]) -> str:
    return chart.get("name") or chart["chart"].rstrip("/").rsplit("/", 1)[-1]


def _run(cmd: List[str], env: Dict[str, str], what: str, secret: Optional[str] = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip()[-1500:]
        if secret:
            err = err.replace(secret, "********")
        raise ChartMirrorError(f"{what} failed: {err}")
    return proc.stdout + proc.stderr


def _set_chart_version(chart_dir: str, version: str) -> None:
    path = os.path.join(chart_dir, "Chart.yaml")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    new, count = re.subn(r"(?m)^version:.*$", f"version: {version}", text, count=1)
    if count != 1:
        raise ChartMirrorError(f"{path} has no top-level version field")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(new)


def _repackage(helm: str, package: str, version: str, work: str, env: Dict[str, str]) -> str:
    unpack = os.path.join(work, "unpacked")
    os.makedirs(unpack, exist_ok=True)
    with tarfile.open(package) as tar:
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(unpack, member.name))
            if not target.startswith(os.path.realpath(unpack) + os.sep) or member.issym() or member.islnk():
                raise ChartMirrorError(f"{package}: unsafe member {member.name!r}")
        tar.extractall(unpack)
    (top,) = os.listdir(unpack)
    _set_chart_version(os.path.join(unpack, top), version)
    out = os.path.join(work, "repackaged")
    os.makedirs(out, exist_ok=True)
    _run([helm, "package", os.path.join(unpack, top), "-d", out], env, "helm package")
    (name,) = os.listdir(out)
    return os.path.join(out, name)


def _source_text(chart: Dict[str, Any]) -> str:
    return chart["chart"] if not chart.get("repo") else f"{chart['repo'].rstrip('/')}/{chart['chart']}"


def _chart_entry(chart: Dict[str, Any]) -> Dict[str, Any]:
    """What every chart mapping records: names, the source and both spellings of the version."""
    version, tag = oci_version(chart["version"])
    return {
        "name": chart_name(chart),
        "source": _source_text(chart),
        "version": str(chart["version"]),
        "oci_version": version,
        "oci_tag": tag,
    }


def plan_chart(chart: Dict[str, Any], dest: Registry, dest_host: str, prefix: str) -> Dict[str, Any]:
    """The mapping for one chart and whether the destination already has it."""
    entry = _chart_entry(chart)
    repo = "/".join(p for p in (prefix.strip("/"), entry["name"]) if p)
    digest = dest.manifest_digest(repo, entry["oci_tag"])
    return {**entry, "destination": f"oci://{dest_host}/{repo}", "present": digest is not None, "digest": digest}


def plan_download(chart: Dict[str, Any], directory: str) -> Dict[str, Any]:
    """The mapping for a chart exported to `directory` (a bundle's `charts/`)."""
    entry = _chart_entry(chart)
    filename = f"{entry['name']}-{entry['oci_version']}.tgz"
    return {**entry, "file": filename, "present": os.path.isfile(os.path.join(directory, filename))}


def fetch_chart(chart: Dict[str, Any], entry: Dict[str, Any], helm: str, ca_file: Optional[str], work: str) -> str:
    """The package to push: pulled (or a local .tgz), repackaged when the version must change."""
    env = helm_env(work)
    if os.path.isfile(chart["chart"]):
        package = chart["chart"]
    elif os.path.isdir(chart["chart"]):  # a chart directory (a site's own chart)
        packaged = os.path.join(work, "packaged")
        os.makedirs(packaged)
        _run([helm, "package", chart["chart"], "-d", packaged], env, f"helm package {chart['chart']}")
        (package,) = [os.path.join(packaged, n) for n in os.listdir(packaged)]
    else:
        pulled = os.path.join(work, "pulled")
        os.makedirs(pulled)
        _run([helm, "pull", *chart_source_args(chart, ca_file), "-d", pulled], env, f"helm pull {chart['chart']}")
        (package,) = [os.path.join(pulled, n) for n in os.listdir(pulled)]
    if _package_version(package) != entry["oci_version"]:
        package = _repackage(helm, package, entry["oci_version"], work, env)
    return package


def _package_version(package: str) -> str:
    with tarfile.open(package) as tar:
        for member in tar.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                handle = tar.extractfile(member)
                text = handle.read().decode() if handle else ""
                match = re.search(r"(?m)^version:\s*['\"]?([^'\"\s]+)", text)
                return match.group(1) if match else ""
    raise ChartMirrorError(f"{package} has no Chart.yaml")


def download_chart(
    chart: Dict[str, Any], entry: Dict[str, Any], helm: str, ca_file: Optional[str], directory: str
) -> None:
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mirror-chart-") as work:
        package = fetch_chart(chart, entry, helm, ca_file, work)
        with open(package, "rb") as source, atomic_write(os.path.join(directory, entry["file"]), binary=True) as out:
            shutil.copyfileobj(source, out)


def push_chart(
    chart: Dict[str, Any],
    entry: Dict[str, Any],
    helm: str,
    ca_file: Optional[str],
    username: Optional[str],
    password: Optional[str],
) -> str:
    """Pull, repackage when the version changes, push; returns the pushed digest."""
    with tempfile.TemporaryDirectory(prefix="mirror-chart-") as work:
        package = fetch_chart(chart, entry, helm, ca_file, work)
        target = entry["destination"].rsplit("/", 1)[0]
        cmd = [helm, "push", package, target]
        if ca_file:
            cmd += ["--ca-file", ca_file]
        if username:
            cmd += ["--username", username, "--password", password or ""]
        out = _run(cmd, helm_env(work), f"helm push {entry['name']}", secret=password)
    match = re.search(r"Digest:\s*(sha256:[0-9a-f]{64})", out)
    return match.group(1) if match else ""

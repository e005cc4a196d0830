# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Charts to the internal OCI registry (versions made OCI-safe), or into a bundle's `charts/` directory.

OCI tags cannot carry `+`, and Helm and OCI registries disagree about a leading `v`: Helm looks up
`1.2.3` when asked for `v1.2.3` in some paths and not in others. Charts are therefore pushed with
the `v` removed (the chart is repackaged with the new version) and `+` build metadata kept in
Chart.yaml (Helm itself writes the tag with `_`, and maps it back on pull).

Only such a chart is rebuilt. Any other keeps its digests, so signatures still verify and the lock's
source and destination agree: a chart from an OCI registry is copied blob for blob (same manifest
digest), a package from a classic repository or a file is pushed as it is (its layer digest is the
package's sha256, the checksum in the repository's `index.yaml`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.common.files import atomic_write
from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import KubeYAMLError, load_one
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
    chart_source_args,
    helm_env,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.versions import (
    VersionRangeError,
    is_range,
    parse_range,
    resolve_range,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import HELM_CHART_CONTENT
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    CHUNK,
    Manifest,
    Registry,
    RegistryError,
    Transport,
    manifest_blobs,
    stream_blob,
)

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
    """What every chart mapping records: names, the source, the range asked for, both spellings of the version."""
    version, tag = oci_version(chart["version"])
    entry = {"name": chart_name(chart), "source": _source_text(chart)}
    if chart.get("version_range"):
        entry["version_range"] = str(chart["version_range"])
    return {**entry, "version": str(chart["version"]), "oci_version": version, "oci_tag": tag}


# the order of a chart's fields in results and in the lock file (the same on every run, so reruns leave it unchanged)
ENTRY_ORDER = ("name", "source", "version_range", "version", "oci_version", "oci_tag", "destination", "file",
               "digest", "source_digest", "package_digest", "layer_digest", "repackaged", "action")  # fmt: skip


def ordered_entry(entry: Dict[str, Any]) -> Dict[str, Any]:
    """`entry` with its fields in ENTRY_ORDER (unknown fields last)."""
    rank = {key: index for index, key in enumerate(ENTRY_ORDER)}
    return dict(sorted(entry.items(), key=lambda item: rank.get(item[0], len(rank))))


def available_versions(chart: Dict[str, Any], ca_file: Optional[str], indexes: Dict[str, Any]) -> List[str]:
    """Every version the chart's source offers: its OCI tags (`_` read back as `+`) or its index.yaml entries."""
    source = oci_source(chart)
    if source:
        src = source_registry(chart, ca_file)
        try:
            return [tag.replace("_", "+") for tag in src.list_tags(source[1])]
        finally:
            src.close()
    repo = str(chart.get("repo") or "").rstrip("/")
    if not repo:
        raise ChartMirrorError(
            f"{chart['chart']}: version range {chart['version']!r} needs a chart repository or an OCI registry"
        )
    if repo not in indexes:
        indexes[repo] = _read_index(repo, chart, ca_file)
    return [str(item.get("version")) for item in (indexes[repo].get("entries") or {}).get(chart["chart"]) or []]


def _locked_version(previous: Dict[str, Any], chart: Dict[str, Any], text: str) -> Optional[str]:
    for entry in previous.get("charts") or []:
        if entry.get("source") == _source_text(chart) and str(entry.get("version_range")) == text:
            return str(entry["version"])
    return None


def resolve_chart_ranges(
    charts: Tuple[Dict[str, Any], ...],
    ca_file: Optional[str],
    previous: Dict[str, Any],
    update: bool,
    indexes: Dict[str, Any],
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Charts with each version range replaced by one version (`version_range` keeps the range), and the drift.

    A range the lock file recorded keeps its recorded version unless `update`; when the source now offers a
    newer match, the drift says so (and whether this run moved to it)."""
    resolved, drift = [], []
    for chart in charts:
        text = str(chart["version"]).strip()
        if not is_range(text):
            resolved.append(chart)
            continue
        try:
            parse_range(text)  # an unreadable range fails before any source is asked
            latest = resolve_range(text, available_versions(chart, ca_file, indexes))
        except VersionRangeError as exc:
            raise ChartMirrorError(f"{chart['chart']}: {exc}") from exc
        except (RegistryError, OSError) as exc:
            raise ChartMirrorError(f"{chart['chart']}: cannot list the versions for {text!r}: {exc}") from exc
        locked = _locked_version(previous, chart, text)
        if latest is None and locked is None:
            raise ChartMirrorError(f"{_source_text(chart)}: no version matches the range {text!r}")
        chosen = latest if (update or locked is None) else locked
        if locked is not None and latest is not None and latest != locked:
            drift.append(
                {"name": chart_name(chart), "source": _source_text(chart), "version_range": text,
                 "locked": locked, "latest": latest, "updated": chosen == latest}
            )  # fmt: skip
        resolved.append({**chart, "version": chosen, "version_range": text})
    return resolved, drift


def repackage_reason(chart: Dict[str, Any]) -> Optional[str]:
    """Why the chart must be rebuilt before it is pushed (None when it goes as published)."""
    version = str(chart["version"]).strip()
    published, _tag = oci_version(version)
    if published != version:
        return (
            f"version {version} is published as {published} (leading v removed): Chart.yaml rewritten, package rebuilt"
        )
    return None


def oci_source(chart: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """(registry host, repository) of a chart pulled from an OCI registry; None for other sources."""
    ref = chart["chart"]
    if chart.get("repo") or not ref.startswith("oci://"):
        return None
    host, _sep, repo = ref[len("oci://") :].rstrip("/").partition("/")
    return host, repo


def source_tag(chart: Dict[str, Any]) -> str:
    """The tag a chart has at its OCI source: its version as published, `+` written `_` as Helm does."""
    return str(chart["version"]).strip().replace("+", "_")


def source_registry(chart: Dict[str, Any], ca_file: Optional[str]) -> Registry:
    host, _repo = oci_source(chart) or ("", "")
    return Registry(host, ca_file, chart.get("username"), chart.get("password"))


def file_sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def repository_digest(chart: Dict[str, Any], ca_file: Optional[str], indexes: Dict[str, Any]) -> Optional[str]:
    """The package's checksum in its classic repository's `index.yaml` (read once per repository)."""
    repo = str(chart.get("repo") or "").rstrip("/")
    if not repo:
        return None
    if repo not in indexes:
        indexes[repo] = _read_index(repo, chart, ca_file)
    for item in (indexes[repo].get("entries") or {}).get(chart["chart"]) or []:
        if str(item.get("version")) == str(chart["version"]).strip() and item.get("digest"):
            digest = str(item["digest"])
            return digest if digest.startswith("sha256:") else f"sha256:{digest}"
    return None


def _read_index(repo: str, chart: Dict[str, Any], ca_file: Optional[str]) -> Dict[str, Any]:
    import base64

    headers = {"Accept": "application/yaml, text/yaml, */*"}
    if chart.get("username"):
        token = base64.b64encode(f"{chart['username']}:{chart.get('password') or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    transport = Transport(ca_file)
    try:
        resp = transport.send("GET", f"{repo}/index.yaml", headers)
        if resp.status_code != 200:
            raise ChartMirrorError(f"GET {repo}/index.yaml answered HTTP {resp.status_code}")
        return load_one(resp.text, f"{repo}/index.yaml") or {}
    except (RegistryError, OSError, KubeYAMLError) as exc:
        raise ChartMirrorError(f"cannot read {repo}/index.yaml: {exc}") from exc
    finally:
        transport.close()


def chart_layer_digest(manifest: Optional[Manifest]) -> Optional[str]:
    """The digest of the chart package layer of a Helm OCI manifest."""
    if manifest is None:
        return None
    for layer in manifest.json().get("layers") or []:
        if layer.get("mediaType") == HELM_CHART_CONTENT:
            return str(layer["digest"])
    return None


def known_package_digest(chart: Dict[str, Any], ca_file: Optional[str], indexes: Dict[str, Any]) -> Optional[str]:
    """The sha256 of the package as published, when it is known without pulling (a file, or index.yaml)."""
    if os.path.isfile(chart["chart"]):
        return file_sha256(chart["chart"])
    return repository_digest(chart, ca_file, indexes)


def plan_chart(
    chart: Dict[str, Any],
    dest: Registry,
    dest_host: str,
    prefix: str,
    ca_file: Optional[str] = None,
    indexes: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The mapping for one chart and whether the destination already has it as it should be: the source's
    manifest (OCI source), the package as published as its layer (classic repository or file), or, for a
    chart that must be rebuilt, any push of it."""
    entry = _chart_entry(chart)
    repo = "/".join(p for p in (prefix.strip("/"), entry["name"]) if p)
    planned: Dict[str, Any] = {**entry, "destination": f"oci://{dest_host}/{repo}"}
    reason = repackage_reason(chart)
    if reason:
        planned["repackaged"] = reason
    if oci_source(chart):
        planned["source_digest"] = _source_manifest_digest(chart, ca_file)
        digest = dest.manifest_digest(repo, entry["oci_tag"])
        present = digest is not None if reason else digest == planned["source_digest"]
        return {**planned, "present": present, "digest": digest}
    package = known_package_digest(chart, ca_file, indexes if indexes is not None else {})
    if package:
        planned["package_digest"] = package
    manifest = dest.get_manifest(repo, entry["oci_tag"])
    layer = chart_layer_digest(manifest)
    if layer:
        planned["layer_digest"] = layer
    present = manifest is not None and (reason is not None or package is None or layer == package)
    return {**planned, "present": present, "digest": manifest.digest if manifest else None}


def _source_manifest_digest(chart: Dict[str, Any], ca_file: Optional[str]) -> str:
    _host, repo = oci_source(chart) or ("", "")
    src = source_registry(chart, ca_file)
    try:
        digest = src.manifest_digest(repo, source_tag(chart))
    finally:
        src.close()
    if digest is None:
        raise ChartMirrorError(f"{chart['chart']}:{source_tag(chart)} not found at its registry")
    return digest


def copy_oci_chart(chart: Dict[str, Any], entry: Dict[str, Any], dest: Registry, ca_file: Optional[str]) -> str:
    """Copy a chart between OCI registries blob for blob: config and package layer, then the same
    manifest under the same tag. Returns the manifest digest, which is the source's."""
    _host, src_repo = oci_source(chart) or ("", "")
    dest_repo = entry["destination"].split("/", 3)[3]
    src = source_registry(chart, ca_file)
    try:
        manifest = src.get_manifest(src_repo, source_tag(chart))
        if manifest is None:
            raise ChartMirrorError(f"{chart['chart']}:{source_tag(chart)} not found at its registry")
        for desc in manifest_blobs(manifest.json()):
            upload_url = dest.mount_blob(dest_repo, desc["digest"], dest_repo)  # None: already there
            if upload_url is not None:
                resp, chunks = stream_blob(src, src_repo, desc["digest"], desc.get("size"))
                try:
                    dest.upload_blob(dest_repo, desc["digest"], chunks, upload_url, desc.get("size"))
                finally:
                    resp.close()
        return dest.put_manifest(dest_repo, entry["oci_tag"], manifest)
    finally:
        src.close()


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
    dest: Registry,
) -> Dict[str, str]:
    """Pull, repackage only when the version must change, push; read the result back. Returns the manifest
    digest, the package layer's digest and, for a package pushed as published, its sha256 (which the layer
    must carry, and which must be the checksum the repository's index.yaml gives)."""
    with tempfile.TemporaryDirectory(prefix="mirror-chart-") as work:
        package = fetch_chart(chart, entry, helm, ca_file, work)
        pushed = file_sha256(package)
        if not entry.get("repackaged") and entry.get("package_digest") not in (None, pushed):
            raise ChartMirrorError(
                f"{entry['source']} {entry['version']}: the package served has {pushed}, "
                f"the repository's index.yaml says {entry['package_digest']}"
            )
        target = entry["destination"].rsplit("/", 1)[0]
        cmd = [helm, "push", package, target]
        if ca_file:
            cmd += ["--ca-file", ca_file]
        if username:
            cmd += ["--username", username, "--password", password or ""]
        _run(cmd, helm_env(work), f"helm push {entry['name']}", secret=password)
    manifest = dest.get_manifest(entry["destination"].split("/", 3)[3], entry["oci_tag"])
    layer = chart_layer_digest(manifest)
    if manifest is None or layer != pushed:
        raise ChartMirrorError(f"{entry['destination']}:{entry['oci_tag']} does not carry the pushed package {pushed}")
    result = {"digest": manifest.digest, "layer_digest": layer}
    if not entry.get("repackaged"):
        result["package_digest"] = pushed
    return result

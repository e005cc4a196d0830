# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find every image a set of charts or manifests will pull.

Places looked at: every pod spec the shared walker knows (all workload kinds, Helm hooks, CRD pod
spec paths the user names), image fields of CRDs the user names, and env values / args that look
like references. Those last ones are only candidates: they count once the source registry confirms
the manifest exists, so a random string shaped like `a/b:c` is not mirrored.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml
from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import (
    KubeYAMLError,
    dump_one,
    load_documents,
)
from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import (
    config_values,
    containers,
    document_name,
    is_helm_hook,
    parse_crd_path,
    pod_specs,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import (
    ImageRefError,
    candidates_in_arg,
    is_implicit_latest,
    looks_like_image,
    parse_image,
)

HAS_YAML = kube_yaml.HAS_YAML  # image_mirror and chart_mirror check it


class DiscoveryError(Exception):
    """A chart could not be rendered or a manifest file read."""


@dataclass
class Discovered:
    """References found, where each was found, and what was rejected or warned about."""

    images: Dict[str, List[str]] = field(default_factory=dict)  # normalised ref -> places
    candidates: Dict[str, List[str]] = field(default_factory=dict)  # env/args refs to confirm
    rejected: Dict[str, List[str]] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    def add(self, raw: str, where: str, candidate: bool = False) -> None:
        try:
            ref = str(parse_image(raw))
        except ImageRefError:
            if not candidate:
                self.warnings.append(f"{where}: {raw!r} is not a valid image reference; skipped")
            return
        if not candidate and is_implicit_latest(raw):
            self.warnings.append(f"{where}: {raw!r} has no tag; using the implicit 'latest' (pin a tag)")
        target = self.candidates if candidate and ref not in self.images else self.images
        target.setdefault(ref, [])
        if where not in target[ref]:
            target[ref].append(where)


# --------------------------------------------------------------------------------------------------
# where images hide in documents


def parse_image_field(expression: str) -> Tuple[str, Tuple[str, ...]]:
    """`Kind:spec.session.image` (`*` matches every list item or map value)."""
    return parse_crd_path(expression)


def _values_at(node: Any, keys: Tuple[str, ...], path: str) -> Iterator[Tuple[str, Any]]:
    if not keys:
        yield path, node
        return
    key, rest = keys[0], keys[1:]
    if key == "*":
        items = enumerate(node) if isinstance(node, list) else (node.items() if isinstance(node, dict) else [])
        for k, child in items:
            yield from _values_at(child, rest, f"{path}[{k}]")
    elif isinstance(node, dict) and key in node:
        yield from _values_at(node[key], rest, f"{path}.{key}" if path else key)


def scan_document(
    doc: Dict[str, Any],
    found: Discovered,
    pod_spec_paths: Dict[str, List[Tuple[str, ...]]],
    image_fields: Dict[str, List[Tuple[str, ...]]],
    origin: str = "",
) -> None:
    name = f"{origin}{document_name(doc)}{' (hook)' if is_helm_hook(doc) else ''}"
    for ref in pod_specs(doc, pod_spec_paths):
        for list_name, container in containers(ref.spec):
            where = f"{name} {ref.path}.{list_name}[{container.get('name') or '?'}]"
            if isinstance(container.get("image"), str):
                found.add(container["image"], where)
            _scan_env_and_args(container, where, found)
    for keys in image_fields.get(doc.get("kind") or "", []):
        for path, value in _values_at(doc, keys, ""):
            if isinstance(value, str) and value:
                found.add(value, f"{name} {path}")
    _scan_config_values(doc, name, found)


def _scan_config_values(doc: Dict[str, Any], name: str, found: Discovered) -> None:
    """Image names a ConfigMap or Secret hands to a workload (Renku's notebooks Secret names the images of every
    user session, read by the data-service through `envFrom`); candidates, like env values."""
    for value in config_values(doc):
        if looks_like_image(value.text):
            found.add(value.text.strip(), f"{name} {value.field}.{value.key}", candidate=True)


def _scan_env_and_args(container: Dict[str, Any], where: str, found: Discovered) -> None:
    for env in container.get("env") or []:
        value = env.get("value") if isinstance(env, dict) else None
        if isinstance(value, str) and looks_like_image(value):
            found.add(value, f"{where} env {env.get('name')}", candidate=True)
    for list_name in ("args", "command"):
        for arg in container.get(list_name) or []:
            if arg is None:
                continue  # a null item is an empty argument
            for text in candidates_in_arg(str(arg)):
                found.add(text, f"{where} {list_name}", candidate=True)


def scan_documents(
    docs: List[Any], found: Discovered, pod_spec_paths: List[str], image_fields: List[str], origin: str = ""
) -> None:
    specs: Dict[str, List[Tuple[str, ...]]] = {}
    for expr in pod_spec_paths:
        kind, keys = parse_crd_path(expr)
        specs.setdefault(kind, []).append(keys)
    fields: Dict[str, List[Tuple[str, ...]]] = {}
    for expr in image_fields:
        kind, keys = parse_image_field(expr)
        fields.setdefault(kind, []).append(keys)
    for doc in docs:
        if isinstance(doc, dict):
            scan_document(doc, found, specs, fields, origin)


def load_manifest_file(path: str) -> List[Any]:
    """The documents of a manifest file, read as Kubernetes reads them. Raises DiscoveryError."""
    try:
        with open(path, encoding="utf-8") as handle:
            return load_documents(handle, path)
    except (OSError, KubeYAMLError) as exc:
        raise DiscoveryError(f"cannot read manifests from {path}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# charts


def helm_env(home: str) -> Dict[str, str]:
    """A clean environment for helm: its own cache/config, no inherited CA bundle variables."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "HELM_CACHE_HOME": os.path.join(home, "cache"),
        "HELM_CONFIG_HOME": os.path.join(home, "config"),
        "HELM_DATA_HOME": os.path.join(home, "data"),
        "HELM_REGISTRY_CONFIG": os.path.join(home, "registry.json"),
    }


def chart_source_args(chart: Dict[str, Any], ca_file: Optional[str]) -> List[str]:
    """The chart reference and the flags naming where it comes from."""
    args = [chart["chart"]]
    if chart.get("repo"):
        args += ["--repo", chart["repo"]]
    if chart.get("version") and not os.path.exists(chart["chart"]):  # a local chart has one version
        args += ["--version", str(chart["version"])]
    if ca_file:
        args += ["--ca-file", ca_file]
    if chart.get("username"):
        args += ["--username", chart["username"], "--password", chart.get("password") or ""]
    return args


def render_chart(
    helm: str, chart: Dict[str, Any], values_files: List[str], values: Dict[str, Any], ca_file: Optional[str], home: str
) -> List[Any]:
    """`helm template` one chart with one set of values; hooks and CRDs included."""
    cmd = [helm, "template", chart.get("release") or "mirror", *chart_source_args(chart, ca_file), "--include-crds"]
    for path in values_files:
        cmd += ["-f", path]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=home, delete=False) as inline:
        dump_one(values or {}, inline)
    cmd += ["-f", inline.name]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env(home), check=False)
    if proc.returncode != 0:
        raise DiscoveryError(f"helm template {chart['chart']} failed: {proc.stderr.strip()[-2000:]}")
    try:
        return load_documents(proc.stdout, f"helm template {chart['chart']}")
    except KubeYAMLError as exc:
        raise DiscoveryError(f"cannot read the output of {exc}") from exc


def value_sets(chart: Dict[str, Any]) -> List[Tuple[List[str], Dict[str, Any]]]:
    """Each set of values to render with: `values_sets` (lists of files) and `values` (inline dicts)."""
    sets: List[Tuple[List[str], Dict[str, Any]]] = [(list(files), {}) for files in chart.get("values_sets") or []]
    sets += [([], dict(v)) for v in chart.get("values") or []]
    return sets or [([], {})]


def discover(
    charts: List[Dict[str, Any]],
    manifest_files: List[str],
    extra_images: List[str],
    pod_spec_paths: List[str],
    image_fields: List[str],
    helm: str = "helm",
    ca_file: Optional[str] = None,
) -> Discovered:
    """Everything except confirming candidates (that needs a registry: see `confirm_candidates`)."""
    found = Discovered()
    with tempfile.TemporaryDirectory(prefix="mirror-helm-") as home:
        for chart in charts:
            for number, (files, values) in enumerate(value_sets(chart)):
                docs = render_chart(helm, chart, files, values, ca_file, home)
                scan_documents(docs, found, pod_spec_paths, image_fields, f"{chart['chart']}[{number}] ")
    for path in manifest_files:
        scan_documents(load_manifest_file(path), found, pod_spec_paths, image_fields, f"{path}: ")
    for raw in extra_images:
        found.add(raw, "extra_images")
    for ref in list(found.candidates):
        if ref in found.images:
            found.images[ref] += found.candidates.pop(ref)
    return found


def confirm_candidates(found: Discovered, exists: Callable[[str], bool], parallel: int = 8) -> None:
    """Ask the source registry about every env/args candidate; keep only those that exist."""
    refs = list(found.candidates)

    def check(ref: str) -> bool:
        try:
            return exists(ref)
        except Exception:  # an unreachable or refusing registry does not confirm anything
            return False

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as workers:
        answers = list(workers.map(check, refs))
    for ref, ok in zip(refs, answers, strict=True):
        places = found.candidates.pop(ref)
        (found.images if ok else found.rejected)[ref] = places

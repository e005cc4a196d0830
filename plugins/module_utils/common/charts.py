# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a Helm chart package (a directory or a .tgz) the way Helm sees it, without running Helm.

What the stages need from a chart, offline and without a cluster:

- its name, version and the versions of the subcharts it vendors (`charts/<dir>/`, unpacked or
  as nested packages), with the condition that switches each one on;
- its default values with every subchart's defaults nested under the subchart's name or alias,
  parent values taking precedence, so image values of subcharts can be found and pinned.
"""

from __future__ import annotations

import copy
import io
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import load_one


class ChartError(ValueError):
    """The path is not a readable Helm chart; the message names the path and what is missing."""


@dataclass
class ChartPackage:
    name: str
    version: str
    app_version: str
    api_version: str
    declared: List[Dict[str, Any]]  # dependencies as Chart.yaml / requirements.yaml declare them
    values: Dict[str, Any]
    subcharts: Dict[str, ChartPackage] = field(default_factory=dict)  # by chart name


def read_chart(path: str) -> ChartPackage:
    """A chart directory or package (.tgz); raises ChartError naming what is wrong."""
    if os.path.isdir(path):
        return _from_files(_directory_files(path), path)
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            return _from_package(handle.read(), path)
    raise ChartError(f"{path}: no such chart directory or package")


def _directory_files(root: str) -> Dict[str, bytes]:
    files: Dict[str, bytes] = {}
    for base, _dirs, names in os.walk(root):
        rel_base = os.path.relpath(base, root)
        for name in names:
            rel = os.path.normpath(os.path.join(rel_base, name))
            if _wanted(rel):
                with open(os.path.join(base, name), "rb") as handle:
                    files[rel] = handle.read()
    return files


def _wanted(rel: str) -> bool:
    """Only the files that describe a chart and its subcharts (templates are not read)."""
    parts = rel.split(os.sep) if os.sep in rel else rel.split("/")
    if parts[-1] in ("Chart.yaml", "values.yaml", "requirements.yaml", "Chart.lock", "requirements.lock"):
        return all(p not in ("templates", "crds") for p in parts[:-1])
    return parts[-1].endswith(".tgz") and len(parts) >= 2 and parts[-2] == "charts"


def _from_package(data: bytes, source: str) -> ChartPackage:
    files: Dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive.getmembers():
                rel = member.name.partition("/")[2]
                if not member.isfile() or not rel or not _wanted(rel):
                    continue
                extracted = archive.extractfile(member)
                if extracted is not None:
                    files[rel] = extracted.read()
    except tarfile.TarError as exc:
        raise ChartError(f"{source}: not a chart package ({exc})") from exc
    return _from_files(files, source)


def _yaml(files: Dict[str, bytes], name: str, source: str) -> Any:
    if name not in files:
        return None
    try:
        return load_one(files[name].decode("utf-8"))
    except Exception as exc:
        raise ChartError(f"{source}: {name} does not parse: {exc}") from exc


def _from_files(files: Dict[str, bytes], source: str) -> ChartPackage:
    meta = _yaml(files, "Chart.yaml", source)
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
        raise ChartError(f"{source}: Chart.yaml with name and version is missing; is this a Helm chart?")
    declared = meta.get("dependencies") or (_yaml(files, "requirements.yaml", source) or {}).get("dependencies") or []
    values = _yaml(files, "values.yaml", source) or {}
    chart = ChartPackage(
        name=str(meta["name"]),
        version=str(meta["version"]),
        app_version=str(meta.get("appVersion") or ""),
        api_version=str(meta.get("apiVersion") or "v1"),
        declared=[d for d in declared if isinstance(d, dict)],
        values=values if isinstance(values, dict) else {},
    )
    for sub in _subcharts(files, source):
        chart.subcharts.setdefault(sub.name, sub)
    return chart


def _subcharts(files: Dict[str, bytes], source: str) -> List[ChartPackage]:
    found: List[ChartPackage] = []
    directories: Dict[str, Dict[str, bytes]] = {}
    for rel, data in files.items():
        parts = rel.replace(os.sep, "/").split("/")
        if len(parts) < 2 or parts[0] != "charts":
            continue
        if len(parts) == 2 and parts[1].endswith(".tgz"):
            found.append(_from_package(data, f"{source}/{rel}"))
        elif len(parts) >= 3:
            directories.setdefault(parts[1], {})["/".join(parts[2:])] = data
    for name, sub_files in sorted(directories.items()):
        if "Chart.yaml" in sub_files:
            found.append(_from_files(sub_files, f"{source}/charts/{name}"))
    return found


# --------------------------------------------------------------------------------------------------
# what the stages read from it


def merge_values(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    """Helm's coalescing of two values trees: maps merge, anything else in `override` wins."""
    result = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_values(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def dependency_key(declared: Dict[str, Any]) -> str:
    return str(declared.get("alias") or declared.get("name"))


def computed_values(chart: ChartPackage, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Default values with each subchart's defaults under its key, then `overrides` on top."""
    values = merge_values(chart.values, overrides or {})
    parent_global = values.get("global") if isinstance(values.get("global"), dict) else {}
    for declared in chart.declared:
        sub = chart.subcharts.get(str(declared.get("name")))
        if sub is None:
            continue
        key = dependency_key(declared)
        given = values.get(key) if isinstance(values.get(key), dict) else {}
        given = merge_values(given, {"global": parent_global}) if parent_global else given
        values[key] = computed_values(sub, given)
    return values


def condition_enabled(condition: Optional[str], values: Dict[str, Any]) -> bool:
    """Helm's rule: the first path of a comma-separated condition that resolves to a bool decides."""
    for path in (p.strip() for p in (condition or "").split(",") if p.strip()):
        node: Any = values
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, bool):
            return node
    return True


def dependency_tree(chart: ChartPackage, values: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Each declared dependency with the version vendored, whether it is enabled, and its own tree."""
    tree = []
    for declared in chart.declared:
        sub = chart.subcharts.get(str(declared.get("name")))
        key = dependency_key(declared)
        sub_values = values.get(key) if isinstance(values.get(key), dict) else {}
        tree.append(
            {
                "name": str(declared.get("name")),
                "alias": str(declared.get("alias") or ""),
                "declared_version": str(declared.get("version") or ""),
                "version": sub.version if sub else "",
                "vendored": sub is not None,
                "repository": str(declared.get("repository") or ""),
                "condition": str(declared.get("condition") or ""),
                "enabled": condition_enabled(declared.get("condition"), values),
                "dependencies": dependency_tree(sub, sub_values) if sub else [],
            }
        )
    return tree


def chart_summary(chart: ChartPackage, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What `helm_chart_info` returns: identity, dependency tree, direct versions, computed values."""
    values = computed_values(chart, overrides)
    tree = dependency_tree(chart, values)
    return {
        "name": chart.name,
        "version": chart.version,
        "app_version": chart.app_version,
        "api_version": chart.api_version,
        "dependencies": tree,
        "versions": {d["name"]: d["version"] for d in tree if d["vendored"]},
        "values": values,
    }

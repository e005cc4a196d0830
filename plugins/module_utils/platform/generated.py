# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fields a chart generates at random, found by rendering it twice, and kept as the running release has them.

Charts call `randAlphaNum`, `genCA` or `uuidv4` where Helm's `lookup` would find the live value on a real
install; an offline `helm template` has no cluster, so each render differs. Renku 2.19.3 names its setup Jobs
`<release>-init-...-rev1-<random>`, stamps a random `reloader` annotation on its UI pod template and a
checksum of generated passwords on Solr's. Applied as rendered, every rerun would create new Jobs and roll
the workloads. Two renders with the same values tell which fields are random; the apply then reuses the
name the release already has and the live value of every other random field.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

Path = Tuple[Any, ...]
NAME_PATH: Path = ("metadata", "name")
_SEPARATOR = re.compile(r"[-.]")


def _differences(first: Any, second: Any, path: Path) -> Iterator[Path]:
    if isinstance(first, dict) and isinstance(second, dict):
        for key in sorted(set(first) | set(second), key=str):
            yield from _differences(first.get(key), second.get(key), (*path, key))
    elif isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            yield from _differences(a, b, (*path, index))
    elif first != second:
        yield path


def name_pattern(first: str, second: str) -> str:
    """`renku-init-db-rev1-*` from two names that differ in a random part, cut at `-`/`.` boundaries."""
    prefix_len = 0
    while prefix_len < min(len(first), len(second)) and first[prefix_len] == second[prefix_len]:
        prefix_len += 1
    prefix = first[:prefix_len]
    cut = max((m.end() for m in _SEPARATOR.finditer(prefix)), default=0)
    suffix_len = 0
    while suffix_len < min(len(first), len(second)) - prefix_len and first[-1 - suffix_len] == second[-1 - suffix_len]:
        suffix_len += 1
    suffix = first[len(first) - suffix_len :] if suffix_len else ""
    first_sep = _SEPARATOR.search(suffix)
    suffix = suffix[first_sep.start() :] if first_sep else ""
    return f"{first[:cut]}*{suffix}"


def generated_fields(first: List[Any], second: List[Any]) -> List[Dict[str, Any]]:
    """For each document of `first` with random fields: its identity, the paths, and a name pattern if its name is one.

    `first` and `second` are two renders of one chart with the same values, in Helm's (stable) output order.
    """
    if len(first) != len(second):
        raise ValueError(
            f"the two renders differ in length ({len(first)} and {len(second)} documents); "
            "the chart renders a different set of objects each time and cannot be applied idempotently"
        )
    found = []
    for a, b in zip(first, second, strict=True):
        if not isinstance(a, dict) or not isinstance(b, dict):
            continue
        paths = list(_differences(a, b, ()))
        if not paths:
            continue
        meta = a.get("metadata") or {}
        entry: Dict[str, Any] = {
            "kind": str(a.get("kind") or ""),
            "namespace": str(meta.get("namespace") or ""),
            "name": str(meta.get("name") or ""),
            "paths": [list(p) for p in paths if p != NAME_PATH],
        }
        if NAME_PATH in paths:
            entry["name_pattern"] = name_pattern(
                str(meta.get("name") or ""), str((b.get("metadata") or {}).get("name"))
            )
        found.append(entry)
    return found


def _dig(node: Any, path: List[Any]) -> Tuple[bool, Any]:
    for key in path:
        in_map = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        if not (in_map or in_list):
            return False, None
        node = node[key]
    return True, node


def _put(node: Any, path: List[Any], value: Any) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)


def pattern_key(kind: str, namespace: str, pattern: str) -> str:
    return f"{kind}/{namespace}/{pattern}"


def stabilise(
    documents: List[Any],
    fields: List[Dict[str, Any]],
    names: Dict[str, str],
    namespace: str,
    live: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]],
) -> Tuple[List[Any], Dict[str, str]]:
    """Documents with random names replaced by the names the release already uses (`names`, from its record)
    and every other random field set to its live value; and the names to record for the next run."""
    by_identity = {(f["kind"], f["namespace"] or namespace, f["name"]): f for f in fields}
    out: List[Any] = []
    recorded: Dict[str, str] = {}
    for document in documents:
        meta = (document.get("metadata") or {}) if isinstance(document, dict) else {}
        field = (
            by_identity.get((document.get("kind"), meta.get("namespace") or namespace, meta.get("name")))
            if meta
            else None
        )
        if field is None:
            out.append(document)
            continue
        document = copy.deepcopy(document)
        if field.get("name_pattern"):
            key = pattern_key(field["kind"], field["namespace"] or namespace, field["name_pattern"])
            document["metadata"]["name"] = names.get(key, field["name"])
            recorded[key] = document["metadata"]["name"]
        current = live(document) if field["paths"] else None
        for path in field["paths"] if current else []:
            present, value = _dig(current, path)
            parent_present, _parent = _dig(document, path[:-1])
            if present and parent_present:
                _put(document, path, value)
        out.append(document)
    return out, recorded

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read YAML the way Kubernetes does (sigs.k8s.io/yaml on go-yaml v2), not the way PyYAML does.

PyYAML resolves more plain scalars than go-yaml, and Kubernetes, Helm and kubectl read these as
strings where PyYAML does not:

- `=` (kube-prometheus CRD enums): PyYAML tags it `!!value`, which no safe constructor knows, so
  loading fails with "could not determine a constructor";
- `2024-01-01T00:00:00Z`: PyYAML builds a datetime, which later fails JSON serialisation;
- `1:20`: PyYAML reads a base-60 integer (80).

`KubeLoader` drops those implicit resolvers on its own copy of the resolver table (PyYAML's global
table is untouched). Every manifest, chart values text and lock file the collection reads goes
through `load_documents` or `load_one`; `dump_one`/`dump_documents` write with the standard safe
dumper, which quotes such strings so any YAML reader gets them back as strings.
"""

from __future__ import annotations

import re
import traceback
from typing import IO, Any, Iterable

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

DROPPED_TAGS = frozenset({"tag:yaml.org,2002:value", "tag:yaml.org,2002:timestamp"})
# PyYAML's int and float patterns without their base-60 branch (go-yaml has no base-60 numbers)
GO_PATTERNS = {
    "tag:yaml.org,2002:int": re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
    ),
    "tag:yaml.org,2002:float": re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
}


class KubeYAMLError(ValueError):
    """YAML that cannot be read; the message names the source and, when known, the line and column."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def kube_resolvers(table: dict[Any, list[tuple[str, Any]]]) -> dict[Any, list[tuple[str, Any]]]:
    """A copy of a resolver table (first character -> [(tag, pattern)]) with go-yaml's rules."""
    copied: dict[Any, list[tuple[str, Any]]] = {}
    for first, resolvers in table.items():
        kept = [(tag, GO_PATTERNS.get(tag, pattern)) for tag, pattern in resolvers if tag not in DROPPED_TAGS]
        if kept:
            copied[first] = kept
    return copied


if HAS_YAML:
    _BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class KubeLoader(_BASE_LOADER):  # type: ignore[valid-type,misc]
        """The safe loader (libyaml when available) resolving plain scalars as go-yaml does."""

        yaml_implicit_resolvers = kube_resolvers(_BASE_LOADER.yaml_implicit_resolvers)


def is_empty(document: Any) -> bool:
    """A document Kubernetes tooling skips: null, or an empty map, list or string."""
    return document is None or (isinstance(document, (dict, list, str)) and not document)


def load_documents(source: str | IO[str], name: str | None = None) -> list[Any]:
    """Every document of a multi-document text or stream, empty ones dropped. Raises KubeYAMLError."""
    _require_yaml()
    try:
        return [d for d in yaml.load_all(source, Loader=KubeLoader) if not is_empty(d)]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _error(exc, name or _source_name(source)) from exc


def load_one(source: str | IO[str], name: str | None = None) -> Any:
    """The single document of a text or stream (None when empty). Raises KubeYAMLError."""
    _require_yaml()
    try:
        return yaml.load(source, Loader=KubeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _error(exc, name or _source_name(source)) from exc


def dump_one(data: Any, stream: IO[str] | None = None, **options: Any) -> str | None:
    """`yaml.safe_dump` with libyaml when available; options as for `yaml.dump`."""
    _require_yaml()
    return yaml.dump(data, stream, Dumper=_DUMPER, **options)


def dump_documents(documents: Iterable[Any], stream: IO[str] | None = None, **options: Any) -> str | None:
    """`yaml.safe_dump_all` with libyaml when available; options as for `yaml.dump_all`."""
    _require_yaml()
    return yaml.dump_all(documents, stream, Dumper=_DUMPER, **options)


def _require_yaml() -> None:
    if not HAS_YAML:
        raise KubeYAMLError(f"PyYAML is not installed: {YAML_IMPORT_ERROR}")


def _source_name(source: Any) -> str:
    return "<text>" if isinstance(source, str) else str(getattr(source, "name", "<stream>"))


def _error(exc: Exception, name: str) -> KubeYAMLError:
    if isinstance(exc, UnicodeDecodeError):
        return KubeYAMLError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
    problem = "; ".join(str(part) for part in parts if part) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return KubeYAMLError(f"{name}: {problem}")
    line, column = mark.line + 1, mark.column + 1
    return KubeYAMLError(f"{name}: line {line}, column {column}: {problem}", line, column)

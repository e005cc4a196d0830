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
through `load_documents` or `load_one` (libyaml composes, `construct` builds the data: a third
faster than PyYAML's constructor, same result); `dump_one`/`dump_documents` write with the standard
safe dumper, which quotes such strings so any YAML reader gets them back as strings. `dump_block`
writes one document of plain data (what the transforms produce) four times faster, with the same
guarantee; `dump_tree` is the safe dumper without its alias bookkeeping. Neither writes anchors, so
recursive data (never in a Kubernetes document) ends in RecursionError with both.
"""

from __future__ import annotations

import contextlib
import io
import json
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

_STR_TAG, _MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null"))
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


def load_documents(source: str | IO[str], name: str | None = None, first_line: int = 1) -> list[Any]:
    """Every document of a multi-document text or stream, empty ones dropped. Raises KubeYAMLError.

    `first_line` is the line of a larger text where `source` starts (errors name lines of that text).
    """
    _require_yaml()
    try:
        loader = KubeLoader(source)
        try:
            documents = []
            while loader.check_node():
                document = construct(loader, loader.get_node())
                if not is_empty(document):
                    documents.append(document)
            return documents
        finally:
            loader.dispose()
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _error(exc, name or _source_name(source), first_line - 1) from exc


def load_one(source: str | IO[str], name: str | None = None) -> Any:
    """The single document of a text or stream (None when empty). Raises KubeYAMLError."""
    _require_yaml()
    try:
        loader = KubeLoader(source)
        try:
            node = loader.get_single_node()
            return None if node is None else construct(loader, node)
        finally:
            loader.dispose()
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _error(exc, name or _source_name(source)) from exc


class _Unusual(Exception):
    """A node `construct` leaves to the loader's own constructor."""


def construct(loader: Any, node: Any) -> Any:
    """The data of one composed document, as `loader.construct_document(node)` builds it, in a tenth of its time.

    Maps, sequences and strings are built directly (the safe constructor spends most of its time in
    bookkeeping for tags and recursive structures Kubernetes documents do not use); an alias gives the same
    object as its anchor, as in PyYAML. Integers, floats, booleans and nulls go through the loader's
    constructors. A document with anything else (merge keys, other tags, a key that is not hashable) is
    built, or refused with PyYAML's error, by the loader's constructor.
    """
    built: dict[int, Any] = {}
    constructors = loader.yaml_constructors

    def build(node: Any) -> Any:
        cls = node.__class__
        if cls is yaml.ScalarNode:
            if node.tag == _STR_TAG:
                return node.value
            if node.tag in _SCALAR_TAGS:
                return constructors[node.tag](loader, node)
            raise _Unusual
        if id(node) in built:
            return built[id(node)]
        if cls is yaml.MappingNode and node.tag == _MAP_TAG:
            mapping: dict[Any, Any] = {}
            built[id(node)] = mapping
            for key, value in node.value:
                if key.tag == _MERGE_TAG:
                    raise _Unusual
                mapping[build(key)] = build(value)
            return mapping
        if cls is yaml.SequenceNode and node.tag == _SEQ_TAG:
            items: list[Any] = []
            built[id(node)] = items
            for item in node.value:
                items.append(build(item))
            return items
        raise _Unusual

    try:
        return build(node)
    except (_Unusual, TypeError):  # TypeError: a key that is a map or a list
        return loader.construct_document(node)


def dump_one(data: Any, stream: IO[str] | None = None, **options: Any) -> str | None:
    """`yaml.safe_dump` with libyaml when available; options as for `yaml.dump`."""
    _require_yaml()
    return yaml.dump(data, stream, Dumper=_DUMPER, **options)


def dump_documents(documents: Iterable[Any], stream: IO[str] | None = None, **options: Any) -> str | None:
    """`yaml.safe_dump_all` with libyaml when available; options as for `yaml.dump_all`."""
    _require_yaml()
    return yaml.dump_all(documents, stream, Dumper=_DUMPER, **options)


def dump_tree(data: Any, stream: IO[str] | None = None, sort_keys: bool = False, **options: Any) -> str | None:
    """One document of plain data (what a loader returns) in block style, as `dump_one` writes it, faster.

    The nodes of dicts, lists and strings are built directly, without the representer's dispatch and alias
    bookkeeping (a third of `dump_one`'s time on Kubernetes documents); other values go through the safe
    representer. A subtree shared twice is written out twice, never as an anchor and aliases. `options` are the
    dumper's (`allow_unicode`, `width`, `explicit_start`, ...).
    """
    _require_yaml()
    out = stream if stream is not None else io.StringIO()
    dumper = _DUMPER(out, default_flow_style=False, sort_keys=sort_keys, **options)
    represent = dumper.represent_data

    def node(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return yaml.ScalarNode(_STR_TAG, value)
        if kind is dict:
            items = list(value.items())
            if sort_keys:
                with contextlib.suppress(TypeError):  # keys of mixed types stay in their order, as in `dump_one`
                    items.sort()
            return yaml.MappingNode(_MAP_TAG, [(node(k), node(v)) for k, v in items], flow_style=False)
        if kind is list:
            return yaml.SequenceNode(_SEQ_TAG, [node(item) for item in value], flow_style=False)
        return represent(value)

    try:
        dumper.open()
        dumper.serialize(node(data))
        dumper.close()
    finally:
        dumper.dispose()
    return None if stream is not None else out.getvalue()


# Strings written plain by `dump_block`: a name, path or image reference that no YAML reader (PyYAML's YAML 1.1,
# go-yaml, YAML 1.2) resolves to anything but a string. Everything else is double-quoted.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@=+-]*(?::[A-Za-z0-9_./@=+-]+)*\Z")
_NOT_PLAIN = frozenset(
    spelling
    for word in ("y", "n", "yes", "no", "on", "off", "true", "false", "null")
    for spelling in (word, word.upper(), word.capitalize())
)
# what YAML does not allow raw in a double-quoted scalar: outside its printable set, or a line break (NEL, LS, PS)
_ESCAPE = re.compile(r"[^\x09\x0a\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
# a multi-line string a literal block (`|`, `|-`) cannot hold as it is: trailing blanks on a line, a CR
_NOT_LITERAL = re.compile(r"[ \t]\n|\r|[ \t]\Z")
_MAX_KEY = 1000  # readers look at most 1024 characters ahead for the `:` of a key


class _NotPlainData(Exception):
    """A value `dump_block` leaves to `dump_tree`."""


def dump_block(data: Any) -> str:
    """One document of plain data (what a loader returns) as block YAML, keys in their order; UTF-8 text kept.

    Reads back (with any YAML reader) as the same data. About four times faster than `dump_tree` on Kubernetes
    documents: written directly, with names, paths and image references plain and every other string in double
    quotes (escaped as JSON escapes it, plus the characters YAML does not allow raw), a multi-line string as a
    literal block when it can be one. Data with other values (floats, dates, bytes, a root scalar, a very long
    key) is written by `dump_tree` instead.
    """
    _require_yaml()
    try:
        return _BlockWriter().document(data)
    except _NotPlainData:
        return dump_tree(data, sort_keys=False, allow_unicode=True) or ""


class _BlockWriter:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.scalars: dict[str, str] = {}

    def document(self, data: Any) -> str:
        if data.__class__ is dict and data:
            self.mapping(data, 0, "")
        elif data.__class__ is list and data:
            self.sequence(data, 0, "")
        else:
            raise _NotPlainData
        return "".join(self.out)

    def scalar(self, value: Any) -> str:
        if value.__class__ is str:
            written = self.scalars.get(value)
            if written is None:
                if _PLAIN.match(value) and value not in _NOT_PLAIN:
                    written = value
                else:
                    written = json.dumps(value, ensure_ascii=False)
                    if _ESCAPE.search(written):
                        written = _ESCAPE.sub(_escaped, written)
                self.scalars[value] = written
            return written
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if value.__class__ is int:
            return str(value)
        raise _NotPlainData

    def mapping(self, data: dict, indent: int, first: str) -> None:
        pad = first
        for key, value in data.items():
            written = self.scalar(key)
            if len(written) > _MAX_KEY:
                raise _NotPlainData
            self.out.append(f"{pad}{written}:")
            self.value(value, indent)
            pad = " " * indent

    def sequence(self, items: list, indent: int, first: str) -> None:
        pad = first
        for item in items:
            if item and item.__class__ is dict:
                self.mapping(item, indent + 2, pad + "- ")
            elif item and item.__class__ is list:
                self.sequence(item, indent + 2, pad + "- ")
            else:
                self.out.append(pad + "-")
                self.value(item, indent)
            pad = " " * indent

    def value(self, value: Any, indent: int) -> None:
        """A value after `key:` or `-` at column `indent`: on the same line, or below it."""
        cls = value.__class__
        if cls is dict:
            if not value:
                self.out.append(" {}\n")
                return
            self.out.append("\n")
            self.mapping(value, indent + 2, " " * (indent + 2))
        elif cls is list:
            if not value:
                self.out.append(" []\n")
                return
            self.out.append("\n")
            self.sequence(value, indent, " " * indent)  # a sequence in a map sits at the key's column
        elif cls is str and "\n" in value and self.literal(value, indent + 2):
            return
        else:
            self.out.append(f" {self.scalar(value)}\n")

    def literal(self, value: str, indent: int) -> bool:
        body = value[:-1] if value.endswith("\n") else value
        if (
            body.endswith("\n")
            or value[0] in " \t\n"
            or _NOT_LITERAL.search(value)
            or _ESCAPE.search(value.replace("\n", " "))
        ):
            return False
        pad = " " * indent
        self.out.append(" |\n" if value.endswith("\n") else " |-\n")
        self.out.append("".join(f"{pad}{line}\n" if line else "\n" for line in body.split("\n")))
        return True


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _require_yaml() -> None:
    if not HAS_YAML:
        raise KubeYAMLError(f"PyYAML is not installed: {YAML_IMPORT_ERROR}")


def _source_name(source: Any) -> str:
    return "<text>" if isinstance(source, str) else str(getattr(source, "name", "<stream>"))


def _error(exc: Exception, name: str, line_offset: int = 0) -> KubeYAMLError:
    if isinstance(exc, UnicodeDecodeError):
        return KubeYAMLError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
    problem = "; ".join(str(part) for part in parts if part) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return KubeYAMLError(f"{name}: {problem}")
    line, column = mark.line + 1 + line_offset, mark.column + 1
    return KubeYAMLError(f"{name}: line {line}, column {column}: {problem}", line, column)

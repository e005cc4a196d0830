# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Multi-document YAML text, read only where a transform needs it, written back as text.

`helm template` and a Helm post-renderer speak text, and most of a chart's bytes sit in documents a
transform never changes: Renku 2.19.3 renders 590 KB, 440 KB of it one CustomResourceDefinition.
Reading everything costs far more than the transform itself, so:

- `split` cuts the text into documents at document markers, exactly where a YAML reader does: a line
  at column 0 that is `---` or `...` followed by a space, a tab or the line's end (content inside a
  document, block scalars included, is indented or cannot start with such a line: PyYAML ends a
  plain scalar there and refuses a quoted one). Documents holding only comments and blank lines
  are dropped, as readers drop them. Streams a line cut cannot follow exactly (`%` directives,
  content after `...`, the line breaks `\\r`, NEL, LS and PS) give None and are read whole instead.
- `scan_kind` reads a document's top-level `kind:` from its column-0 lines, or answers None when a
  line scan cannot tell (no such line or several, flow style, quoted or complex keys, merge keys,
  anchors, tags, a value that is not a plain name).
- `read` parses (with `kube_yaml`) the documents whose kind is wanted or unknown, and keeps every
  other one as its text. Anchors never span documents, so each is read on its own.
- `emit` writes the documents back in order, each after a `---` line: a document nobody changed as
  its original text (its comments and formatting kept), a changed one dumped (`kube_yaml.dump_block`)
  after its leading comments (`# Source: ...`).

A document passed through as text is not read at all, so a YAML error in it surfaces where the
manifest is read next (`release_apply`, or Helm after a post-renderer), not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml

_CONTENT = re.compile(r"^[ \t]*[^ \t\r\n#]", re.M)  # a line that is neither blank nor a comment
_LEADING_COMMENTS = re.compile(r"(?:[ \t\r]*(?:#[^\n]*)?\n)*")
_KIND_KEY = re.compile(r"kind[ \t]*:")
_KIND_LINE = re.compile(
    r"""kind:[ \t]*(?:([A-Za-z][A-Za-z0-9]*)|"([A-Za-z][A-Za-z0-9]*)"|'([A-Za-z][A-Za-z0-9]*)')"""
    r"""(?:[ \t]+(?:#[^\n]*)?)?\r?(?:\n|\Z)"""
)
# column-0 starts a line scan cannot read as `key: value`: flow collections, quoted or complex keys,
# merge keys, anchors, aliases, tags, directives, block scalar indicators, reserved characters
_UNREADABLE = "{[\"'?<&*!%|>@`"
_UNREADABLE_LINE = re.compile("\n[" + re.escape(_UNREADABLE) + "]")
_MARKER_END = " \t\r\n"  # what follows `---` or `...` on a marker line
_ODD_BREAKS = ("\x85", "\u2028", "\u2029")
# Patterns start with a literal newline rather than `^` with re.M: the regular expression engine then
# jumps from newline to newline instead of trying every position (4 ms per pattern on 590 KB).


@dataclass
class Part:
    """One document of a stream.

    `text` is its lines without the marker line that opened it (None when the stream was read whole);
    with `own_marker` the text starts with that marker line because the line holds content (`--- !!map`).
    `line` is the stream line where `text` starts. `document` is set when `parsed`; `dirty` says it
    must be dumped because it was changed (or has no text). `emit` sets `output`, what it wrote for it.
    """

    text: str | None
    line: int = 1
    kind: str | None = None
    own_marker: bool = False
    document: Any = None
    parsed: bool = False
    dirty: bool = False
    output: str = ""


def split(text: str) -> list[Part] | None:
    """The documents of a multi-document YAML text, comment-only ones dropped; None when no exact line cut exists."""
    if not _line_cut_possible(text):
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    parts: list[Part] = []
    start, line, own_marker, after_end = 0, 1, False, False
    for begin, end in _markers(text):
        body = text[start:begin]
        if after_end:
            if _CONTENT.search(body):
                return None  # content after `...` needs a `---` first: the reader refuses it
        elif _CONTENT.search(body):
            parts.append(Part(body, line, None, own_marker))
        marker = text[begin:end]
        rest = marker[3:].strip()
        has_content = bool(rest) and not rest.startswith("#")
        marker_line = line + body.count("\n")
        if marker.startswith("..."):
            if has_content:
                return None
            start, line, own_marker, after_end = end, marker_line + 1, False, True
        elif has_content:
            start, line, own_marker, after_end = begin, marker_line, True, False
        else:
            start, line, own_marker, after_end = end, marker_line + 1, False, False
    body = text[start:]
    if _CONTENT.search(body):
        if after_end:
            return None
        parts.append(Part(body, line, None, own_marker))
    for part in parts:
        part.kind = None if part.own_marker else scan_kind(part.text or "")
    return parts


def _markers(text: str) -> list[tuple[int, int]]:
    """(start, end) of every marker line, its line break included, in order."""
    found: list[tuple[int, int]] = []
    for token in ("---", "..."):
        for at in _line_starts(text, token):
            after = at + 3
            if after == len(text) or text[after] in _MARKER_END:
                stop = text.find("\n", after)
                found.append((at, len(text) if stop < 0 else stop + 1))
    found.sort()
    return found


def _line_cut_possible(text: str) -> bool:
    if any(c in text for c in _ODD_BREAKS) or ("\r" in text and text.count("\r") != text.count("\r\n")):
        return False
    return not (text.startswith("%") or "\n%" in text)  # directives


def scan_kind(text: str) -> str | None:
    """The top-level `kind` of one block-style document, from its column-0 lines; None when a line scan cannot tell.

    A plain value continued on an indented line reads as its first word here; such a value holds a space, which
    no kind has, so at worst a document is read that did not need to be.
    """
    keys = [at for at in _line_starts(text, "kind") if _KIND_KEY.match(text, at)]
    if len(keys) != 1 or (text[:1] and text[0] in _UNREADABLE) or _UNREADABLE_LINE.search(text):
        return None
    match = _KIND_LINE.match(text, keys[0])
    if match is None:
        return None
    return match.group(1) or match.group(2) or match.group(3)


def _line_starts(text: str, prefix: str) -> list[int]:
    """Offsets of the lines of `text` that start with `prefix`."""
    found = [0] if text.startswith(prefix) else []
    at = text.find("\n" + prefix)
    while at >= 0:
        found.append(at + 1)
        at = text.find("\n" + prefix, at + 1)
    return found


def read(text: str, wanted: Collection[str] | Callable[[str], bool], name: str = "manifest") -> list[Part]:
    """The documents of `text`: those of a wanted or unknown kind parsed, the others kept as text.

    Empty documents are dropped. Raises kube_yaml.KubeYAMLError, naming the line of `text`.
    """
    is_wanted = wanted if callable(wanted) else wanted.__contains__
    parts = split(text)
    if parts is None:
        return [Part(None, document=d, parsed=True, dirty=True) for d in kube_yaml.load_documents(text, name)]
    out: list[Part] = []
    for part in parts:
        if part.kind is not None and not is_wanted(part.kind):
            out.append(part)
            continue
        documents = kube_yaml.load_documents(part.text or "", name, part.line)
        if len(documents) == 1:
            part.document, part.parsed = documents[0], True
            out.append(part)
        else:  # cannot happen after an exact cut; stay correct anyway
            out.extend(Part(None, document=d, parsed=True, dirty=True) for d in documents)
    return out


def emit(parts: Iterable[Part]) -> str:
    """The manifest: each part in order (its `output` is set to its share of the text).

    A part nobody changed is written as its text, a changed one (`dirty`) dumped after its leading comments.
    """
    chunks: list[str] = []
    for part in parts:
        part.output = _render(part)
        chunks.append(part.output)
    return "".join(chunks)


def _render(part: Part) -> str:
    if part.text is not None and not part.dirty:
        text = part.text if part.text.endswith("\n") else part.text + "\n"
        return text if part.own_marker else "---\n" + text
    comments = ""
    if part.text is not None and not part.own_marker:
        comments = _LEADING_COMMENTS.match(part.text).group()  # type: ignore[union-attr]
    return "---\n" + comments + dump(part.document)


def dump(document: Any) -> str:
    """One document as block YAML, keys in their order, non-ASCII text kept as UTF-8 (`kube_yaml.dump_block`)."""
    return kube_yaml.dump_block(document)

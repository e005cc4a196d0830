# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chart version ranges as Helm writes them in Chart.yaml dependencies (`2.x.x`, `~1.2`, `^0.4.1`,
`>=1.0.0 <2.0.0`, `1.x || 2.x`), resolved to the newest version a source offers.

The subset of Masterminds/semver that charts use: x-ranges and partial versions, `^` and `~`,
comparisons (`=`, `!=`, `>`, `>=`, `<`, `<=`) joined by spaces or commas, alternatives with `||`.
Pre-releases match only a range that names one, as in Helm.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional, Tuple

Version = Tuple[int, int, int, Tuple[object, ...]]  # major, minor, patch, pre-release identifiers
Comparator = Tuple[str, Version]

_VERSION = re.compile(r"^[vV]?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_PARTIAL = re.compile(r"^[vV]?([0-9]+|[xX*])(?:\.([0-9]+|[xX*]))?(?:\.([0-9]+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")
_WILD = ("x", "X", "*", None)


class VersionRangeError(ValueError):
    """A version range this mirror cannot read."""


def parse_version(text: str) -> Optional[Version]:
    """A full semantic version (a leading v allowed), or None."""
    match = _VERSION.match(str(text).strip())
    if not match:
        return None
    pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split(".")) if match.group(4) else ()
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), pre


def _key(version: Version) -> Tuple[int, int, int, int, Tuple[Tuple[int, object], ...]]:
    """Sort key: a release after its pre-releases; numeric identifiers before alphanumeric ones."""
    major, minor, patch, pre = version
    ids = tuple((0, p) if isinstance(p, int) else (1, p) for p in pre)
    return major, minor, patch, 0 if pre else 1, ids


def is_range(text: str) -> bool:
    """Whether `text` is a range rather than one exact version."""
    return parse_version(text) is None


def _partial(text: str) -> Tuple[List[Optional[int]], Tuple[object, ...]]:
    match = _PARTIAL.match(text)
    if not match:
        raise VersionRangeError(f"{text!r} is not a version or a version range")
    parts = [None if p in _WILD else int(p) for p in match.group(1, 2, 3)]
    for index in range(1, 3):  # after a wildcard, everything is a wildcard
        if parts[index - 1] is None:
            parts[index] = None
    pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split(".")) if match.group(4) else ()
    return parts, pre


def _floor(parts: List[Optional[int]], pre: Tuple[object, ...]) -> Version:
    return parts[0] or 0, parts[1] or 0, parts[2] or 0, pre


def _bump(parts: List[Optional[int]], level: int) -> Version:
    """The first version past `parts` at `level` (0 major, 1 minor, 2 patch), as the exclusive upper bound."""
    values = [p or 0 for p in parts]
    values[level] += 1
    for index in range(level + 1, 3):
        values[index] = 0
    return values[0], values[1], values[2], (0,)  # below every pre-release of the bound itself


def _wildcard(parts: List[Optional[int]], pre: Tuple[object, ...]) -> List[Comparator]:
    known = sum(1 for p in parts if p is not None)
    if known == 0:
        return [(">=", (0, 0, 0, ()))]
    if known == 3:
        return [("=", _floor(parts, pre))]
    return [(">=", _floor(parts, pre)), ("<", _bump(parts, known - 1))]


def _caret(parts: List[Optional[int]], pre: Tuple[object, ...]) -> List[Comparator]:
    known = sum(1 for p in parts if p is not None)
    level = next((i for i, p in enumerate(parts) if p), known - 1 if known else 0)  # first non-zero part
    level = min(level, max(known - 1, 0))
    return [(">=", _floor(parts, pre)), ("<", _bump(parts, level))]


def _tilde(parts: List[Optional[int]], pre: Tuple[object, ...]) -> List[Comparator]:
    known = sum(1 for p in parts if p is not None)
    return [(">=", _floor(parts, pre)), ("<", _bump(parts, 0 if known == 1 else 1))]


def _comparators(term: str) -> List[Comparator]:
    match = re.match(r"^(\^|~>?|>=|<=|!=|=>|=<|>|<|=)?\s*(.+)$", term)
    if not match:
        raise VersionRangeError(f"{term!r} is not a version constraint")
    operator, parts_text = match.group(1) or "", match.group(2)
    parts, pre = _partial(parts_text)
    operator = {"=>": ">=", "=<": "<=", "~>": "~"}.get(operator, operator)
    if operator == "^":
        return _caret(parts, pre)
    if operator == "~":
        return _tilde(parts, pre)
    if operator in ("", "="):
        return _wildcard(parts, pre)
    if operator in (">", "<=") and None in parts:  # >1.2 means past every 1.2.x; <=1.2 includes them
        return [(">=" if operator == ">" else "<", _bump(parts, sum(1 for p in parts if p is not None) - 1))]
    return [(operator, _floor(parts, pre))]


def parse_range(text: str) -> List[List[Comparator]]:
    """Alternatives (`||`), each a list of comparators that must all hold."""
    alternatives = []
    for alternative in str(text).split("||"):
        tokens = re.sub(r"(\^|~>?|>=|<=|!=|=>|=<|>|<|=)\s+", r"\1", alternative.replace(",", " ")).split()
        if not tokens:
            raise VersionRangeError(f"{text!r}: an empty alternative")
        if "-" in tokens:
            raise VersionRangeError(f"{text!r}: hyphen ranges are not supported; write >=A <=B")
        alternatives.append([c for token in tokens for c in _comparators(token)])
    return alternatives


def _holds(operator: str, version: Version, bound: Version) -> bool:
    left, right = _key(version), _key(bound)
    return {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
    }[operator]


def satisfies(version: Version, alternatives: List[List[Comparator]]) -> bool:
    for comparators in alternatives:
        names_pre = any(bound[3] and bound[3] != (0,) for _op, bound in comparators)
        if version[3] and not names_pre:
            continue  # pre-releases only for a range that names one
        if all(_holds(op, version, bound) for op, bound in comparators):
            return True
    return False


def resolve_range(text: str, available: Iterable[str]) -> Optional[str]:
    """The newest of `available` (as they are spelled there) that `text` admits; None when none does."""
    alternatives = parse_range(text)
    best: Optional[Tuple[Version, str]] = None
    for candidate in available:
        version = parse_version(candidate)
        newer = version is not None and (best is None or _key(version) > _key(best[0]))
        if version is not None and newer and satisfies(version, alternatives):
            best = (version, candidate)
    return best[1] if best else None

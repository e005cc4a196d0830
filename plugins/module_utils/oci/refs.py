# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container image references: parse, normalise (`nginx` -> `docker.io/library/nginx:latest`), map.

Follows the Distribution reference grammar: the first path component is a registry host only when
it contains a `.` or a `:` or is `localhost`; Docker Hub single-component names live under `library/`.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}"
_HOST_RE = re.compile(rf"^{_HOST}$")
_REMAINDER = re.compile(rf"^(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")


class ImageRefError(ValueError):
    """A string that is not a valid image reference."""


class ImageRef(NamedTuple):
    """A normalised reference: registry host, repository path, tag and/or digest."""

    registry: str
    repository: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_name(self, registry: str, repository: str) -> ImageRef:
        return ImageRef(registry, repository, self.tag, self.digest)

    def pinned(self, digest: str) -> str:
        """name@digest (the tag dropped: a digest is what a runtime resolves when both are given)."""
        return f"{self.name}@{digest}"


def _split_host(text: str) -> tuple[Optional[str], str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return None, text


def parse_image(text: str, implicit_latest: bool = True) -> ImageRef:
    """Parse and normalise a reference; raises ImageRefError when it is not one.

    With `implicit_latest`, a reference without tag and digest gets `latest` (what a runtime does).
    """
    text = (text or "").strip()
    host, remainder = _split_host(text)
    match = _REMAINDER.match(remainder)
    if not match or (host is not None and not _HOST_RE.match(host)):
        raise ImageRefError(f"{text!r} is not a valid image reference")
    registry = (host or DOCKER_HUB).lower()
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    path = match.group("path")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    tag, digest = match.group("tag"), match.group("digest")
    if not tag and not digest and implicit_latest:
        tag = "latest"
    return ImageRef(registry, path, tag, digest)


def is_implicit_latest(text: str) -> bool:
    """True when the written reference names neither a tag nor a digest."""
    _host, remainder = _split_host(text.strip())
    last = remainder.rsplit("/", 1)[-1]
    return "@" not in last and ":" not in last


def looks_like_image(text: str) -> bool:
    """A cheap filter for env values and args: could this string name an image?

    Only candidates: they count once the source registry confirms the manifest exists.
    Requires an explicit tag or digest and either a registry host or a `/` (a bare `redis:6379`
    is more often a host:port than an image), and no scheme, spaces or uppercase path.
    """
    text = text.strip()
    if not text or len(text) > 512 or "://" in text or any(c.isspace() for c in text):
        return False
    host, remainder = _split_host(text)
    last = remainder.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        return False
    if host is None and "/" not in remainder:
        return False
    try:
        parse_image(text, implicit_latest=False)
    except ImageRefError:
        return False
    return True


def candidates_in_arg(arg: str) -> list[str]:
    """Image-looking parts of one command-line argument (`--image=x`, `x`, `a=x,b=y`)."""
    parts = [arg]
    if "=" in arg:
        parts = [p.split("=", 1)[1] if "=" in p else p for p in arg.split(",")]
    return [p for p in parts if looks_like_image(p)]


def map_repository(ref: ImageRef, prefix: str, keep_registry_host: bool) -> str:
    """Destination repository path: `<prefix>/<source host>/<path>` (or without the host).

    A port in the host becomes `_port` (`registry.example:5000` -> `registry.example_5000`): a
    repository path may not contain `:`.
    """
    host = ref.registry.replace(":", "_") if keep_registry_host else ""
    parts = [p.strip("/") for p in (prefix, host, ref.repository)]
    return "/".join(p for p in parts if p)


def rewrite_source(ref: ImageRef, rewrites: dict[str, str]) -> tuple[str, str]:
    """Where to pull `ref` from: (registry host, repository path) after a per-registry rewrite.

    `rewrites` maps an original registry (`docker.io`) to a location (`mirror.example:5000/docker.io`).
    """
    target = rewrites.get(ref.registry)
    if not target:
        return ref.registry, ref.repository
    host, _sep, base = target.strip("/").partition("/")
    return host, f"{base}/{ref.repository}" if base else ref.repository

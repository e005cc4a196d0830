# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module parameters as typed settings, built once at the module boundary; only these objects travel on.

`ImageMirrorSettings.from_params` and `ChartMirrorSettings.from_params` check what the argument spec cannot
(a destination with a path, a mode without its bundle, a bad image reference) and raise MirrorParamError
naming the parameter and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.mirror.artifacts import ARTIFACT_MODES
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import Endpoint, MirrorSettings
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import parse_image

DEFAULT_NODE_CA_PATH = "/etc/containerd/certs.d/site-ca.crt"


class MirrorParamError(ValueError):
    """A module parameter is unusable; the message names it and the fix."""


@dataclass(frozen=True)
class RegistryDestination:
    """The options of doc fragment `registry_destination` plus `ca_file`."""

    host: str
    username: Optional[str]
    password: Optional[str] = field(repr=False)
    prefix: str
    ca_file: Optional[str]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RegistryDestination:
        host = params.get("destination") or ""
        if "/" in host or "://" in host:
            raise MirrorParamError(f"destination {host!r} must be a registry host[:port]; put paths in prefix")
        return cls(
            host=host,
            username=params.get("destination_username"),
            password=params.get("destination_password"),
            prefix=params.get("prefix") or "",
            ca_file=params.get("ca_file"),
        )

    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.ca_file, self.username, self.password)


def _strings(values: Any) -> Tuple[str, ...]:
    return tuple(values or ())


def _dicts(values: Any) -> Tuple[Dict[str, Any], ...]:
    return tuple(dict(value) for value in values or ())


def _source_endpoints(credentials: Any) -> Dict[str, Endpoint]:
    """`source_credentials` by registry host."""
    return {
        cred["registry"]: Endpoint(cred["registry"], cred.get("ca_file"), cred.get("username"), cred.get("password"))
        for cred in credentials or ()
    }


def _check_source_rewrites(rewrites: Mapping[str, str]) -> None:
    for source, target in rewrites.items():
        if "://" in target or not target:
            raise MirrorParamError(f"source_rewrites[{source}]={target!r} must be host[:port][/path], no scheme")


@dataclass(frozen=True)
class ImageMirrorSettings:
    """What `image_mirror` was asked to do."""

    mode: str
    engine: MirrorSettings  # how the copy engine reaches the registries
    destination: RegistryDestination
    images: Tuple[str, ...]
    charts: Tuple[Dict[str, Any], ...]
    manifest_files: Tuple[str, ...]
    pod_spec_paths: Tuple[str, ...]
    image_fields: Tuple[str, ...]
    confirm_candidates: bool
    helm: str
    lock_file: Optional[str]
    verify: str
    bundle: Optional[str]
    bundle_archive: Optional[str]
    progress_file: Optional[str]
    output_dir: Optional[str]
    node_ca_path: str

    @property
    def ca_file(self) -> Optional[str]:
        return self.destination.ca_file

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ImageMirrorSettings:
        mode = params["mode"]
        if mode in ("direct", "import") and not params.get("destination"):
            raise MirrorParamError(f"mode={mode} needs destination (the internal registry host[:port])")
        if mode in ("export", "import", "verify_bundle") and not params.get("bundle"):
            raise MirrorParamError(f"mode={mode} needs bundle (a directory or .tar path)")
        images = _strings(params.get("images"))
        for image in images:
            parse_image(image)  # raises ImageRefError naming the bad reference
        artifacts = params.get("artifacts") or "all"
        if artifacts not in ARTIFACT_MODES:
            raise MirrorParamError(
                f"artifacts={artifacts!r} must be one of {', '.join(ARTIFACT_MODES)} (all copies signatures, "
                "attestations, SBOMs and referrers; signatures only cosign signatures; none nothing besides the image)"
            )
        rewrites = dict(params.get("source_rewrites") or {})
        _check_source_rewrites(rewrites)
        destination = RegistryDestination.from_params(params)
        engine = MirrorSettings(
            destination=destination.endpoint(),
            prefix=destination.prefix,
            keep_registry_host=params.get("keep_registry_host", True),
            source_rewrites=rewrites,
            credentials=_source_endpoints(params.get("source_credentials")),
            ca_file=destination.ca_file,
            platforms=list(params.get("platforms") or []),
            parallel=max(1, int(params.get("parallel") or 8)),
            refresh=bool(params.get("refresh", False)),
            artifacts=artifacts,
        )
        return cls(
            mode=mode,
            engine=engine,
            destination=destination,
            images=images,
            charts=_dicts(params.get("charts")),
            manifest_files=_strings(params.get("manifest_files")),
            pod_spec_paths=_strings(params.get("pod_spec_paths")),
            image_fields=_strings(params.get("image_fields")),
            confirm_candidates=bool(params.get("confirm_candidates", True)),
            helm=params.get("helm") or "helm",
            lock_file=params.get("lock_file"),
            verify=params.get("verify") or "receipt",
            bundle=params.get("bundle"),
            bundle_archive=params.get("bundle_archive"),
            progress_file=params.get("progress_file"),
            output_dir=params.get("output_dir"),
            node_ca_path=params.get("node_ca_path") or DEFAULT_NODE_CA_PATH,
        )


@dataclass(frozen=True)
class ChartMirrorSettings:
    """What `chart_mirror` was asked to do."""

    charts: Tuple[Dict[str, Any], ...]
    destination: RegistryDestination
    download_dir: Optional[str]
    packages_dir: Optional[str]
    helm: str
    lock_file: Optional[str]
    update_ranges: bool = False

    @property
    def ca_file(self) -> Optional[str]:
        return self.destination.ca_file

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ChartMirrorSettings:
        return cls(
            charts=_dicts(params.get("charts")),
            destination=RegistryDestination.from_params(params),
            download_dir=params.get("download_dir"),
            packages_dir=params.get("packages_dir"),
            helm=params.get("helm") or "helm",
            lock_file=params.get("lock_file"),
            update_ranges=bool(params.get("update_ranges", False)),
        )

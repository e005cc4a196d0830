# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make every container of a set of Kubernetes documents trust a private root CA.

A pure transform (no cluster access), used by the `ca_inject` module, the pipeline role's Helm 4
post-renderer and the benchmark:

1. `validate_cas` checks each CA input (PEM parses, is a CA, may sign certificates, is valid now);
2. `build_bundle` concatenates the system roots and the custom CAs: several variables below
   *replace* the default store, so a bundle with only the private CA would break public TLS;
3. `inject` patches every pod template (via `manifests.pod_specs`) per runtime and emits the
   ConfigMap and Secret carrying the bundle in every namespace involved;
4. `inject_manifest` does the same over multi-document YAML text (what `helm template` prints and a Helm
   post-renderer reads), parsing only the documents `inject` may change and writing the others back as
   their original text (`platform.manifest_stream`).

Applying `inject` to its own output returns the same documents. Null lists and maps (a template's
`initContainers:` or `env:` with nothing under it) count as empty, as Kubernetes reads them.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import gc
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import (
    POD_SPEC_PATHS,
    annotations_of,
    containers,
    document_name,
    is_helm_hook,
    list_field,
    metadata_of,
    pod_specs,
)
from ansible_collections.airgap.renku.plugins.module_utils.platform import manifest_stream
from ansible_collections.airgap.renku.plugins.module_utils.platform.release import release_digest

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported through missing_required_lib
    import traceback

    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

MOUNT_DIR = "/etc/airgap-ca"
BUNDLE_KEY = "ca-bundle.crt"
CUSTOM_KEY = "custom-ca.crt"
JAVA_SCRIPT_KEY = "build-java-truststore.sh"
BUNDLE_VOLUME = "airgap-ca-bundle"
JAVA_VOLUME = "airgap-ca-java"
JAVA_DIR = "/var/run/airgap-ca/java"
JAVA_INIT_PREFIX = "airgap-ca-java-"
MANAGED_BY = "airgap.renku.ca_inject"
ALWAYS_APPLY_ANNOTATION = "airgap.renku/always-apply"
SYSTEM_BUNDLE_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # SUSE
)

# runtime -> (variable, which file it points at). Go and OpenSSL read the same variable.
RUNTIME_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (("REQUESTS_CA_BUNDLE", BUNDLE_KEY),),
    "openssl": (("SSL_CERT_FILE", BUNDLE_KEY), ("CURL_CA_BUNDLE", BUNDLE_KEY)),
    "go": (("SSL_CERT_FILE", BUNDLE_KEY),),
    "git": (("GIT_SSL_CAINFO", BUNDLE_KEY),),
    # NODE_EXTRA_CA_CERTS adds to Node's built-in roots, so it gets only the custom CAs
    "node": (("NODE_EXTRA_CA_CERTS", CUSTOM_KEY),),
    "grpc": (("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", BUNDLE_KEY),),
    "pip": (("PIP_CERT", BUNDLE_KEY),),
    "aws": (("AWS_CA_BUNDLE", BUNDLE_KEY),),
    "java": (),  # handled with an init container and JAVA_TOOL_OPTIONS
}
ALL_RUNTIMES = tuple(RUNTIME_ENV)
DEFAULT_RUNTIMES = ("python", "openssl", "go", "git", "node", "grpc", "pip", "aws")
# images whose main process is a JVM; they get the Java trust store on top of the defaults
DEFAULT_JAVA_IMAGES = (
    r"(^|/)(eclipse-temurin|openjdk|amazoncorretto|ibm-semeru-runtimes|sapmachine|java|jre|jdk)[:@]",
    r"(^|/)keycloak(x)?[:@]",
    r"(^|/)(jenkins|elasticsearch|opensearch|kafka|zookeeper|solr|tomcat|jetty|sonarqube|nexus3)[:@/]",
)

# The script the Java init container runs (and that tests run with the machine's keytool): copy the
# image's own cacerts, import each custom CA, point JAVA_TOOL_OPTIONS at the result.
JAVA_TRUSTSTORE_SCRIPT = r"""#!/bin/sh
# Build a Java trust store: the image's own cacerts plus the custom CAs (airgap.renku.ca_inject).
set -eu
out="${AIRGAP_TRUSTSTORE:-/var/run/airgap-ca/java/cacerts}"
src="${AIRGAP_CUSTOM_CA:-/etc/airgap-ca/custom-ca.crt}"
pass="${AIRGAP_TRUSTSTORE_PASSWORD:-changeit}"
base=""
for c in "${JAVA_HOME:-/nonexistent}/lib/security/cacerts" "${JAVA_HOME:-/nonexistent}/jre/lib/security/cacerts" \
         /etc/ssl/certs/java/cacerts /opt/java/openjdk/lib/security/cacerts; do
  if [ -f "$c" ]; then base="$c"; break; fi
done
if [ -z "$base" ] && command -v java >/dev/null 2>&1; then
  home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  if [ -f "$home/lib/security/cacerts" ]; then base="$home/lib/security/cacerts"; fi
fi
mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
if [ -n "$base" ]; then cp "$base" "$out.tmp"; chmod u+w "$out.tmp"; fi
work="$(dirname "$out")/.import-$$"
mkdir -p "$work"
awk -v d="$work" '/-----BEGIN CERTIFICATE-----/ {n++; f=sprintf("%s/ca-%03d.crt", d, n)}
  f {print > f}
  /-----END CERTIFICATE-----/ {close(f); f=""}' "$src"
for f in "$work"/ca-*.crt; do
  [ -f "$f" ] || { echo "no certificate in $src" >&2; exit 1; }
  keytool -importcert -noprompt -alias "airgap-$(basename "$f" .crt)" -file "$f" \
    -keystore "$out.tmp" -storepass "$pass" >/dev/null
done
count="$(ls "$work" | wc -l)"
rm -rf "$work"
mv "$out.tmp" "$out"
echo "trust store $out: ${base:-new store} + $count custom CA(s)"
"""


class CAError(ValueError):
    """A CA input that must not be trusted; the message names the input and the fix."""


@dataclass
class CAInfo:
    source: str
    subject: str
    sha256: str
    not_after: str
    pem: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "subject": self.subject, "sha256": self.sha256, "not_after": self.not_after}


@dataclass
class InjectOptions:
    bundle_name: str = "airgap-ca-bundle"
    namespace: str = "default"
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    java_images: tuple[str, ...] = DEFAULT_JAVA_IMAGES
    selectors: list[dict[str, Any]] = field(default_factory=list)
    overwrite: bool = False
    extra_paths: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    extra_namespaces: tuple[str, ...] = ()
    emit_bundle: bool = True
    emit_secret: bool = True
    java_truststore_password: str = "changeit"
    mount_dir: str = MOUNT_DIR


# --------------------------------------------------------------------------------------------------
# CA validation


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)
_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def validate_cas(
    inputs: Iterable[tuple[str, str]], warn_days: int = 30, now: dt.datetime | None = None
) -> tuple[list[CAInfo], list[str]]:
    """Check each (source name, PEM text); return the accepted CAs and warnings. Raises CAError."""
    now = now or dt.datetime.now(dt.UTC)
    accepted: list[CAInfo] = []
    warnings: list[str] = []
    for source, text in inputs:
        blocks = list(_PEM_BLOCK.finditer(text or ""))
        if any("PRIVATE KEY" in b.group(1) for b in blocks):
            raise CAError(f"{source}: contains a private key; give the CA certificate only, never its key")
        certs = [b.group(0) for b in blocks if b.group(1) in ("CERTIFICATE", "TRUSTED CERTIFICATE")]
        if not certs:
            raise CAError(f"{source}: no PEM certificate found (expected '-----BEGIN CERTIFICATE-----')")
        for index, pem in enumerate(certs):
            name = source if len(certs) == 1 else f"{source} (certificate {index + 1})"
            info, warning = _check_ca(name, pem, warn_days, now)
            accepted.append(info)
            if warning:
                warnings.append(warning)
    if not accepted:
        raise CAError("no CA given: set at least one CA file or PEM")
    return accepted, warnings


def _check_ca(source: str, pem: str, warn_days: int, now: dt.datetime) -> tuple[CAInfo, str | None]:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CAError(f"{source}: the certificate does not parse ({exc})") from exc
    subject = cert.subject.rfc4514_string()
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise CAError(
            f"{source}: '{subject}' is not a CA (basicConstraints CA:TRUE missing); give the root or "
            "intermediate CA that signed it, not a server certificate"
        )
    warning = None
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise CAError(f"{source}: '{subject}' may not sign certificates (keyUsage lacks keyCertSign)")
    except x509.ExtensionNotFound:
        warning = f"{source}: '{subject}' has no keyUsage extension; accepted as a CA by basicConstraints"
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        raise CAError(f"{source}: '{subject}' is not valid before {not_before.isoformat()}")
    if now > not_after:
        raise CAError(f"{source}: '{subject}' expired on {not_after.isoformat()}; renew the CA first")
    if not_after - now < dt.timedelta(days=warn_days):
        days = (not_after - now).days
        warning = f"{source}: '{subject}' expires in {days} day(s) ({not_after.isoformat()}); plan its renewal"
    sha256 = cert.fingerprint(hashes.SHA256()).hex()
    clean = cert.public_bytes(serialization.Encoding.PEM).decode()
    return CAInfo(source, subject, sha256, not_after.isoformat(), clean), warning


# --------------------------------------------------------------------------------------------------
# bundle


def default_system_bundle() -> str | None:
    """The controller's system roots: certifi when installed, else the distribution's bundle."""
    try:
        import certifi

        return certifi.where()
    except ImportError:
        pass
    return next((p for p in SYSTEM_BUNDLE_CANDIDATES if os.path.isfile(p)), None)


def build_bundle(cas: list[CAInfo], system_pem: str) -> tuple[str, str]:
    """(full bundle, custom-only bundle); custom CAs already among the system roots are not repeated."""
    custom = "".join(_dedupe([ca.pem for ca in cas]))
    system_blocks = _certificate_blocks(system_pem)
    extra = [ca.pem for ca in cas if not _among(ca.pem, system_pem, system_blocks)]
    full = "".join(system_blocks) + "".join(_dedupe(extra))
    return full, custom


def _certificate_blocks(text: str) -> list[str]:
    """The CERTIFICATE blocks of a bundle (comments and other blocks dropped); string ops, no regex."""
    blocks = []
    for part in text.split(_END)[:-1]:
        start = part.find(_BEGIN)
        if start >= 0:
            blocks.append(part[start:] + _END + "\n")
    return blocks


def _among(pem: str, text: str, blocks: list[str]) -> bool:
    """Whether the certificate `pem` is one of `blocks` (cheap pre-check on its first base64 line)."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[1] not in text:
        return False
    wanted = _normalise(pem)
    return any(_normalise(block) == wanted for block in blocks if lines[1] in block)


def _normalise(pem: str) -> str:
    return "".join(pem.split())


def _dedupe(pems: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for pem in pems:
        key = _normalise(pem)
        if key not in seen:
            seen.add(key)
            out.append(pem if pem.endswith("\n") else pem + "\n")
    return out


def bundle_objects(full: str, custom: str, namespaces: Iterable[str], options: InjectOptions) -> list[dict]:
    """The ConfigMap (every runtime) and Secret (for consumers that only read Secrets) per namespace."""
    objects: list[dict] = []
    digest = hashlib.sha256((full + custom).encode()).hexdigest()[:16]
    for namespace in sorted(set(namespaces)):
        meta = {
            "name": options.bundle_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY.replace(".", "-")[:63]},
            "annotations": {ALWAYS_APPLY_ANNOTATION: "true", "airgap.renku/ca-bundle-digest": digest},
        }
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": copy.deepcopy(meta),
                "data": {BUNDLE_KEY: full, CUSTOM_KEY: custom, JAVA_SCRIPT_KEY: JAVA_TRUSTSTORE_SCRIPT},
            }
        )
        if options.emit_secret:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": copy.deepcopy(meta),
                    "data": {BUNDLE_KEY: _b64(full), CUSTOM_KEY: _b64(custom)},
                }
            )
    return objects


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------------------------------
# pod spec patching


def runtimes_for(document: dict, list_name: str, container: dict, options: InjectOptions) -> tuple[str, ...] | None:
    """Runtimes one container gets: the first matching selector decides, else the defaults.

    None means the container is excluded.
    """
    meta = metadata_of(document)
    facts = {  # a null field reads as ""
        "kind": document.get("kind") or "",
        "workload": meta.get("name") or "",
        "namespace": meta.get("namespace") or options.namespace,
        "container": container.get("name") or "",
        "image": container.get("image") or "",
    }
    for selector in options.selectors:
        if all(re.search(selector[key], facts[key]) for key in facts if selector.get(key) is not None):
            if selector.get("exclude"):
                return None
            return tuple(selector.get("runtimes") or ())
    if list_name == "ephemeralContainers":
        return None  # debug containers are added later by users; their spec cannot be patched in place
    runtimes = tuple(options.runtimes)
    if "java" not in runtimes and any(re.search(p, facts["image"]) for p in options.java_images):
        runtimes += ("java",)
    return runtimes


def _name(item: Any) -> str:
    """The name of a container, variable, mount or volume ("" for a null item or name)."""
    name = item.get("name") if isinstance(item, dict) else None
    return "" if name is None else str(name)


def _set_env(container: dict, name: str, value: str, overwrite: bool) -> str:
    """Set one variable; returns 'set', 'unchanged', 'kept' (an existing value that is not ours) or 'replaced'.

    A chart's own value is kept when it may hold the CA: it comes from elsewhere (`valueFrom`) or names a file
    on a volume the chart mounts (Renku's `/etc/ssl/certs`, which its init container fills with the custom CAs).
    A path into the image's own file system cannot hold a private CA, so it is replaced by ours.
    """
    env = list_field(container, "env")
    for item in env:
        if item and item.get("name") == name:  # a null item is skipped
            if item.get("value") == value and "valueFrom" not in item:
                return "unchanged"
            outcome = "set"
            if not overwrite:
                if "valueFrom" in item or not _names_image_file(container, item.get("value")):
                    return "kept"
                outcome = "replaced"
            item.pop("valueFrom", None)
            item["value"] = value
            return outcome
    env.append({"name": name, "value": value})
    return "set"


def _names_image_file(container: dict, value: Any) -> bool:
    """Whether `value` is an absolute path that no volume mount of the container provides."""
    if not isinstance(value, str) or not value.startswith("/"):
        return False
    for mount in container.get("volumeMounts") or []:
        path = str((mount or {}).get("mountPath") or "").rstrip("/")
        if path and (value == path or value.startswith(path + "/")):
            return False
    return True


def _ensure_mount(container: dict, name: str, path: str, read_only: bool = True) -> bool:
    mounts = list_field(container, "volumeMounts")
    wanted = {"name": name, "mountPath": path, "readOnly": read_only}
    for mount in mounts:
        if mount and mount.get("name") == name:
            if mount == wanted:
                return False
            mount.clear()
            mount.update(wanted)
            return True
    mounts.append(wanted)
    return True


def _ensure_volume(spec: dict, volume: dict) -> bool:
    volumes = list_field(spec, "volumes")
    for index, existing in enumerate(volumes):
        if existing and existing.get("name") == volume["name"]:
            if existing == volume:
                return False
            volumes[index] = volume
            return True
    volumes.append(volume)
    return True


def _java_paths(container_name: str) -> tuple[str, str]:
    directory = f"{JAVA_DIR}/{container_name}"
    return directory, f"{directory}/cacerts"


def _java_options(existing: str | None, store: str, password: str) -> str | None:
    """JAVA_TOOL_OPTIONS with our trust store appended; None when a trust store is already chosen."""
    flags = f"-Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStorePassword={password}"
    if not existing:
        return flags
    if "-Djavax.net.ssl.trustStore=" in existing:
        return None
    return f"{existing} {flags}"


def _bundle_env(options: InjectOptions) -> list[dict]:
    """The variables of the configured runtimes, each once, pointing into the mounted bundle."""
    env: dict[str, str] = {}
    for runtime in options.runtimes:
        for variable, key in RUNTIME_ENV.get(runtime, ()):
            env.setdefault(variable, f"{options.mount_dir}/{key}")
    return [{"name": name, "value": value} for name, value in env.items()]


def _java_init_container(container: dict, options: InjectOptions) -> dict:
    store = _java_paths(_name(container))[1]
    init = {
        "name": (JAVA_INIT_PREFIX + _name(container))[:63],
        "image": container.get("image") or "",
        "command": ["sh", f"{options.mount_dir}/{JAVA_SCRIPT_KEY}"],
        "env": [
            {"name": "AIRGAP_TRUSTSTORE", "value": store},
            {"name": "AIRGAP_CUSTOM_CA", "value": f"{options.mount_dir}/{CUSTOM_KEY}"},
            {"name": "AIRGAP_TRUSTSTORE_PASSWORD", "value": options.java_truststore_password},
            # like every other container: tools the image runs before the JVM trust the CA too
            *_bundle_env(options),
        ],
        "volumeMounts": [
            {"name": BUNDLE_VOLUME, "mountPath": options.mount_dir, "readOnly": True},
            {"name": JAVA_VOLUME, "mountPath": JAVA_DIR, "readOnly": False},
        ],
    }
    if container.get("imagePullPolicy"):
        init["imagePullPolicy"] = container["imagePullPolicy"]
    if container.get("securityContext"):
        init["securityContext"] = copy.deepcopy(container["securityContext"])
    return init


def _ensure_init_first(spec: dict, init: dict) -> bool:
    """Our Java init containers run before the chart's own (which may be Java too)."""
    inits = list_field(spec, "initContainers")
    for index, existing in enumerate(inits):
        if existing and existing.get("name") == init["name"]:
            if existing == init:
                return False
            inits[index] = init
            return True
    position = sum(1 for c in inits if _name(c).startswith(JAVA_INIT_PREFIX))
    inits.insert(position, init)
    return True


def patch_container(container: dict, runtimes: tuple[str, ...], options: InjectOptions) -> dict[str, Any]:
    """Env and mounts for one container; returns its report entry."""
    entry: dict[str, Any] = {
        "name": _name(container),
        "runtimes": list(runtimes),
        "set": [],
        "kept": [],
        "replaced": [],
    }
    changed = _ensure_mount(container, BUNDLE_VOLUME, options.mount_dir)
    done: set[str] = set()
    for runtime in runtimes:
        for variable, key in RUNTIME_ENV[runtime]:
            if variable in done:
                continue
            done.add(variable)
            outcome = _set_env(container, variable, f"{options.mount_dir}/{key}", options.overwrite)
            changed |= outcome in ("set", "replaced")
            if outcome == "kept":
                entry["kept"].append(variable)
            else:
                entry["set"].append(variable)
            if outcome == "replaced":
                entry["replaced"].append(variable)
    if "java" in runtimes:
        changed |= _patch_java_env(container, options, entry)
    entry["changed"] = changed
    return entry


def _patch_java_env(container: dict, options: InjectOptions, entry: dict[str, Any]) -> bool:
    directory, store = _java_paths(_name(container))
    env = list_field(container, "env")
    current = next((item for item in env if item and item.get("name") == "JAVA_TOOL_OPTIONS"), None)
    changed = _ensure_mount(container, JAVA_VOLUME, directory.rsplit("/", 1)[0])
    if current is not None and "valueFrom" in current and not options.overwrite:
        entry["kept"].append("JAVA_TOOL_OPTIONS")
        return changed
    existing = current.get("value") if current else None
    if existing and store in existing:
        entry["set"].append("JAVA_TOOL_OPTIONS")
        return changed
    wanted = _java_options(None if options.overwrite else existing, store, options.java_truststore_password)
    if wanted is None:
        entry["kept"].append("JAVA_TOOL_OPTIONS")
        return changed
    if current is None:
        env.append({"name": "JAVA_TOOL_OPTIONS", "value": wanted})
    else:
        current.pop("valueFrom", None)
        current["value"] = wanted
    entry["set"].append("JAVA_TOOL_OPTIONS")
    return True


def patch_pod_spec(document: dict, spec: dict, options: InjectOptions) -> tuple[list[dict], bool]:
    """Patch one pod spec in place; returns the per-container report and whether anything changed."""
    report: list[dict] = []
    changed = False
    java_containers: list[dict] = []
    ours = [c for c in spec.get("initContainers") or [] if _name(c).startswith(JAVA_INIT_PREFIX)]
    for list_name, container in list(containers(spec)):
        if any(container is own for own in ours):
            continue
        runtimes = runtimes_for(document, list_name, container, options)
        if not runtimes:
            continue
        entry = patch_container(container, runtimes, options)
        entry["list"] = list_name
        report.append(entry)
        changed |= entry.pop("changed")
        if "java" in runtimes:
            java_containers.append(container)
    if not report:
        return report, changed
    volume = {"name": BUNDLE_VOLUME, "configMap": {"name": options.bundle_name}}
    changed |= _ensure_volume(spec, volume)
    if java_containers:
        changed |= _ensure_volume(spec, {"name": JAVA_VOLUME, "emptyDir": {}})
        for container in java_containers:
            changed |= _ensure_init_first(spec, _java_init_container(container, options))
    return report, changed


def document_namespace(document: dict, default: str) -> str:
    return metadata_of(document).get("namespace") or default


def inject(documents: list[Any], cas: list[CAInfo], system_pem: str, options: InjectOptions) -> dict[str, Any]:
    """The whole transform: patched documents (copies), bundle objects and a per-workload report."""
    # the data is acyclic: collecting cycles while building 10k documents only costs time
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        return _inject(documents, cas, system_pem, options)
    finally:
        if gc_enabled:
            gc.enable()


def _inject(documents: list[Any], cas: list[CAInfo], system_pem: str, options: InjectOptions) -> dict[str, Any]:
    out_docs: list[Any] = []
    report: list[dict] = []
    namespaces: set[str] = set(options.extra_namespaces)
    modified = False
    for document in documents:
        if not isinstance(document, dict):
            out_docs.append(document)
            continue
        if _is_bundle_object(document, options):
            continue  # our own objects from an earlier pass: re-emitted below
        refs = list(pod_specs(document, options.extra_paths))
        if not refs:
            out_docs.append(document)  # nothing to patch, nothing copied
            continue
        doc = dict(document)
        for ref in refs:
            spec = _writable_spec(doc, tuple(ref.path.split(".")))
            entries, changed = patch_pod_spec(doc, spec, options)
            if not entries:
                continue
            modified |= changed
            namespace = document_namespace(doc, options.namespace)
            namespaces.add(namespace)
            report.append(
                {
                    "workload": document_name(doc),
                    "kind": doc.get("kind"),
                    "namespace": namespace,
                    "path": ref.path,
                    "hook": annotations_of(doc).get("helm.sh/hook") if is_helm_hook(doc) else None,
                    "containers": entries,
                    "changed": changed,
                }
            )
        out_docs.append(doc)
    bundle: list[dict] = []
    full = custom = ""
    if options.emit_bundle:
        full, custom = build_bundle(cas, system_pem)
        bundle = bundle_objects(full, custom, namespaces or {options.namespace}, options)
    return {
        "documents": out_docs,
        "bundle": bundle,
        "report": report,
        "modified": modified,
        "namespaces": sorted(namespaces or {options.namespace}),
    }


def _writable_spec(doc: dict, keys: tuple[str, ...]) -> dict:
    """Copy on write: the dicts from `doc` down to the pod spec, and what patching changes in the spec.

    The input documents are never modified, and the rest of each document is shared, not copied. A
    null list is not copied: `list_field` replaces it in the copied spec or container when needed.
    """
    node = doc
    for key in keys:
        node[key] = dict(node[key])
        node = node[key]
    for list_name in ("initContainers", "containers", "ephemeralContainers", "volumes"):
        if isinstance(node.get(list_name), list):
            node[list_name] = [_writable_container(c) if list_name != "volumes" else c for c in node[list_name]]
    return node


def _writable_container(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    copied = dict(container)
    for list_name in ("env", "volumeMounts"):
        if isinstance(copied.get(list_name), list):
            copied[list_name] = [dict(item) if isinstance(item, dict) else item for item in copied[list_name]]
    return copied


def manifest_kinds(options: InjectOptions) -> frozenset[str]:
    """The kinds `inject` may change or drop: those holding pod templates, and the kinds of the bundle objects."""
    return frozenset(POD_SPEC_PATHS) | frozenset(options.extra_paths) | {"ConfigMap", "Secret"}


def inject_manifest(
    text: str, cas: list[CAInfo], system_pem: str, options: InjectOptions, name: str = "manifest"
) -> dict[str, Any]:
    """`inject` over multi-document YAML text, reading only the documents of `manifest_kinds` (and unknown ones).

    Returns what `inject` returns, `documents` left empty, plus `manifest`: every document in input order (bundle
    objects of an earlier pass left out), each one `inject` did not change as its original text and each changed
    one dumped; and `parts`, the `manifest_stream.Part`s behind it (for `manifest_digest`).
    Raises kube_yaml.KubeYAMLError.
    """
    parts = [
        part
        for part in manifest_stream.read(text, manifest_kinds(options), name)
        if not (part.parsed and isinstance(part.document, dict) and _is_bundle_object(part.document, options))
    ]
    parsed = [part for part in parts if part.parsed]
    result = inject([part.document for part in parsed], cas, system_pem, options)
    # without bundle objects in its input, `inject` returns one document per input document, in order: the
    # input object itself when it has no pod template, else a copy, patched or not (hence the comparison)
    for part, document in zip(parsed, result["documents"], strict=True):
        if document is not part.document and document != part.document:
            part.document, part.dirty = document, True
    return {**result, "documents": [], "manifest": manifest_stream.emit(parts), "parts": parts}


def manifest_digest(bundle: list[dict], parts: list[manifest_stream.Part]) -> str:
    """SHA-256 of what `inject_manifest` returns: the bundle objects, then each document in order.

    A document counts by the text `inject_manifest` wrote for it, except a Secret, which counts as
    `release.release_digest` reads it: its values are left out because charts regenerate them on every render.
    Stable across identical runs; it differs from the digest of the same release read as documents.
    """
    hasher = hashlib.sha256(release_digest(bundle).encode())
    for part in parts:
        document = part.document
        if part.parsed and isinstance(document, dict) and document.get("kind") == "Secret":
            hasher.update(f"---\n# Secret {release_digest([document])}\n".encode())
        else:
            hasher.update(part.output.encode())
    return hasher.hexdigest()


def _is_bundle_object(document: dict, options: InjectOptions) -> bool:
    return (
        document.get("kind") in ("ConfigMap", "Secret")
        and metadata_of(document).get("name") == options.bundle_name
        and annotations_of(document).get(ALWAYS_APPLY_ANNOTATION) == "true"
    )


# --------------------------------------------------------------------------------------------------
# last resort for images where no variable works: bake the CA in


def image_build(
    image: str,
    target: str,
    custom_pem: str,
    kaniko_image: str,
    namespace: str,
    registry_secret: str,
    bundle_name: str,
    user: str | None = None,
) -> dict[str, Any]:
    """Dockerfile adding the CA with update-ca-certificates, and the kaniko Job that builds it."""
    digest = hashlib.sha256((image + target + custom_pem).encode()).hexdigest()[:10]
    name = re.sub(r"[^a-z0-9-]+", "-", f"ca-image-{target.rsplit('/', 1)[-1]}".lower()).strip("-")[:52]
    name = f"{name}-{digest[:6]}"
    lines = [
        f"FROM {image}",
        "USER root",
        f"COPY {CUSTOM_KEY} /usr/local/share/ca-certificates/airgap-custom-ca.crt",
        "RUN update-ca-certificates",
    ]
    if user:
        lines.append(f"USER {user}")
    dockerfile = "\n".join(lines) + "\n"
    context = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"Dockerfile": dockerfile, CUSTOM_KEY: custom_pem},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "kaniko",
                            "image": kaniko_image,
                            "args": [
                                "--context=dir:///workspace",
                                "--dockerfile=/workspace/Dockerfile",
                                f"--destination={target}",
                            ],
                            "volumeMounts": [
                                {"name": "context", "mountPath": "/workspace"},
                                {"name": "docker-config", "mountPath": "/kaniko/.docker"},
                                {
                                    "name": "ca",
                                    "mountPath": "/kaniko/ssl/certs/additional-ca-cert-bundle.crt",
                                    "subPath": CUSTOM_KEY,
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "context", "configMap": {"name": name}},
                        {
                            "name": "docker-config",
                            "secret": {
                                "secretName": registry_secret,
                                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                            },
                        },
                        {"name": "ca", "configMap": {"name": bundle_name}},
                    ],
                }
            },
        },
    }
    return {"image": image, "target": target, "dockerfile": dockerfile, "objects": [context, job]}

"""Seed the lab's "upstream" registry with small generated images and OCI Helm charts.

Upstream plays docker.io, quay.io, ghcr.io, gcr.io (and every other registry a chart names) at once: an
image `quay.io/keycloak/keycloak:26.0.7` lives at `<upstream>/quay.io/keycloak/keycloak:26.0.7`. Content is
generated deterministically (fixed mtimes, gzip without timestamps), so digests are the same on every
machine and every run, and seeding is idempotent: what is already there is not pushed again.

Images: IMAGES below, plus every image the charts of a Renku 2.19.3 install run (lab/upstream-images.yaml).
Artifacts: SIGNED images carry cosign's tag-scheme signature, attestation and SBOM (`sha256-<hex>.sig`, `.att`,
`.sbom`), signed with the lab's ECDSA P-256 key (pki/cosign.key, public half pki/cosign.pub); REFERRED images
carry OCI 1.1 referrers (an SPDX SBOM and a sigstore bundle, manifests with `subject`), listed in the referrers
tag fallback index `sha256-<hex>` as oras and regctl write it for a registry without the referrers API.
Charts: the generated `hello` chart at `oci://<upstream>/charts/hello`, and the real Bitnami packages from
shared/reference/charts where Bitnami and Renku publish them (REFERENCE_OCI_CHARTS), pushed with helm.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labcore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SPDX_JSON = "application/spdx+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class ImageSpec:
    ref: str  # as a chart would name it, e.g. docker.io/library/alpine:3.20
    platforms: tuple[str, ...] = ("linux/amd64",)
    base: str = "debian-lab-12"  # shared base layer
    docker_format: bool = False  # Docker schema 2 media types instead of OCI


IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("docker.io/library/alpine:3.20", ("linux/amd64", "linux/arm64"), base="alpine-lab"),
    ImageSpec(
        "docker.io/library/busybox:1.36",
        ("linux/amd64", "linux/arm64", "linux/arm/v7"),
        base="busybox-lab",
        docker_format=True,
    ),
    ImageSpec("docker.io/library/python:3.12-slim", ("linux/amd64", "linux/arm64")),
    ImageSpec("docker.io/library/node:20-slim"),
    ImageSpec("docker.io/library/golang:1.23"),
    ImageSpec("docker.io/library/eclipse-temurin:21-jre"),
    ImageSpec("docker.io/library/postgres:16", docker_format=True),
    ImageSpec("docker.io/bitnami/redis:7.2"),
    ImageSpec("docker.io/renku/renku-data-service:0.79.0"),
    ImageSpec("docker.io/renku/renku-ui:4.1.0"),
    ImageSpec("docker.io/renku/renku-gateway:1.5.0"),
    ImageSpec("docker.io/renku/secrets-storage:0.79.0"),
    ImageSpec("docker.io/renku/data-tasks:0.79.0"),
    ImageSpec("quay.io/keycloak/keycloak:26.0.7"),
    ImageSpec("quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", base="alpine-lab"),
    ImageSpec("ghcr.io/swissdatasciencecenter/amalthea-sessions:0.30.2"),
    ImageSpec("ghcr.io/swissdatasciencecenter/csi-rclone:0.6.0", base="alpine-lab"),
    ImageSpec("ghcr.io/swissdatasciencecenter/renku/session-base:py3.12", ("linux/amd64", "linux/arm64")),
    # the kaniko executor that project templates build their images with (renku role)
    ImageSpec("gcr.io/kaniko-project/executor:v1.23.2-debug", base="busybox-lab"),
)


UPSTREAM_IMAGES_FILE = Path(__file__).resolve().parent / "upstream-images.yaml"


def load_image_list(path: Path = UPSTREAM_IMAGES_FILE) -> tuple[ImageSpec, ...]:
    """The images of the Renku install's charts: `images: [{ref, platforms, docker_format?, base?}]`."""
    specs = []
    for entry in yaml.safe_load(path.read_text())["images"]:
        unknown = set(entry) - {"ref", "platforms", "docker_format", "base"}
        if unknown or ":" not in entry["ref"].rpartition("/")[2]:
            raise ValueError(f"{path.name}: bad entry {entry}")
        specs.append(
            ImageSpec(
                entry["ref"],
                tuple(entry.get("platforms") or ("linux/amd64",)),
                entry.get("base", "debian-lab-12"),
                bool(entry.get("docker_format", False)),
            )
        )
    refs = [spec.ref for spec in (*IMAGES, *specs)]
    if len(refs) != len(set(refs)):
        raise ValueError(f"{path.name}: an image is listed twice: {sorted({r for r in refs if refs.count(r) > 1})}")
    return tuple(specs)


UPSTREAM_IMAGES: tuple[ImageSpec, ...] = load_image_list()

# images of the Renku install (lab/upstream-images.yaml) that carry artifacts, so the mirror stage copies them
SIGNED: tuple[str, ...] = ("docker.io/renku/renku-data-service:0.80.1", "docker.io/authzed/spicedb:v1.30.0")
REFERRED: tuple[str, ...] = ("docker.io/renku/renku-ui:4.27.2", "docker.io/authzed/spicedb:v1.30.0")
SIGNING_KEY = Path("pki") / "cosign.key"  # under the lab state directory
SIGNING_PUBLIC_KEY = Path("pki") / "cosign.pub"


@dataclass(frozen=True)
class ChartSpec:
    name: str
    version: str
    images: tuple[str, ...]
    kinds: tuple[str, ...] = ("Deployment",)


# generated charts at oci://<upstream>/charts/<name> (the real Renku charts come from the lab's classic
# chart repository, lab/components/chartrepo.py)
CHARTS: tuple[ChartSpec, ...] = (ChartSpec("hello", "0.1.0", ("docker.io/library/busybox:1.36",)),)

# real packages from shared/reference/charts, pushed as they are to oci://<upstream>/<path>: where Bitnami
# publishes them (registry-1.docker.io/bitnamicharts, played by docker.io/bitnamicharts) and the mirror
# renku 2.19.3's dependencies name (oci://harbor.renkulab.io/bitnami-mirror)
REFERENCE_OCI_CHARTS: dict[str, tuple[str, ...]] = {
    "docker.io/bitnamicharts": (
        "postgresql-14.2.4.tgz",
        "redis-20.3.0.tgz",
        "solr-8.9.2.tgz",
        "zookeeper-12.10.1.tgz",
        "common-2.16.1.tgz",
        "common-2.27.0.tgz",
        "common-2.31.10.tgz",
    ),
    "harbor.renkulab.io/bitnami-mirror": ("postgresql-14.2.4.tgz", "redis-20.3.0.tgz", "solr-8.9.2.tgz"),
}


def split_ref(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return repo, tag


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A deterministic gzipped tar layer; returns (compressed bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(files[path]), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(files[path]))
    uncompressed = raw.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(uncompressed)
    return out.getvalue(), _sha(uncompressed)


class Registry:
    """The few Distribution API calls seeding needs."""

    def __init__(self, host: str, ca: str, auth: tuple[str, str] | None = None) -> None:
        self.base, self.session = f"https://{host}/v2", requests.Session()
        self.session.verify, self.session.auth = ca, auth
        # REQUESTS_CA_BUNDLE in the environment would otherwise override `verify` silently.
        self.session.trust_env = False

    def has_manifest(self, repo: str, ref: str) -> bool:
        accept = ",".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
        return (
            self.session.head(f"{self.base}/{repo}/manifests/{ref}", headers={"Accept": accept}, timeout=30).status_code
            == 200
        )

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = _sha(data)
        if self.session.head(f"{self.base}/{repo}/blobs/{digest}", timeout=30).status_code == 200:
            return digest
        start = self.session.post(f"{self.base}/{repo}/blobs/uploads/", timeout=30)
        start.raise_for_status()
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"{self.base.rsplit('/v2', 1)[0]}{location}"
        self.session.put(
            f"{url}{sep}digest={digest}", data=data, timeout=60, headers={"Content-Type": "application/octet-stream"}
        ).raise_for_status()
        return digest

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str] | None:
        """Body and media type of a manifest, or None when it is not there."""
        accept = ",".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
        resp = self.session.get(f"{self.base}/{repo}/manifests/{ref}", headers={"Accept": accept}, timeout=30)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        body = resp.content
        return body, json.loads(body).get("mediaType") or resp.headers["Content-Type"]

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        self.session.put(
            f"{self.base}/{repo}/manifests/{ref}", data=body, timeout=30, headers={"Content-Type": media_type}
        ).raise_for_status()
        return _sha(body)


def _image_manifest(reg: Registry, spec: ImageSpec, repo: str, platform: str) -> tuple[bytes, str]:
    os_name, arch, *variant = platform.split("/")
    base_blob, base_diff = _layer(
        {f"etc/{spec.base}-release": f"{spec.base} {arch}\n".encode(), "etc/os-release": f"ID={spec.base}\n".encode()}
    )
    app_blob, app_diff = _layer({f"opt/{repo.replace('/', '_')}/VERSION": f"{spec.ref} {platform}\n".encode()})
    config = {
        "architecture": arch,
        "os": os_name,
        **({"variant": variant[0]} if variant else {}),
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.opencontainers.image.source": spec.ref},
        },
        "rootfs": {"type": "layers", "diff_ids": [base_diff, app_diff]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "lab base"},
            {"created": "1970-01-01T00:00:00Z", "created_by": "lab app"},
        ],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    layer_type, config_type = (DOCKER_LAYER, DOCKER_CONFIG) if spec.docker_format else (OCI_LAYER, OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if spec.docker_format else OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": reg.put_blob(repo, config_bytes), "size": len(config_bytes)},
        "layers": [
            {"mediaType": layer_type, "digest": reg.put_blob(repo, blob), "size": len(blob)}
            for blob in (base_blob, app_blob)
        ],
    }
    return json.dumps(manifest, sort_keys=True).encode(), manifest["mediaType"]


def push_image(reg: Registry, spec: ImageSpec) -> bool:
    repo, tag = split_ref(spec.ref)
    if reg.has_manifest(repo, tag):
        return False
    if len(spec.platforms) == 1:
        body, media = _image_manifest(reg, spec, repo, spec.platforms[0])
        reg.put_manifest(repo, tag, body, media)
        return True
    entries = []
    for platform in spec.platforms:
        body, media = _image_manifest(reg, spec, repo, platform)
        digest = reg.put_manifest(repo, _sha(body), body, media)
        os_name, arch, *variant = platform.split("/")
        plat = {"architecture": arch, "os": os_name, **({"variant": variant[0]} if variant else {})}
        entries.append({"mediaType": media, "digest": digest, "size": len(body), "platform": plat})
    index_type = DOCKER_LIST if spec.docker_format else OCI_INDEX
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}, sort_keys=True).encode()
    reg.put_manifest(repo, tag, index, index_type)
    return True


def chart_files(spec: ChartSpec) -> dict[str, str]:
    """A small, valid chart whose workloads use the given images."""
    files = {
        "Chart.yaml": f'apiVersion: v2\nname: {spec.name}\nversion: {spec.version}\nappVersion: "{spec.version}"\n'
        f"description: Lab test chart named like the upstream {spec.name}\ntype: application\n",
        "values.yaml": "replicaCount: 1\nimages:\n" + "".join(f"  - {img}\n" for img in spec.images),
    }
    for kind in spec.kinds:
        replicas = "  replicas: {{ .Values.replicaCount }}\n" if kind == "Deployment" else ""
        files[f"templates/{kind.lower()}.yaml"] = (
            f"apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {{{{ .Release.Name }}}}-{spec.name}\n"
            f"  labels:\n    app.kubernetes.io/name: {spec.name}\nspec:\n{replicas}"
            f"  selector:\n    matchLabels:\n      app.kubernetes.io/name: {spec.name}\n"
            f"  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {spec.name}\n"
            "    spec:\n      containers:\n"
            "{{- range $i, $img := .Values.images }}\n"
            "        - name: c{{ $i }}\n          image: {{ $img }}\n"
            "{{- end }}\n"
        )
    files["templates/configmap.yaml"] = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{spec.name}-info\n"
        f"data:\n  chart: {spec.name}-{spec.version}\n"
    )
    return files


def push_chart(reg: Registry, spec: ChartSpec, env: dict[str, str], upstream: str) -> bool:
    if reg.has_manifest(f"charts/{spec.name}", spec.version.replace("+", "_")):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / spec.name
        for rel, text in chart_files(spec).items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(text)
        helm_env = {**os.environ, **helm_home(Path(env["LAB_STATE"]))}
        subprocess.run([env["HELM"], "package", str(src), "-d", tmp], check=True, capture_output=True, env=helm_env)
        pkg = Path(tmp) / f"{spec.name}-{spec.version}.tgz"
        subprocess.run(
            [env["HELM"], "push", str(pkg), f"oci://{upstream}/charts", "--ca-file", env["LAB_CA"]],
            check=True,
            capture_output=True,
            env=helm_env,
        )
    return True


def package_name_version(package: Path) -> tuple[str, str]:
    """Name and version from a chart package's top-level Chart.yaml."""
    with tarfile.open(package, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                meta = yaml.safe_load(tar.extractfile(member).read())  # type: ignore[union-attr]
                return str(meta["name"]), str(meta["version"])
    raise ValueError(f"{package}: no Chart.yaml")


def push_reference_chart(reg: Registry, package: Path, path: str, env: dict[str, str], upstream: str) -> bool:
    """`helm push` a real package to oci://<upstream>/<path>/<name>:<version>, unless it is there already."""
    name, version = package_name_version(package)
    if reg.has_manifest(f"{path}/{name}", version.replace("+", "_")):
        return False
    helm_env = {**os.environ, **helm_home(Path(env["LAB_STATE"]))}
    subprocess.run(
        [env["HELM"], "push", str(package), f"oci://{upstream}/{path}", "--ca-file", env["LAB_CA"]],
        check=True,
        capture_output=True,
        env=helm_env,
    )
    return True


def helm_home(state: Path) -> dict[str, str]:
    """Keep the lab's Helm cache and registry config inside the lab state, away from the user's."""
    home = state / "helm"
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_REGISTRY_CONFIG": str(home / "registry.json"),
    }


# --------------------------------------------------------------------------------------------------
# signatures, attestations, SBOMs and referrers


def signing_key(state: Path) -> ec.EllipticCurvePrivateKey:
    """The lab's cosign-style signing key (ECDSA P-256), made once; the public half beside it."""
    path = state / SIGNING_KEY
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        labcore.write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not (state / SIGNING_PUBLIC_KEY).exists() or (state / SIGNING_PUBLIC_KEY).read_bytes() != public:
        labcore.write_public(state / SIGNING_PUBLIC_KEY, public)
    return key


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """Base64 of the DER ECDSA-SHA256 signature over `data`, as cosign writes it."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def simplesigning_payload(docker_reference: str, digest: str) -> bytes:
    """The payload cosign signs for an image: its repository and manifest digest."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def _dsse_envelope(key: ec.EllipticCurvePrivateKey, statement: bytes) -> bytes:
    """A DSSE envelope over an in-toto statement (the signature covers the pre-authentication encoding)."""
    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
    envelope = {
        "payloadType": IN_TOTO,
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": _sign(key, pae)}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _spdx(name: str, digest: str) -> bytes:
    return json.dumps(
        {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": name,
            "documentNamespace": f"https://lab.invalid/spdx/{digest}",
            "creationInfo": {"created": "1970-01-01T00:00:00Z", "creators": ["Tool: airgap-renku-lab"]},
            "packages": [
                {"SPDXID": "SPDXRef-image", "name": name, "versionInfo": digest, "downloadLocation": "NOASSERTION"}
            ],
        },
        sort_keys=True,
    ).encode()


def _cosign_manifest(reg: Registry, repo: str, layer: bytes, media_type: str, annotations: dict[str, str]) -> bytes:
    """An image manifest as cosign writes for .sig/.att/.sbom tags: one layer, a config naming it."""
    layer_digest = reg.put_blob(repo, layer)
    config = json.dumps(
        {
            "architecture": "",
            "os": "",
            "created": "1970-01-01T00:00:00Z",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": reg.put_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": media_type, "digest": layer_digest, "size": len(layer), "annotations": annotations}],
    }
    return json.dumps(manifest, sort_keys=True).encode()


def cosign_artifacts(reg: Registry, ref: str, key: ec.EllipticCurvePrivateKey, digest: str) -> dict[str, bytes]:
    """The .sig, .att and .sbom manifests of the image `ref` at `digest` (their blobs pushed)."""
    repo, _tag = split_ref(ref)
    payload = simplesigning_payload(ref.rpartition(":")[0], digest)
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": repo, "digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicate": {"builder": {"id": "https://lab.invalid/airgap-renku-lab"}, "buildType": "lab-seed"},
        },
        sort_keys=True,
    ).encode()
    return {
        ".sig": _cosign_manifest(reg, repo, payload, COSIGN_SIMPLESIGNING, {COSIGN_SIGNATURE: _sign(key, payload)}),
        ".att": _cosign_manifest(
            reg,
            repo,
            _dsse_envelope(key, statement),
            DSSE_ENVELOPE,
            {COSIGN_SIGNATURE: "", "predicateType": "https://slsa.dev/provenance/v0.2"},
        ),
        ".sbom": _cosign_manifest(reg, repo, _spdx(ref, digest), "text/spdx+json", {}),
    }


def push_cosign_artifacts(reg: Registry, ref: str, key: ec.EllipticCurvePrivateKey) -> int:
    """Sign `ref` cosign-style (tag scheme) unless its .sig/.att/.sbom tags exist; returns tags pushed."""
    repo, tag = split_ref(ref)
    found = reg.get_manifest(repo, tag)
    if found is None:
        raise SystemExit(f"seed: {ref} is not in the upstream registry")
    digest = _sha(found[0])
    prefix = digest.replace(":", "-")
    missing = [suffix for suffix in (".sig", ".att", ".sbom") if not reg.has_manifest(repo, prefix + suffix)]
    if not missing:
        return 0
    bodies = cosign_artifacts(reg, ref, key, digest)
    for suffix in missing:
        reg.put_manifest(repo, prefix + suffix, bodies[suffix], OCI_MANIFEST)
    return len(missing)


def _referrer(reg: Registry, repo: str, subject: dict, artifact_type: str, content: bytes) -> tuple[bytes, dict]:
    """An OCI 1.1 artifact manifest about `subject` and its descriptor for the referrers index."""
    empty = reg.put_blob(repo, b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": reg.put_blob(repo, content), "size": len(content)}],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"},
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "digest": _sha(body),
        "size": len(body),
        "annotations": manifest["annotations"],
    }
    return body, descriptor


def _sigstore_bundle(key: ec.EllipticCurvePrivateKey, subject_body: bytes) -> bytes:
    """A sigstore-style bundle with a message signature over the subject manifest."""
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": base64.b64encode(hashlib.sha256(public).digest()).decode()}},
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(hashlib.sha256(subject_body).digest()).decode(),
            },
            "signature": _sign(key, subject_body),
        },
    }
    return json.dumps(bundle, sort_keys=True).encode()


def push_referrers(reg: Registry, ref: str, key: ec.EllipticCurvePrivateKey) -> int:
    """An SPDX SBOM and a sigstore bundle referring to `ref`, and the fallback tag index listing them
    (upstream runs distribution 2.8, which has no referrers API); returns manifests pushed."""
    repo, tag = split_ref(ref)
    found = reg.get_manifest(repo, tag)
    if found is None:
        raise SystemExit(f"seed: {ref} is not in the upstream registry")
    body, media_type = found
    digest = _sha(body)
    fallback = digest.replace(":", "-")
    index_found = reg.get_manifest(repo, fallback)
    index = json.loads(index_found[0]) if index_found else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    have = {d.get("artifactType") for d in index["manifests"]}
    subject = {"mediaType": media_type, "digest": digest, "size": len(body)}
    pushed = 0
    for artifact_type, content in ((SPDX_JSON, _spdx(ref, digest)), (SIGSTORE_BUNDLE, _sigstore_bundle(key, body))):
        if artifact_type in have:
            continue
        manifest, descriptor = _referrer(reg, repo, subject, artifact_type, content)
        reg.put_manifest(repo, descriptor["digest"], manifest, OCI_MANIFEST)
        index["manifests"].append(descriptor)
        pushed += 1
    if pushed:
        reg.put_manifest(repo, fallback, json.dumps(index, sort_keys=True).encode(), OCI_INDEX)
    return pushed


def seed_artifacts(reg: Registry, state: Path) -> int:
    key = signing_key(state)
    return sum(push_cosign_artifacts(reg, ref, key) for ref in SIGNED) + sum(
        push_referrers(reg, ref, key) for ref in REFERRED
    )


def seed_upstream(env: dict[str, str]) -> dict[str, int]:
    upstream = env["REGISTRY_UPSTREAM"]
    reg = Registry(upstream, env["LAB_CA"])
    images = sum(push_image(reg, spec) for spec in (*IMAGES, *UPSTREAM_IMAGES))
    charts = sum(push_chart(reg, spec, env, upstream) for spec in CHARTS)
    charts += sum(
        push_reference_chart(reg, labcore.reference_package(name, "seed"), path, env, upstream)
        for path, names in REFERENCE_OCI_CHARTS.items()
        for name in names
    )
    artifacts = seed_artifacts(reg, Path(env["LAB_STATE"]))
    return {"images_pushed": images, "charts_pushed": charts, "artifacts_pushed": artifacts}

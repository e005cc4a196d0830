"""image_mirror, chart_mirror and the mirror role against the lab's real registries and Helm.

Destructive cases (a registry killed mid-copy, a fresh registry for a bundle import) use private
`docker-registry` daemons on their own ports, started and stopped here.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.mirror.bundle import (
    export_bundle,
    export_space_needs,
    import_bundle,
    unpack_bundle,
    unpack_space_needs,
    verify_bundle,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import ChartMirrorError
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import (
    Endpoint,
    MirrorSettings,
    RegistryPool,
    mirror_images,
    plan_images,
    verify_image,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
    confirm_candidates,
    discover,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.disk import DiskSpaceError, free_bytes
from ansible_collections.airgap.renku.plugins.module_utils.mirror.receipt import Receipt, receipt_repository
from ansible_collections.airgap.renku.plugins.module_utils.mirror.run import run, run_charts
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import (
    ChartMirrorSettings,
    ImageMirrorSettings,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import OCI_MANIFEST
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    Manifest,
    Registry,
    RegistryError,
    Transport,
    sha256_digest,
    stream_blob,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
import labcore  # noqa: E402
from playbook import converge  # noqa: E402

LAB_IMAGES = [
    "docker.io/library/alpine:3.20",  # OCI index, 2 platforms
    "docker.io/library/busybox:1.36",  # Docker manifest list, 3 platforms
    "docker.io/library/postgres:16",  # Docker schema 2, single
    "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
    "ghcr.io/swissdatasciencecenter/renku/session-base:py3.12",
]
KILL_PORT, BUNDLE_PORT, CHART_SRC_PORT, KILL_SRC_PORT, ROLE_IMPORT_PORT, RECEIPT_PORT = (
    5071,
    5072,
    5073,
    5074,
    5075,
    5076,
)
TOKEN_REGISTRY_PORT, TOKEN_ISSUER_PORT, REDIRECT_REGISTRY_PORT, STORAGE_PORT = 5077, 5078, 5079, 5080
DISK_PORT = 5091
PROGRESS_SRC_PORT, PROGRESS_DST_PORT, RANGE_SRC_PORT = 5092, 5093, 5094


def rewrites(upstream: str) -> dict[str, str]:
    return {host: f"{upstream}/{host}" for host in ("docker.io", "quay.io", "ghcr.io")}


def settings(lab_env: dict, destination: str, prefix: str, auth: bool = True, **extra) -> MirrorSettings:
    return MirrorSettings(
        destination=Endpoint(
            destination,
            lab_env["LAB_CA"],
            lab_env["REGISTRY_INTERNAL_USER"] if auth else None,
            lab_env["REGISTRY_INTERNAL_PASSWORD"] if auth else None,
        ),
        prefix=prefix,
        source_rewrites=rewrites(lab_env["REGISTRY_UPSTREAM"]),
        ca_file=lab_env["LAB_CA"],
        **extra,
    )


class PrivateRegistry:
    """A docker-registry of our own (TLS from the lab CA), to kill or to start empty."""

    def __init__(self, name: str, port: int, root: Path, auth: bool) -> None:
        ca = labcore.LabCA(labcore.PKI)
        self.daemon = labcore.registry_daemon(ca, name, port, auth=auth, root=root)
        self.host = f"127.0.0.1:{port}"

    def start(self) -> PrivateRegistry:
        self.daemon.start()
        labcore.wait_healthy([self.daemon], timeout=30)
        return self

    def kill(self) -> None:
        pid = self.daemon.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            while labcore.process_runs(pid, self.daemon.argv[0]):
                labcore._reap(pid)
                time.sleep(0.05)
        self.daemon.pidfile.unlink(missing_ok=True)

    def stop(self) -> None:
        self.daemon.stop()


@pytest.fixture
def private_registry(tmp_path):
    started: list[PrivateRegistry] = []

    def make(name: str, port: int, auth: bool = True) -> PrivateRegistry:
        reg = PrivateRegistry(f"{name}-{os.getpid()}", port, tmp_path / name, auth).start()
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


class TokenIssuer:
    """The Docker token protocol's issuer, as Harbor, GitLab or Quay run one beside their registry:
    checks Basic credentials and answers an ES256 JWT (signed with a lab-CA certificate, sent in
    `x5c`) granting the scopes asked for. It counts what it was asked."""

    def __init__(self, port: int, user: str, password: str) -> None:
        import base64
        import functools
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        from cryptography.x509 import load_pem_x509_certificate

        ca = labcore.LabCA(labcore.PKI)
        serving = ca.issue("mirror-token-issuer", "127.0.0.1", ["127.0.0.1"])
        signer_crt, signer_key = ca.issue("mirror-token-signer", "lab token signer")
        key = serialization.load_pem_private_key(signer_key.read_bytes(), None)
        der = load_pem_x509_certificate(signer_crt.read_bytes()).public_bytes(serialization.Encoding.DER)
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[list[str]] = []
        issuer = self

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        def token(service: str, scopes: list[str]) -> str:
            access = []
            for scope in scopes:
                kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
                if kind == "repository" and name:
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
            claims = {"iss": "lab-token-issuer", "sub": user, "aud": service, "exp": now + 300, "nbf": now - 10,
                      "iat": now, "jti": uuid.uuid4().hex, "access": access}  # fmt: skip
            signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
            r, s_ = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
            return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s_.to_bytes(32, 'big'))}"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                scopes = [part for value in query.get("scope", []) for part in value.split(" ") if part]
                issuer.requests.append(scopes)
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": token(query.get("service", [""])[0], scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                return None

        self.server = labcore.use_tls(ThreadingHTTPServer(("127.0.0.1", port), Handler), *serving)
        self.realm = f"https://127.0.0.1:{port}/token"
        self.thread = threading.Thread(target=functools.partial(self.server.serve_forever, 0.1), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry(lab_env, tmp_path):
    """A docker-registry with token auth (realm: a TokenIssuer), TLS from the lab CA."""
    issuer = TokenIssuer(TOKEN_ISSUER_PORT, lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"])
    ca = labcore.LabCA(labcore.PKI)
    daemon = labcore.registry_daemon(ca, f"mirror-token-{os.getpid()}", TOKEN_REGISTRY_PORT, False, tmp_path / "reg")
    config_path = Path(daemon.argv[-1])
    config = yaml.safe_load(config_path.read_text())
    config["auth"] = {
        "token": {
            "realm": issuer.realm,
            "service": "lab-token-registry",
            "issuer": "lab-token-issuer",
            "rootcertbundle": lab_env["LAB_CA"],
        }
    }
    config_path.write_text(yaml.safe_dump(config))
    daemon.start()
    try:
        labcore.wait_healthy([daemon], timeout=30)
        yield f"127.0.0.1:{TOKEN_REGISTRY_PORT}", issuer
    finally:
        daemon.stop()
        issuer.stop()


def pusher(host: str, lab_env: dict) -> Registry:
    """A client for `host` with the lab's pushing account and CA."""
    return Registry(host, lab_env["LAB_CA"], lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"])


def _chunks(seed: int, size: int, chunk: int = 1 << 20):
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def push_generated_image(reg: Registry, repo: str, tag: str, layer_sizes: list[int], seed: int) -> str:
    """An image whose layers are generated streams (never held whole in memory)."""
    layers = []
    for i, size in enumerate(layer_sizes):
        hasher = hashlib.sha256()
        for part in _chunks(seed * 100 + i, size):
            hasher.update(part)
        digest = "sha256:" + hasher.hexdigest()
        if not reg.has_blob(repo, digest):
            reg.upload_blob(repo, digest, _chunks(seed * 100 + i, size))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    config_digest = sha256_digest(config)
    reg.upload_blob(repo, config_digest, [config])
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    return reg.put_manifest(repo, tag, Manifest(body, OCI_MANIFEST, sha256_digest(body)))


def _index_children(reg: Registry, repo: str, ref: str) -> tuple[str, list[str]]:
    top = reg.get_manifest(repo, ref)
    assert top is not None
    children = [m["digest"] for m in top.json().get("manifests", [])]
    return top.digest, children


# --------------------------------------------------------------------------------------------------


def test_multi_arch_digests_identical_and_rerun_copies_nothing(lab_env):
    prefix = f"test-mirror-{uuid.uuid4().hex[:8]}"
    conf = settings(lab_env, lab_env["REGISTRY_INTERNAL"], prefix)
    first = mirror_images(LAB_IMAGES, conf)
    assert first.errors == []
    assert first.stats.images_copied == len(LAB_IMAGES)
    assert first.stats.blobs_mounted > 0  # shared base layers crossed repositories by mount, not by copy

    upstream = Registry(lab_env["REGISTRY_UPSTREAM"], lab_env["LAB_CA"])
    internal = pusher(lab_env["REGISTRY_INTERNAL"], lab_env)
    for image in ("docker.io/library/alpine:3.20", "docker.io/library/busybox:1.36"):
        path, tag = image.rsplit(":", 1)
        src_digest, src_children = _index_children(upstream, path, tag)
        dst_digest, dst_children = _index_children(internal, f"{prefix}/{path}", tag)
        assert (dst_digest, dst_children) == (src_digest, src_children)
        assert len(dst_children) >= 2
        for child in dst_children:  # every platform manifest is there under its own digest
            assert internal.manifest_digest(f"{prefix}/{path}", child) == child

    lock = first.lock()
    again = mirror_images(LAB_IMAGES, conf, previous_lock=lock)
    assert again.errors == []
    assert (again.stats.images_copied, again.stats.blobs_copied, again.stats.bytes_copied) == (0, 0, 0)
    assert again.stats.images_present == len(LAB_IMAGES)
    # without the lock file the rerun still copies nothing (it compares digests at the destination)
    cold_plan = mirror_images(LAB_IMAGES, conf, verify_all=True)
    assert cold_plan.stats.images_copied == 0 and cold_plan.errors == []


def test_receipt_makes_a_pinned_rerun_one_request_and_tags_mode_repairs(lab_env, private_registry, monkeypatch):
    dest = private_registry("mirror-receipt-dst", RECEIPT_PORT)
    conf = settings(lab_env, dest.host, "site")
    images = LAB_IMAGES[:3]
    first = mirror_images(images, conf)
    assert first.errors == [] and first.stats.receipt == "written"
    lock = first.lock()
    pairs = {(e["destination"], e["digest"]) for e in lock["images"]}

    # the receipt is a real artifact at the destination, and its config lists exactly the set
    internal = pusher(dest.host, lab_env)
    receipt = Receipt(receipt_repository("site"), sorted(pairs), [])
    stored = internal.get_manifest(receipt.repository, receipt.tag)
    assert stored is not None and stored.digest == receipt.manifest.digest
    config = internal.open_blob(receipt.repository, stored.json()["config"]["digest"]).json()
    assert {(i["destination"], i["digest"]) for i in config["images"]} == pairs

    calls: list[tuple[str, str]] = []
    send = Transport.send

    def counting(self, method, url, *args, **kwargs):
        calls.append((method, url))
        return send(self, method, url, *args, **kwargs)

    monkeypatch.setattr(Transport, "send", counting)
    warm = mirror_images(images, conf, previous_lock=lock)
    assert warm.errors == [] and warm.stats.receipt == "trusted"
    assert warm.stats.images_present == len(images) and warm.stats.images_copied == 0
    assert warm.lock() == lock
    assert all(dest.host in url and receipt.tag in url for _method, url in calls), calls  # the receipt only
    assert len(calls) <= 2  # the HEAD, and its replay after the registry's Basic challenge

    # an image deleted behind the mirror's back: the receipt does not see it, verify=tags repairs it
    victim = next(e for e in lock["images"] if "postgres" in e["source"])
    repo, tag = victim["destination"].split("/", 1)[1].rsplit(":", 1)
    deleted = internal.request("DELETE", f"/v2/{repo}/manifests/{victim['digest']}", repo, push=True)
    assert deleted.status_code == 202
    assert internal.manifest_digest(repo, tag) is None
    assert mirror_images(images, conf, previous_lock=lock).stats.receipt == "trusted"
    repaired = mirror_images(images, conf, previous_lock=lock, verify="tags")
    assert repaired.errors == [] and repaired.stats.images_copied == 1
    assert repaired.stats.receipt == "present"  # the same set, verified again
    assert internal.manifest_digest(repo, tag) == victim["digest"]

    # a different set has no receipt yet: every tag is asked for, then its own receipt is written
    bigger = mirror_images(LAB_IMAGES, conf, previous_lock=lock)
    assert bigger.errors == [] and bigger.stats.images_copied == len(LAB_IMAGES) - len(images)
    assert bigger.stats.receipt == "written"


def test_bearer_token_registry(lab_env, token_registry):
    """Harbor/GitLab-style auth: the registry's Bearer challenge, a token per scope from the issuer."""
    host, issuer = token_registry
    conf = settings(lab_env, host, "site")
    images = LAB_IMAGES
    first = mirror_images(images, conf)
    assert first.errors == [] and first.stats.images_copied == len(images)
    assert first.stats.blobs_mounted > 0  # cross-repository mounts, which need pull on the other repository too
    asked = [scope for scopes in issuer.requests for scope in scopes]
    assert any(s.startswith("repository:site/") and s.endswith(":pull,push") for s in asked), asked
    internal = pusher(host, lab_env)
    for entry in first.lock()["images"]:
        repo, tag = entry["destination"].split("/", 1)[1].rsplit(":", 1)
        assert internal.manifest_digest(repo, tag) == entry["digest"]
    assert mirror_images(images, conf, previous_lock=first.lock()).stats.receipt == "trusted"

    stranger = Registry(host, lab_env["LAB_CA"], "someone", "wrong")
    with pytest.raises(RegistryError, match="token request failed with HTTP 401"):
        stranger.manifest_digest(repo, tag)


def test_blob_downloads_redirected_to_storage_without_credentials(lab_env, tmp_path):
    """A registry that sends blob downloads to object storage (307 to another host): the client
    follows the redirect, verifies that host's TLS too, and keeps the registry's credentials to itself."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "storage"
    root.mkdir()
    seen: list[tuple[str, str | None]] = []

    class Storage(SimpleHTTPRequestHandler):
        def send_head(self):
            seen.append((self.command, self.headers.get("Authorization")))
            return super().send_head()

        def log_message(self, *_args) -> None:
            return None

    ca = labcore.LabCA(labcore.PKI)
    serving = ca.issue("mirror-object-storage", "127.0.0.1", ["127.0.0.1"])
    storage = labcore.use_tls(
        ThreadingHTTPServer(("127.0.0.1", STORAGE_PORT), functools.partial(Storage, directory=str(root))), *serving
    )
    threading.Thread(target=functools.partial(storage.serve_forever, 0.1), daemon=True).start()
    daemon = labcore.registry_daemon(ca, f"mirror-redirect-{os.getpid()}", REDIRECT_REGISTRY_PORT, True, root)
    config_path = Path(daemon.argv[-1])
    config = yaml.safe_load(config_path.read_text())
    config["middleware"] = {
        "storage": [{"name": "redirect", "options": {"baseurl": f"https://127.0.0.1:{STORAGE_PORT}/"}}]
    }
    config_path.write_text(yaml.safe_dump(config))
    daemon.start()
    try:
        labcore.wait_healthy([daemon], timeout=30)
        host = f"127.0.0.1:{REDIRECT_REGISTRY_PORT}"
        user, password = lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"]
        reg = Registry(host, lab_env["LAB_CA"], user, password)
        push_generated_image(reg, "team/app", "1.0", [3 << 20], seed=4242)
        manifest = reg.get_manifest("team/app", "1.0")
        assert manifest is not None
        layer = manifest.json()["layers"][0]
        resp = reg.open_blob("team/app", layer["digest"])
        assert sha256_digest(resp.content) == layer["digest"]
        assert reg.has_blob("team/app", layer["digest"])
        # streamed through the reused buffer, and checked against the size its descriptor gives
        resp, pieces = stream_blob(reg, "team/app", layer["digest"], layer["size"])
        assert sha256_digest(b"".join(bytes(piece) for piece in pieces)) == layer["digest"]
        with pytest.raises(RegistryError, match=f"{layer['size']} bytes served, {layer['size'] + 1} expected"):
            stream_blob(reg, "team/app", layer["digest"], layer["size"] + 1)
        assert ("GET", None) in seen and all(auth is None for _method, auth in seen), seen

        # the image mirrors out of such a registry like out of any other
        dest = mirror_images(
            [f"{host}/team/app:1.0"],
            MirrorSettings(
                destination=Endpoint(lab_env["REGISTRY_INTERNAL"], lab_env["LAB_CA"], user, password),
                prefix=f"test-redirect-{uuid.uuid4().hex[:6]}",
                credentials={host: Endpoint(host, lab_env["LAB_CA"], user, password)},
                ca_file=lab_env["LAB_CA"],
            ),
        )
        assert dest.errors == [] and dest.stats.bytes_copied >= 3 << 20
    finally:
        daemon.stop()
        storage.shutdown()
        storage.server_close()


def test_killed_destination_leaves_no_partial_tag_and_rerun_completes(lab_env, private_registry):
    source = private_registry("mirror-kill-src", KILL_SRC_PORT, auth=False)
    src = Registry(source.host, lab_env["LAB_CA"])
    refs = []
    for i in range(6):
        push_generated_image(src, f"team/big{i}", "1.0", [12 << 20, 4 << 20], seed=7000 + i)
        refs.append(f"{source.host}/team/big{i}:1.0")
    dest = private_registry("mirror-kill-dst", KILL_PORT)
    conf = MirrorSettings(
        destination=Endpoint(
            dest.host, lab_env["LAB_CA"], lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"]
        ),
        prefix="site",
        ca_file=lab_env["LAB_CA"],
        parallel=2,
    )
    copied = threading.Event()

    def progress(msg: str) -> None:
        if msg.startswith("blob "):
            copied.set()

    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", mirror_images(refs, conf, progress=progress)))
    worker.start()
    deadline = time.monotonic() + 60
    while not copied.wait(0.05) and worker.is_alive() and time.monotonic() < deadline:
        pass
    assert copied.is_set() and worker.is_alive(), f"no blob copied before the end: {result.get('r')}"
    dest.kill()
    worker.join(120)
    interrupted = result["r"]
    assert interrupted.errors, "the copy should have failed with the destination gone"

    dest.start()
    pool = RegistryPool(conf)
    try:
        plans = [p for p in plan_images(refs, conf, pool) if not p.error]
        assert len(plans) == len(refs)
        for plan in plans:  # a tag that exists points at a complete image
            if plan.present:
                assert verify_image(plan, pool, blobs=True) == []
    finally:
        pool.close()
    rerun = mirror_images(refs, conf, verify_all=True)
    assert rerun.errors == []
    assert rerun.stats.images_copied + interrupted.stats.images_copied >= len(refs)
    assert rerun.stats.images_present + rerun.stats.images_copied == len(refs)


def test_bundle_export_import_into_fresh_registry(lab_env, private_registry, tmp_path):
    export_conf = settings(lab_env, "", "")
    directory, archive = tmp_path / "bundle", tmp_path / "bundle.tar"
    exported = export_bundle(LAB_IMAGES, export_conf, str(directory), str(archive))
    assert exported.errors == []
    assert verify_bundle(str(archive)) == []
    blob_files = list((directory / "blobs" / "sha256").iterdir())
    assert len({f.name for f in blob_files}) == len(blob_files)  # content-addressed: each blob once
    lock = yaml.safe_load((directory / "mirror-lock.yaml").read_text())
    assert {e["source"] for e in lock["images"]} == set(LAB_IMAGES)

    # an altered bundle is noticed
    victim = sorted(blob_files)[0]
    original = victim.read_bytes()
    victim.write_bytes(original + b"x")
    assert any("checksum mismatch" in p for p in verify_bundle(str(directory)))
    victim.write_bytes(original)

    fresh = private_registry("mirror-bundle-dst", BUNDLE_PORT)
    import_conf = settings(lab_env, fresh.host, "site")
    imported = import_bundle(str(archive), import_conf, verify="full")
    assert imported.errors == []
    assert imported.stats.images_copied == len(LAB_IMAGES) and imported.stats.receipt == "written"
    by_source = {e["source"]: e["digest"] for e in lock["images"]}
    assert {e["source"]: e["digest"] for e in imported.lock()["images"]} == by_source
    # a rerun of the same bundle: the receipt of its set answers for every image
    again = import_bundle(str(archive), import_conf)
    assert again.stats.images_copied == 0 and again.stats.images_present == len(LAB_IMAGES)
    assert again.stats.receipt == "trusted" and again.errors == []
    # asking every tag finds them all, and the receipt for the set already there
    tags = import_bundle(str(archive), import_conf, verify="tags")
    assert tags.stats.images_copied == 0 and tags.stats.images_present == len(LAB_IMAGES)
    assert tags.stats.receipt == "present"


@pytest.fixture
def small_filesystem(tmp_path):
    """A tmpfs of a given size (pages) mounted in tmp_path: a real file system that fills up."""
    mounted: list[Path] = []

    def mount(name: str, size: int) -> Path:
        path = tmp_path / name
        path.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {proc.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


def _pages(size: int) -> int:
    return -(-size // 4096) * 4096


def test_disk_check_stops_export_and_unpack_before_writing(lab_env, private_registry, tmp_path, small_filesystem):
    conf = settings(lab_env, "", "")
    pool = RegistryPool(conf)
    try:
        plans = plan_images(LAB_IMAGES, conf, pool)
    finally:
        pool.close()
    needed = export_space_needs(plans, str(tmp_path / "probe" / "bundle"))[str(tmp_path / "probe" / "bundle")]
    assert needed > sum(p.size for p in plans) > 0

    # too small for the bundle directory: stops with both numbers and the directory, writes nothing
    small = small_filesystem("small", _pages(needed // 2))
    free = free_bytes(str(small))
    with pytest.raises(DiskSpaceError) as stopped:
        export_bundle(LAB_IMAGES, conf, str(small / "bundle"))
    message = str(stopped.value)
    assert f"{small / 'bundle'} needs {needed} bytes" in message and f"has {free} bytes" in message
    assert os.listdir(small) == [] and free_bytes(str(small)) == free
    # the module in check mode makes the same comparison
    params = {"mode": "export", "images": LAB_IMAGES, "bundle": str(small / "bundle"), "confirm_candidates": False,
              "source_rewrites": rewrites(lab_env["REGISTRY_UPSTREAM"]), "ca_file": lab_env["LAB_CA"]}  # fmt: skip
    with pytest.raises(DiskSpaceError, match=f"needs {needed} bytes"):
        run(ImageMirrorSettings.from_params(params), check_mode=True)
    assert os.listdir(small) == []

    # the directory fits, the archive on its own file system does not: that one is named
    roomy = small_filesystem("roomy", _pages(needed + (1 << 20)))
    carry = small_filesystem("carry", _pages(needed // 2))
    with pytest.raises(DiskSpaceError, match=f"{carry} needs"):
        export_bundle(LAB_IMAGES, conf, str(roomy / "bundle"), str(carry / "bundle.tar"))
    assert os.listdir(roomy) == [] and os.listdir(carry) == []

    # enough room: the export fits in what the check asked for
    exported = export_bundle(LAB_IMAGES, conf, str(roomy / "bundle"))
    assert exported.errors == [] and verify_bundle(str(roomy / "bundle")) == []
    used = shutil.disk_usage(roomy).used
    assert 0 < used <= needed, (used, needed)

    # import: unpacking an archive into a too small directory stops before the first file
    archive = tmp_path / "bundle.tar"
    assert export_bundle(LAB_IMAGES, conf, str(tmp_path / "bundle"), str(archive)).errors == []
    unpack_needed = unpack_space_needs(str(archive), str(small / "bundle"))[str(small / "bundle")]
    with pytest.raises(DiskSpaceError, match=f"{small / 'bundle'} needs {unpack_needed} bytes"):
        unpack_bundle(str(archive), str(small / "bundle"))
    assert os.listdir(small) == []
    target = small_filesystem("target", _pages(unpack_needed))
    assert unpack_bundle(str(archive), str(target / "bundle")) > 0
    assert verify_bundle(str(target / "bundle")) == []
    assert unpack_bundle(str(archive), str(target / "bundle")) == 0  # a second unpack keeps what is there
    fresh = private_registry("mirror-disk-dst", DISK_PORT)
    imported = import_bundle(str(target / "bundle"), settings(lab_env, fresh.host, "site"), verify="full")
    assert imported.errors == [] and imported.stats.images_copied == len(LAB_IMAGES)


def internal_chart_params(lab_env: dict, charts: list[dict], prefix: str) -> dict:
    """chart_mirror parameters pushing `charts` to the lab's internal registry under `prefix`."""
    return {
        "charts": charts,
        "destination": lab_env["REGISTRY_INTERNAL"],
        "destination_username": lab_env["REGISTRY_INTERNAL_USER"],
        "destination_password": lab_env["REGISTRY_INTERNAL_PASSWORD"],
        "prefix": prefix,
        "ca_file": lab_env["LAB_CA"],
        "helm": lab_env["HELM"],
    }


def _write_chart(directory: Path, name: str, version: str, templates: dict[str, str]) -> Path:
    chart = directory / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\ntype: application\n")
    (chart / "values.yaml").write_text("{}\n")
    for file, text in templates.items():
        (chart / "templates" / file).write_text(text)
    return chart


def _helm_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_REGISTRY_CONFIG": str(home / "registry.json"),
    }


def test_v_prefixed_chart_is_pullable_from_internal_oci(lab_env, private_registry, tmp_path):
    name = f"vchart{uuid.uuid4().hex[:6]}"
    chart = _write_chart(
        tmp_path, name, "v1.2.3", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}
    )
    env = _helm_env(tmp_path / "helm")
    subprocess.run([lab_env["HELM"], "package", str(chart), "-d", str(tmp_path)], check=True, env=env)
    source = private_registry("mirror-chart-src", CHART_SRC_PORT, auth=False)
    subprocess.run(
        [
            lab_env["HELM"],
            "push",
            str(tmp_path / f"{name}-v1.2.3.tgz"),
            f"oci://{source.host}/charts",
            "--ca-file",
            lab_env["LAB_CA"],
        ],
        check=True,
        env=env,
    )
    prefix = f"test-charts-{uuid.uuid4().hex[:6]}"
    charts = [{"chart": f"oci://{source.host}/charts/{name}", "version": "v1.2.3"}]
    params = {**internal_chart_params(lab_env, charts, prefix), "lock_file": str(tmp_path / "lock.yaml")}
    planned = run_charts(ChartMirrorSettings.from_params(params), check_mode=True)
    assert planned["charts"][0]["action"] == "push" and not (tmp_path / "lock.yaml").exists()
    pushed = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)
    (entry,) = pushed["charts"]
    assert (entry["oci_version"], entry["oci_tag"], entry["version"]) == ("1.2.3", "1.2.3", "v1.2.3")
    assert entry["digest"].startswith("sha256:")
    # the one case that is rebuilt: the lock says why, and keeps the source's digest beside the new one
    assert "leading v removed" in entry["repackaged"]
    assert entry["source_digest"] == Registry(source.host, lab_env["LAB_CA"]).manifest_digest(
        f"charts/{name}", "v1.2.3"
    )
    assert entry["source_digest"] != entry["digest"]
    assert run_charts(ChartMirrorSettings.from_params(params), check_mode=False)["changed"] is False
    recorded = yaml.safe_load((tmp_path / "lock.yaml").read_text())["charts"]
    assert recorded[0]["destination"] == f"oci://{lab_env['REGISTRY_INTERNAL']}/{prefix}/{name}"

    pull_dir = tmp_path / "pulled"
    pull_dir.mkdir()
    login = [lab_env["HELM"], "registry", "login", lab_env["REGISTRY_INTERNAL"], "--ca-file", lab_env["LAB_CA"]]
    login += ["--username", lab_env["REGISTRY_INTERNAL_USER"], "--password-stdin"]
    subprocess.run(
        login, input=lab_env["REGISTRY_INTERNAL_PASSWORD"], text=True, check=True, env=env, capture_output=True
    )
    pull = [lab_env["HELM"], "pull", entry["destination"], "--version", "1.2.3", "--ca-file", lab_env["LAB_CA"]]
    pulled = subprocess.run([*pull, "-d", str(pull_dir)], env=env, capture_output=True, text=True, check=False)
    assert pulled.returncode == 0, pulled.stderr
    assert (pull_dir / f"{name}-1.2.3.tgz").exists()
    with pytest.raises(ChartMirrorError, match="not a version or a version range"):
        run_charts(
            ChartMirrorSettings.from_params(dict(params, charts=[{"chart": "oci://x/y", "version": "latest"}])),
            check_mode=True,
        )
    with pytest.raises(ChartMirrorError, match=r"cannot list the versions for '1\.2'"):  # a range: 1.2.x
        run_charts(
            ChartMirrorSettings.from_params(dict(params, charts=[{"chart": "oci://x.invalid/y", "version": "1.2"}])),
            check_mode=True,
        )


ENV_AND_CRD_TEMPLATES = {
    "deploy.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: operator
spec:
  selector: {matchLabels: {app: op}}
  template:
    metadata: {labels: {app: op}}
    spec:
      containers:
        - name: op
          image: docker.io/library/alpine:3.20
          env:
            - name: PROXY_IMAGE
              value: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0
            - name: BUILD_LABEL
              value: team-x/release-notes:zz9-plural-z-alpha
          args: ["--sidecar-image=docker.io/bitnami/redis:7.2"]
""",
    "session.yaml": """apiVersion: amalthea.dev/v1alpha1
kind: AmaltheaSession
metadata:
  name: example
spec:
  session:
    image: ghcr.io/swissdatasciencecenter/renku/session-base:py3.12
""",
}


def test_images_only_in_env_and_crd_are_found_random_lookalike_is_not(lab_env, tmp_path):
    chart = _write_chart(tmp_path, "envcrd", "0.1.0", ENV_AND_CRD_TEMPLATES)
    found = discover(
        [{"chart": str(chart)}],
        [],
        [],
        [],
        ["AmaltheaSession:spec.session.image"],
        helm=lab_env["HELM"],
        ca_file=lab_env["LAB_CA"],
    )
    conf = settings(lab_env, lab_env["REGISTRY_INTERNAL"], "unused")
    pool = RegistryPool(conf)
    try:
        from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import locate
        from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import parse_image

        def exists(ref: str) -> bool:
            plan = locate(parse_image(ref), conf)
            return pool.get(plan.src_host).manifest_digest(plan.src_repo, plan.source.reference) is not None

        confirm_candidates(found, exists)
    finally:
        pool.close()
    assert set(found.images) == {
        "docker.io/library/alpine:3.20",
        "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",  # env value only
        "docker.io/bitnami/redis:7.2",  # args only
        "ghcr.io/swissdatasciencecenter/renku/session-base:py3.12",  # CRD field only
    }
    assert set(found.rejected) == {"docker.io/team-x/release-notes:zz9-plural-z-alpha"}


def test_role_scenario_direct(lab_env, tmp_path):
    from kubernetes import client, config

    namespace = f"mirror-{uuid.uuid4().hex[:6]}"
    try:
        results = converge(
            "mirror",
            extra_vars={
                "mirror_test_dir": str(tmp_path),
                "mirror_test_prefix": f"test-role-{uuid.uuid4().hex[:8]}",
                "mirror_test_namespace": namespace,
            },
            runs=2,
        )
    finally:
        core = client.CoreV1Api(config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"]))
        if namespace in {ns.metadata.name for ns in core.list_namespace().items}:
            core.delete_namespace(namespace)
    lock = yaml.safe_load((tmp_path / "mirror-lock.yaml").read_text())
    assert {e["source"] for e in lock["images"]} >= {"docker.io/library/busybox:1.36", "docker.io/library/alpine:3.20"}
    assert lock["charts"][0]["oci_version"] == "0.1.0"
    assert results["rerun"].changed == 0, results["rerun"].changed_tasks()


@pytest.fixture
def fresh_git_repo(lab_env, tmp_path):
    """An empty repository on the lab's internal git, and the mirror entry that fills it from the
    lab's template repository; removed afterwards."""
    if "LAB_GIT_URL" not in lab_env:
        pytest.fail("the lab git server (lab/components/gitserver.py) is not part of this lab")
    name = f"mirror-test-{uuid.uuid4().hex[:8]}.git"
    bare = Path(lab_env["LAB_GIT_ROOT"]) / name
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, env=clean)
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=bare, check=True, env=clean)
    repo = {
        "source": f"{lab_env['LAB_GIT_URL']}/renku-python-template.git",
        "destination": f"{lab_env['LAB_GIT_URL']}/{name}",
        "username": lab_env["LAB_GIT_USER"],
        "password": lab_env["LAB_GIT_PASSWORD"],
    }
    yield bare, repo
    shutil.rmtree(bare, ignore_errors=True)


def git_refs(lab_env: dict, url: str) -> str:
    """Branches and tags of a repository over HTTPS (HEAD is each server's own), sorted."""
    out = subprocess.run(
        ["git", "-c", f"http.sslCAInfo={lab_env['LAB_CA']}", "ls-remote", url],
        check=True, capture_output=True, text=True, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
    )  # fmt: skip
    return "".join(sorted(line + "\n" for line in out.stdout.splitlines() if "\trefs/" in line))


def test_git_mirror_to_internal_git_over_https(lab_env, fresh_git_repo):
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.git import GitMirrorError, mirror_git_repo

    bare, repo = fresh_git_repo
    assert mirror_git_repo(repo, lab_env["LAB_CA"], check_mode=True)["changed"] is True
    assert not list((bare / "refs" / "heads").iterdir())  # check mode pushed nothing
    assert mirror_git_repo(repo, lab_env["LAB_CA"], check_mode=False)["changed"] is True
    assert mirror_git_repo(repo, lab_env["LAB_CA"], check_mode=False)["changed"] is False
    assert git_refs(lab_env, repo["destination"]) == git_refs(lab_env, repo["source"])
    assert "refs/heads/main" in git_refs(lab_env, repo["destination"])
    # without the site CA the server is not trusted: TLS is verified
    with pytest.raises(GitMirrorError):
        mirror_git_repo(repo, "/etc/ssl/certs/ca-certificates.crt", check_mode=True)


def test_role_export_then_import_into_fresh_registry(lab_env, private_registry, tmp_path, fresh_git_repo):
    from playbook import run_playbook

    fresh = private_registry("mirror-role-import", ROLE_IMPORT_PORT)
    bare, template = fresh_git_repo  # filled on the offline side from the bundle only
    common = {
        "mirror_git_repositories": [template],
        "mirror_charts": [{"chart": f"oci://{lab_env['REGISTRY_UPSTREAM']}/charts/hello", "version": "0.1.0"}],
        "mirror_extra_images": ["docker.io/library/alpine:3.20"],
        "mirror_pull_secret_namespaces": [],
        "mirror_progress_file": "",
        "mirror_prefix": "mirror",
        "mirror_keep_registry_host": True,
        "mirror_bundle_archive": str(tmp_path / "carry" / "bundle.tar"),
    }
    (tmp_path / "carry").mkdir()
    exported = run_playbook(
        ROOT / "playbooks" / "mirror.yml",
        extra_vars={**common, "mirror_mode": "export", "mirror_bundle_dir": str(tmp_path / "connected")},
    )
    assert exported.rc == 0, exported.output[-3000:]
    git_bundle = tmp_path / "connected" / "git" / "renku-python-template.bundle"
    assert git_bundle.is_file()
    assert "  git/renku-python-template.bundle\n" in (tmp_path / "connected" / "SHA256SUMS").read_text()
    re_export = run_playbook(
        ROOT / "playbooks" / "mirror.yml",
        extra_vars={**common, "mirror_mode": "export", "mirror_bundle_dir": str(tmp_path / "connected")},
    )
    assert re_export.rc == 0 and "Export template repositories" not in " ".join(re_export.changed_tasks())
    offline = {
        **common,
        "mirror_mode": "import",
        "mirror_bundle_dir": str(tmp_path / "offline"),
        "mirror_registry": fresh.host,
        "mirror_lock_file": str(tmp_path / "offline-lock.yaml"),
        "mirror_output_dir": str(tmp_path / "out"),
    }
    (tmp_path / "offline").mkdir()
    check = run_playbook(ROOT / "playbooks" / "mirror.yml", extra_vars=offline, check=True)
    assert check.rc == 0, check.output[-3000:]
    planned = " | ".join(check.changed_tasks())  # read from the archive itself: the plan covers charts and git too
    assert "Push the bundle's charts to the internal OCI registry" in planned, planned
    assert "Push the bundle's template repositories to the internal git" in planned, planned
    assert "scratch" not in planned, planned  # the plan's own scratch directory is not a change
    assert not (tmp_path / "offline-lock.yaml").exists()
    assert not list((bare / "refs" / "heads").iterdir())  # check mode pushed nothing
    imported = run_playbook(ROOT / "playbooks" / "mirror.yml", extra_vars=offline)
    assert imported.rc == 0, imported.output[-3000:]

    assert git_refs(lab_env, template["destination"]) == git_refs(lab_env, template["source"])
    assert "refs/heads/main" in git_refs(lab_env, template["destination"])
    again = run_playbook(ROOT / "playbooks" / "mirror.yml", extra_vars=offline)
    assert again.rc == 0 and again.changed == 0, again.changed_tasks()

    lock = yaml.safe_load((tmp_path / "offline-lock.yaml").read_text())
    assert {e["source"] for e in lock["images"]} == {"docker.io/library/alpine:3.20", "docker.io/library/busybox:1.36"}
    assert all(e["destination"].startswith(f"{fresh.host}/mirror/") for e in lock["images"])
    assert lock["charts"][0]["destination"] == f"oci://{fresh.host}/charts/hello"
    reg = pusher(fresh.host, lab_env)
    for entry in lock["images"]:
        repo = entry["destination"].split("/", 1)[1].rsplit(":", 1)[0]
        assert reg.manifest_digest(repo, entry["destination"].rsplit(":", 1)[1]) == entry["digest"]
    assert reg.manifest_digest("charts/hello", "0.1.0") is not None
    overlay = yaml.safe_load((tmp_path / "out" / "values" / "hello.yaml").read_text())
    assert overlay["images"][0].startswith(f"{fresh.host}/mirror/docker.io/library/busybox@sha256:")


def test_chart_with_build_metadata_keeps_its_version(lab_env, tmp_path):
    name = f"buildchart{uuid.uuid4().hex[:6]}"
    version = "1.0.0+build.7"
    chart = _write_chart(
        tmp_path, name, version, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}
    )
    prefix = f"test-charts-{uuid.uuid4().hex[:6]}"
    params = internal_chart_params(lab_env, [{"chart": str(chart), "version": version, "name": name}], prefix)
    (entry,) = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)["charts"]
    assert (entry["oci_version"], entry["oci_tag"]) == (version, "1.0.0_build.7")
    assert run_charts(ChartMirrorSettings.from_params(params), check_mode=False)["changed"] is False
    internal = pusher(lab_env["REGISTRY_INTERNAL"], lab_env)
    assert internal.manifest_digest(f"{prefix}/{name}", "1.0.0_build.7") == entry["digest"]
    env = _helm_env(tmp_path / "helm")
    login = [lab_env["HELM"], "registry", "login", lab_env["REGISTRY_INTERNAL"], "--ca-file", lab_env["LAB_CA"]]
    login += ["--username", lab_env["REGISTRY_INTERNAL_USER"], "--password-stdin"]
    subprocess.run(
        login, input=lab_env["REGISTRY_INTERNAL_PASSWORD"], text=True, check=True, env=env, capture_output=True
    )
    shown = subprocess.run(
        [lab_env["HELM"], "show", "chart", entry["destination"], "--version", version, "--ca-file", lab_env["LAB_CA"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"version: {version}" in shown.stdout


@pytest.fixture
def classic_chart_repo(lab_env, tmp_path):
    """A classic Helm chart repository (index.yaml + packages) over HTTPS with a lab CA certificate."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "repo"
    served.mkdir()
    chart = _write_chart(tmp_path, "classic", "v0.3.0", {"deploy.yaml": ENV_AND_CRD_TEMPLATES["deploy.yaml"]})
    env = _helm_env(tmp_path / "helm")
    subprocess.run(
        [lab_env["HELM"], "package", str(chart), "-d", str(served)], check=True, env=env, capture_output=True
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"https://127.0.0.1:{server.server_address[1]}"
    subprocess.run([lab_env["HELM"], "repo", "index", str(served), "--url", url], check=True, env=env)
    crt, key = labcore.LabCA(labcore.PKI).issue("mirror-test-chart-repo", "charts.lab", ["127.0.0.1"])
    labcore.use_tls(server, crt, key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


def test_classic_repo_chart_discovered_and_pushed_oci_safe(lab_env, classic_chart_repo):
    chart = {"chart": "classic", "repo": classic_chart_repo, "version": "v0.3.0"}
    found = discover([chart], [], [], [], [], helm=lab_env["HELM"], ca_file=lab_env["LAB_CA"])
    assert "docker.io/library/alpine:3.20" in found.images
    prefix = f"test-charts-{uuid.uuid4().hex[:6]}"
    params = internal_chart_params(lab_env, [chart], prefix)
    (entry,) = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)["charts"]
    assert entry["source"] == f"{classic_chart_repo}/classic"
    assert (entry["oci_version"], entry["destination"]) == (
        "0.3.0",
        f"oci://{lab_env['REGISTRY_INTERNAL']}/{prefix}/classic",
    )
    internal = pusher(lab_env["REGISTRY_INTERNAL"], lab_env)
    assert internal.manifest_digest(f"{prefix}/classic", "0.3.0") == entry["digest"]


def _chart_layer(reg: Registry, repo: str, tag: str) -> str:
    manifest = reg.get_manifest(repo, tag)
    assert manifest is not None, f"{reg.host}/{repo}:{tag} missing"
    (layer,) = [item for item in manifest.json()["layers"] if item["mediaType"].endswith("chart.content.v1.tar+gzip")]
    return layer["digest"]


def test_charts_keep_their_digests_unless_the_version_must_change(lab_env, tmp_path):
    upstream, internal = lab_env["REGISTRY_UPSTREAM"], lab_env["REGISTRY_INTERNAL"]
    classic = f"{lab_env['LAB_CHART_REPO_URL']}/swissdatasciencecenter"
    charts = [
        {"chart": f"oci://{upstream}/docker.io/bitnamicharts/common", "version": "2.31.10"},
        {"chart": "csi-rclone", "repo": classic, "version": "0.6.0"},
        {"chart": "amalthea-sessions", "repo": classic, "version": "0.30.2"},
    ]
    prefix = f"test-charts-{uuid.uuid4().hex[:6]}"
    params = {**internal_chart_params(lab_env, charts, prefix), "lock_file": str(tmp_path / "lock.yaml")}
    planned = run_charts(ChartMirrorSettings.from_params(params), check_mode=True)
    assert [e["action"] for e in planned["charts"]] == ["copy", "push", "push"]
    result = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)
    common, rclone, amalthea = result["charts"]
    source = Registry(upstream, lab_env["LAB_CA"])
    dest = pusher(internal, lab_env)

    # OCI source: the same manifest, blob for blob
    source_digest = source.manifest_digest("docker.io/bitnamicharts/common", "2.31.10")
    assert common["action"] == "copy" and common["digest"] == common["source_digest"] == source_digest
    assert dest.manifest_digest(f"{prefix}/common", "2.31.10") == source_digest
    assert (
        dest.get_manifest(f"{prefix}/common", "2.31.10").body
        == source.get_manifest("docker.io/bitnamicharts/common", "2.31.10").body
    )

    # classic repository: the package as published is the layer, with index.yaml's checksum
    index = yaml.safe_load((Path(lab_env["LAB_CHART_REPO_ROOT"]) / "swissdatasciencecenter" / "index.yaml").read_text())
    for entry, package in ((rclone, "csi-rclone-0.6.0.tgz"), (amalthea, "amalthea-sessions-0.30.2.tgz")):
        published = (
            "sha256:" + hashlib.sha256((Path(lab_env["LAB_REFERENCE_CHARTS"]) / package).read_bytes()).hexdigest()
        )
        (indexed,) = [i["digest"] for i in index["entries"][entry["name"]] if i["version"] == entry["version"]]
        assert published == f"sha256:{indexed}".replace("sha256:sha256:", "sha256:")
        assert entry["action"] == "push" and "repackaged" not in entry
        assert entry["package_digest"] == entry["layer_digest"] == published
        assert _chart_layer(dest, f"{prefix}/{entry['name']}", entry["oci_tag"]) == published
        assert dest.manifest_digest(f"{prefix}/{entry['name']}", entry["oci_tag"]) == entry["digest"]

    lock = yaml.safe_load((tmp_path / "lock.yaml").read_text())["charts"]
    assert lock[0]["source_digest"] == lock[0]["digest"] and lock[1]["package_digest"] == lock[1]["layer_digest"]
    again = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)
    assert again["changed"] is False and [e["action"] for e in again["charts"]] == ["present"] * 3

    # a chart pushed earlier as something else (here: a rebuilt package) is replaced by the source's manifest
    other = Registry(upstream, lab_env["LAB_CA"]).get_manifest("docker.io/bitnamicharts/common", "2.27.0")
    for desc in other.json()["layers"] + [other.json()["config"]]:
        resp, chunks = stream_blob(source, "docker.io/bitnamicharts/common", desc["digest"], desc["size"])
        dest.upload_blob(f"{prefix}/common", desc["digest"], chunks, None, desc["size"])
        resp.close()
    dest.put_manifest(f"{prefix}/common", "2.31.10", other)
    replaced = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)
    assert replaced["charts"][0]["action"] == "copy"
    assert dest.manifest_digest(f"{prefix}/common", "2.31.10") == source_digest
    source.close()
    dest.close()


def test_live_progress_in_playbook_output_while_copying(lab_env, private_registry, tmp_path):
    source = private_registry("mirror-progress-src", PROGRESS_SRC_PORT, auth=False)
    dest = private_registry("mirror-progress-dst", PROGRESS_DST_PORT)
    reg = Registry(source.host, lab_env["LAB_CA"])
    images = []
    for seed in range(6):
        push_generated_image(reg, f"big/image{seed}", "1", [24 << 20, 8 << 20], 9000 + seed)
        images.append(f"progress.example/big/image{seed}:1")
    reg.close()
    upstream = lab_env["REGISTRY_UPSTREAM"]
    playbook = tmp_path / "progress.yml"
    task = {
        "airgap.renku.image_mirror": {
            "images": images,
            # a chart rendered with values templated from play variables (tagged strings, not plain str)
            "charts": [
                {
                    "chart": f"oci://{upstream}/charts/hello",
                    "version": "0.1.0",
                    "values": [{"greeting": "{{ greeting }}"}],
                }
            ],
            "helm": lab_env["HELM"],
            "source_rewrites": {"progress.example": source.host, "docker.io": f"{upstream}/docker.io"},
            "lock_file": str(tmp_path / "lock.yaml"),
            "destination": dest.host,
            "destination_username": lab_env["REGISTRY_INTERNAL_USER"],
            "destination_password": lab_env["REGISTRY_INTERNAL_PASSWORD"],
            "ca_file": lab_env["LAB_CA"],
            "prefix": "progress",
            "parallel": 2,
            "progress_file": str(tmp_path / "progress.log"),
            "progress_interval": 0.5,
        },
        "name": "Mirror with live progress",
    }
    play = {"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task],
            "vars": {"greeting": "hello from the play"}}  # fmt: skip
    playbook.write_text(yaml.safe_dump([play]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"), "ANSIBLE_STDOUT_CALLBACK": "default",
           "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-i", "localhost,"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timed: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        timed.append((time.monotonic(), line.rstrip("\n")))
    assert proc.wait() == 0, "\n".join(text for _t, text in timed)[-3000:]
    output = "\n".join(text for _t, text in timed)
    live = [(t, text) for t, text in timed if text.startswith("image_mirror [localhost]: ")]
    task_done = next(t for t, text in timed if text.startswith("changed: [localhost]"))
    statuses = [(t, text) for t, text in live if " images, " in text]
    finished = [text for _t, text in live if ": image " in text]

    # shown while the copy runs: status lines before the task's result, at most one burst per interval
    assert len(statuses) >= 2 and statuses[0][0] < task_done - 0.4, output[-3000:]
    interval_bursts = [t for t, text in statuses if ": done: " not in text]
    assert all(b - a >= 0.3 for a, b in itertools.pairwise(interval_bursts)), interval_bursts
    expected = sorted([*images, "docker.io/library/busybox:1.36"])
    assert sorted(f.split(": image ")[1].split(" ->")[0] for f in finished) == expected
    last = statuses[-1][1]
    assert "done: 7/7 images" in last and "MiB of" in last and "/s" in last
    locked = yaml.safe_load((tmp_path / "lock.yaml").read_text())
    assert sorted(e["source"] for e in locked["images"]) == expected
    assert any("ETA" in text for _t, text in statuses[:-1]), [text for _t, text in statuses]
    # no secret in any line; the progress file is still written
    assert lab_env["REGISTRY_INTERNAL_PASSWORD"] not in output
    assert "image progress.example/big/image0:1" in (tmp_path / "progress.log").read_text()
    copied = Registry(
        dest.host, lab_env["LAB_CA"], lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"]
    )
    assert copied.manifest_digest("progress/progress.example/big/image0", "1") is not None
    copied.close()


def _copy_artifact(source: Registry, src_repo: str, dest: Registry, dest_repo: str, tag: str) -> str:
    """An OCI artifact (a chart) from one registry to another as it is; returns its digest."""
    manifest = source.get_manifest(src_repo, tag)
    assert manifest is not None, f"{source.host}/{src_repo}:{tag} missing"
    for desc in [manifest.json()["config"], *manifest.json()["layers"]]:
        resp, chunks = stream_blob(source, src_repo, desc["digest"], desc["size"])
        try:
            dest.upload_blob(dest_repo, desc["digest"], chunks, None, desc["size"])
        finally:
            resp.close()
    return dest.put_manifest(dest_repo, tag, manifest)


def test_chart_range_resolves_once_and_later_runs_report_drift(lab_env, private_registry, tmp_path):
    source = private_registry("mirror-range-src", RANGE_SRC_PORT, auth=False)
    upstream = Registry(lab_env["REGISTRY_UPSTREAM"], lab_env["LAB_CA"])
    publisher = Registry(source.host, lab_env["LAB_CA"])
    for tag in ("2.16.1", "2.27.0"):
        _copy_artifact(upstream, "docker.io/bitnamicharts/common", publisher, "bitnamicharts/common", tag)
    classic = f"{lab_env['LAB_CHART_REPO_URL']}/swissdatasciencecenter"
    charts = [
        {"chart": f"oci://{source.host}/bitnamicharts/common", "version": "2.x.x"},
        {"chart": "csi-rclone", "repo": classic, "version": "0.x"},
    ]
    prefix = f"test-charts-{uuid.uuid4().hex[:6]}"
    lock_path = tmp_path / "lock.yaml"
    params = {**internal_chart_params(lab_env, charts, prefix), "lock_file": str(lock_path)}
    first = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)
    common, rclone = first["charts"]
    assert (common["version_range"], common["version"], common["action"]) == ("2.x.x", "2.27.0", "copy")
    assert (rclone["version_range"], rclone["version"]) == ("0.x", "0.6.0") and first["drift"] == []
    recorded = yaml.safe_load(lock_path.read_text())["charts"]
    assert [(e["version_range"], e["version"]) for e in recorded] == [("2.x.x", "2.27.0"), ("0.x", "0.6.0")]
    locked_text = lock_path.read_text()

    # upstream publishes a newer 2.x: reported, nothing pushed, the lock unchanged
    newest = _copy_artifact(upstream, "docker.io/bitnamicharts/common", publisher, "bitnamicharts/common", "2.31.10")
    later = run_charts(ChartMirrorSettings.from_params(params), check_mode=False)
    assert later["changed"] is False and [e["action"] for e in later["charts"]] == ["present", "present"]
    assert later["drift"] == [
        {"name": "common", "source": f"oci://{source.host}/bitnamicharts/common", "version_range": "2.x.x",
         "locked": "2.27.0", "latest": "2.31.10", "updated": False}
    ]  # fmt: skip
    internal = pusher(lab_env["REGISTRY_INTERNAL"], lab_env)
    assert internal.manifest_digest(f"{prefix}/common", "2.31.10") is None
    assert lock_path.read_text() == locked_text

    # asked: moves to the newest match, copied as published, recorded with its range
    moved = run_charts(ChartMirrorSettings.from_params({**params, "update_ranges": True}), check_mode=False)
    assert moved["changed"] is True and moved["drift"][0]["updated"] is True
    assert (moved["charts"][0]["version"], moved["charts"][0]["digest"]) == ("2.31.10", newest)
    assert internal.manifest_digest(f"{prefix}/common", "2.31.10") == newest
    recorded = yaml.safe_load(lock_path.read_text())["charts"]
    assert (recorded[0]["version_range"], recorded[0]["version"]) == ("2.x.x", "2.31.10")
    for client in (upstream, publisher, internal):
        client.close()


def test_generated_runtime_config_is_read_by_containerd_and_skopeo(lab_env, tmp_path):
    """The generated hosts.toml and registries.conf, read by the real consumers: the public names resolve to
    the internal registry, with the site CA and the pull credentials, at the digests of the lock."""
    internal, user, password = (lab_env[k] for k in ("REGISTRY_INTERNAL", "REGISTRY_INTERNAL_USER", "REGISTRY_INTERNAL_PASSWORD"))  # fmt: skip
    refs = ["docker.io/library/alpine:3.20", "docker.io/library/postgres:16"]
    node_ca = tmp_path / "node" / "site-ca.crt"
    params = {"mode": "direct", "images": refs, "source_rewrites": rewrites(lab_env["REGISTRY_UPSTREAM"]),
              "destination": internal, "destination_username": user, "destination_password": password,
              "ca_file": lab_env["LAB_CA"], "prefix": f"test-runtime-{uuid.uuid4().hex[:6]}", "confirm_candidates": False,
              "output_dir": str(tmp_path / "out"), "node_ca_path": str(node_ca)}  # fmt: skip
    result = run(ImageMirrorSettings.from_params(params), check_mode=False)
    assert result["errors"] == []
    locked = {e["source"]: e["digest"] for e in result["lock"]["images"]}
    runtime = tmp_path / "out" / "runtime"
    node_ca.parent.mkdir()
    shutil.copy(runtime / str(node_ca).lstrip("/"), node_ca)  # what installing runtime/ on a node does

    # containerd: ctr pulls the public names through the generated hosts directory
    namespace = f"mirror-{uuid.uuid4().hex[:8]}"
    ctr = ["ctr", "--address", lab_env["LAB_CONTAINERD_SOCKET"], "-n", namespace]
    hosts = ["--hosts-dir", str(runtime / "etc" / "containerd" / "certs.d")]

    def pull(ref: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*ctr, "images", "pull", *extra, ref], capture_output=True, text=True, check=False)

    try:
        assert pull(refs[0], *hosts, "--user", f"{user}:not-the-password").returncode != 0
        assert pull(refs[0], "--user", f"{user}:{password}").returncode != 0  # docker.io itself: unreachable
        # an image the mirror does not hold: refused by the internal registry, never looked up upstream
        missing = pull("docker.io/library/not-mirrored:1", *hosts, "--user", f"{user}:{password}")
        assert missing.returncode != 0
        assert "docker.io" not in missing.stderr.replace("docker.io/library/not-mirrored", ""), missing.stderr[-1500:]
        for ref in refs:
            pulled = pull(ref, *hosts, "--user", f"{user}:{password}")
            assert pulled.returncode == 0, pulled.stdout[-1500:] + pulled.stderr[-1500:]
            assert password not in pulled.stdout + pulled.stderr
        listed = subprocess.run([*ctr, "images", "ls"], capture_output=True, text=True, check=True).stdout
        found = {cols[0]: cols[2] for cols in (line.split() for line in listed.splitlines()[1:]) if cols}
        assert found == {ref: locked[ref] for ref in refs}
    finally:
        subprocess.run([*ctr, "images", "rm", *refs], capture_output=True, check=False)

    # registries.conf: containers/image (skopeo) resolves the public names to the internal registry
    auth = tmp_path / "auth.json"
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    auth.write_text(json.dumps({"auths": {internal: {"auth": basic}}}))
    auth.chmod(0o600)
    conf = runtime / "etc" / "containers" / "registries.conf.d" / "50-airgap-mirror.conf"
    for ref in refs:
        raw = subprocess.run(
            ["skopeo", "--registries-conf", str(conf), "inspect", "--raw", "--authfile", str(auth),
             "--cert-dir", str(runtime / "etc" / "containers" / "certs.d" / internal), f"docker://{ref}"],
            capture_output=True, check=False,
        )  # fmt: skip
        assert raw.returncode == 0, raw.stderr.decode()[-1500:]
        assert sha256_digest(raw.stdout) == locked[ref]

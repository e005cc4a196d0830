#!/usr/bin/env python3
"""Image mirroring, side by side in one run, on one generated image set (private registries).

    mirror_cold_vs_skopeo_loop   sequential `skopeo copy --all` loop time / our cold copy time
    mirror_cold_vs_skopeo_sync   `skopeo sync --all` time / our cold copy time
    mirror_warm_vs_cold          our rerun with the lock file (default verify: receipt) / our cold time
    mirror_warm_tags_vs_cold     the same rerun with verify: tags (one request per image) / cold time
    bundle_vs_raw_copy           raw copy of the same blob bytes / (bundle export + import) time
    mirror_peak_rss_mb           peak RSS of the mirroring process copying an image with a 256 MB layer

    mirror_cold_cpu_vs_skopeo_loop / _sync
                                 CPU seconds the loop (sync) cost / what our cold copy cost, each
                                 counting the client and both registries: the work each method does
    mirror_cold_vs_skopeo_loop_ceiling
                                 loop time / (our cold CPU seconds / cores): the best wall-time ratio
                                 our cold copy could reach on this machine if every core were busy
                                 all the time; on loopback the copy is CPU-bound, not latency-bound

Every copy goes to its own fresh `docker-registry` (TLS from the lab CA, htpasswd auth), so no
method profits from another's work. Cold copies run ROUNDS times, the methods in a different order
each round, and the medians are compared: this machine's speed drifts by tens of percent within a
minute. Before every timed copy the page cache is flushed (`sync`), so no method pays for another's
disk writes. The raw copy streams each blob GET -> PUT, one after the other, no manifests: the least
work that moves the same bytes between registries. Our timings are measured in a child process
around the mirroring call, like skopeo's wall time minus interpreter start-up (reported separately
as `mirror_python_startup_s`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "build" / "collections"))

import labcore  # noqa: E402

from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import OCI_INDEX, OCI_MANIFEST  # noqa: E402
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (  # noqa: E402
    Manifest,
    Registry,
    sha256_digest,
    stream_blob,
)

PORTS = {"src": 5081, "bundle": 5085, "raw": 5086, "big": 5087}
ROUND_PORTS = {"ours": 5082, "loop": 5083, "sync": 5084}  # fresh registries every round
ROUNDS = 3
IMAGES = 24
BASES = {"linux/amd64": 3 << 20, "linux/arm64": 3 << 20}  # a base layer per platform, shared by every image
APP_LAYER = 2 << 20
BIG_LAYER = 256 << 20
CHUNK = 1 << 20


def log(msg: str) -> None:
    print(f"[bench_mirror {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# private registries and generated content


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds the registries of one copy used, plus what the client reports (or its children)."""

    def __init__(self, *daemons: labcore.Daemon) -> None:
        self.pids = [d.pid() for d in daemons]
        self.start = [process_cpu(pid) for pid in self.pids if pid]
        self.children = os.times()

    def registries(self) -> float:
        return sum(process_cpu(pid) for pid in self.pids if pid) - sum(self.start)

    def child_processes(self) -> float:
        now = os.times()
        return now.children_user - self.children.children_user + now.children_system - self.children.children_system


def start_registries(root: Path, ports: dict[str, int]) -> dict[str, labcore.Daemon]:
    ca = labcore.LabCA(labcore.PKI)
    daemons = {
        name: labcore.registry_daemon(ca, f"bench-mirror-{name}", port, auth=name != "src", root=root / name)
        for name, port in ports.items()
    }
    for daemon in daemons.values():
        daemon.start()
    labcore.wait_healthy(list(daemons.values()), timeout=60)
    return daemons


def _stream(seed: int, size: int):
    rng = random.Random(seed)
    left = size
    while left:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def push_layer(reg: Registry, repo: str, seed: int, size: int) -> dict:
    hasher = hashlib.sha256()
    for part in _stream(seed, size):
        hasher.update(part)
    digest = "sha256:" + hasher.hexdigest()
    if not reg.has_blob(repo, digest):
        reg.upload_blob(repo, digest, _stream(seed, size))
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}


def push_manifest(reg: Registry, repo: str, platform: str, layers: list[dict], ref: str | None = None) -> dict:
    os_name, arch = platform.split("/")
    config = json.dumps({"architecture": arch, "os": os_name, "rootfs": {"type": "layers"}, "repo": repo}).encode()
    reg.upload_blob(repo, sha256_digest(config), [config])
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    manifest = Manifest(body, OCI_MANIFEST, sha256_digest(body))
    reg.put_manifest(repo, ref or manifest.digest, manifest)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": manifest.digest,
        "size": len(body),
        "platform": {"os": os_name, "architecture": arch},
    }


def generate(reg: Registry, host: str) -> tuple[list[str], str]:
    """IMAGES images (half two-platform indexes), shared base layers; and one image with a 256 MB layer."""
    refs = []
    for i in range(IMAGES):
        repo = f"apps/app{i:02d}"
        platforms = list(BASES) if i % 2 == 0 else ["linux/amd64"]
        entries = []
        for p_index, platform in enumerate(platforms):
            base = push_layer(reg, repo, 10 + p_index, BASES[platform])
            app = push_layer(reg, repo, 1000 + i * 10 + p_index, APP_LAYER)
            entries.append(push_manifest(reg, repo, platform, [base, app], None if len(platforms) > 1 else "1.0"))
        if len(platforms) > 1:
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
            reg.put_manifest(repo, "1.0", Manifest(body, OCI_INDEX, sha256_digest(body)))
        refs.append(f"{host}/{repo}:1.0")
    big_repo = "apps/big"
    big = push_layer(reg, big_repo, 99, BIG_LAYER)
    push_manifest(reg, big_repo, "linux/amd64", [big], "1.0")
    return refs, f"{host}/{big_repo}:1.0"


# --------------------------------------------------------------------------------------------------
# our engine, in a child process (peak RSS is that process's)

CHILD = r"""
import json, resource, sys, time
t0 = time.monotonic()
sys.path.insert(0, sys.argv[1])
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import Endpoint, MirrorSettings, mirror_images
from ansible_collections.airgap.renku.plugins.module_utils.mirror.bundle import export_bundle, import_bundle
job = json.loads(sys.stdin.read())
verify = job.get("verify", "receipt")
dest = Endpoint(job["dest"], job["ca"], job.get("user"), job.get("password"))
settings = MirrorSettings(destination=dest, prefix="site", keep_registry_host=False, ca_file=job["ca"], parallel=8)
startup = time.monotonic() - t0
t1, r1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
if job["op"] == "mirror":
    lock = job.get("lock")
    result = mirror_images(job["refs"], settings, previous_lock=lock, verify=verify)
elif job["op"] == "export":
    result = export_bundle(job["refs"], MirrorSettings(destination=Endpoint(""), ca_file=job["ca"]), job["bundle"])
else:
    result = import_bundle(job["bundle"], settings)
seconds = time.monotonic() - t1
r2 = resource.getrusage(resource.RUSAGE_SELF)
cpu = r2.ru_utime - r1.ru_utime + r2.ru_stime - r1.ru_stime
print(json.dumps({"seconds": seconds, "cpu": cpu, "startup": startup, "errors": result.errors, "stats": result.stats.as_dict(),
                  "lock": result.lock(), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ours(job: dict) -> dict:
    os.sync()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "build" / "collections")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"mirroring child failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["errors"]:
        raise SystemExit(f"mirroring reported errors: {out['errors'][:3]}")
    return out


# --------------------------------------------------------------------------------------------------
# skopeo


def skopeo_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}


def authfile(path: Path, hosts: list[str], user: str, password: str) -> Path:
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {h: {"auth": token} for h in hosts}}))
    path.chmod(0o600)
    return path


def skopeo_loop(refs: list[str], dest: str, cert_dir: str, auth: Path, home: Path) -> float:
    os.sync()
    started = time.monotonic()
    for ref in refs:
        repo = ref.split("/", 1)[1]
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--all",
                "--preserve-digests",
                "--quiet",
                "--src-cert-dir",
                cert_dir,
                "--dest-cert-dir",
                cert_dir,
                "--dest-authfile",
                str(auth),
                f"docker://{ref}",
                f"docker://{dest}/site/{repo}",
            ],
            check=True,
            env=skopeo_env(home),
            capture_output=True,
        )
    return time.monotonic() - started


def skopeo_sync(refs: list[str], src: str, dest: str, cert_dir: str, auth: Path, home: Path, work: Path) -> float:
    images: dict[str, list[str]] = {}
    for ref in refs:
        repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
        images.setdefault(repo, []).append(tag)
    spec = work / "sync.yaml"
    spec.write_text(yaml.safe_dump({src: {"images": images, "cert-dir": cert_dir, "tls-verify": True}}))
    os.sync()
    started = time.monotonic()
    subprocess.run(
        [
            "skopeo",
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-cert-dir",
            cert_dir,
            "--dest-authfile",
            str(auth),
            str(spec),
            f"{dest}/site",
        ],
        check=True,
        env=skopeo_env(home),
        capture_output=True,
    )
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------------
# raw copy of the same blob bytes


def raw_copy(bundle: Path, src: Registry, dest: Registry, lock: dict) -> float:
    """Every blob of the bundle streamed GET source -> PUT destination, one by one, no manifests."""
    repo_of: dict[str, tuple[str, int]] = {}
    for entry in lock["images"]:
        repo = entry["pulled_from"].split("/", 1)[1].rsplit(":", 1)[0]
        for digest in entry["platforms"].values():
            manifest = json.loads((bundle / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
            for desc in [manifest["config"], *manifest["layers"]]:
                repo_of.setdefault(desc["digest"], (repo, desc["size"]))
    os.sync()
    started = time.monotonic()
    for digest, (repo, size) in repo_of.items():
        resp, chunks = stream_blob(src, repo, digest, size)
        try:
            dest.upload_blob("raw/blobs", digest, chunks, size=size)
        finally:
            resp.close()
    return time.monotonic() - started


def cold_round(n: int, refs: list[str], host: dict, base: dict, ctx: dict, work: Path) -> dict[str, float]:
    """One round on fresh registries: our cold copy and both reruns, the skopeo loop, skopeo sync."""
    daemons = start_registries(work / f"round{n}", ROUND_PORTS)
    times: dict[str, float] = {}
    try:

        def run_ours() -> None:
            meter = CpuMeter(ctx["src"], daemons["ours"])
            cold = ours({**base, "op": "mirror", "refs": refs, "dest": host["ours"]})
            times["cpu_cold"] = meter.registries() + cold["cpu"]
            warm_job = {**base, "op": "mirror", "refs": refs, "dest": host["ours"], "lock": cold["lock"]}
            warm = ours(warm_job)
            tags = ours({**warm_job, "verify": "tags"})
            assert warm["stats"]["receipt"] == "trusted" and tags["stats"]["images_copied"] == 0
            times.update(cold=cold["seconds"], warm=warm["seconds"], warm_tags=tags["seconds"])
            ctx["startup"] = cold["startup"]

        def run_loop() -> None:
            meter = CpuMeter(ctx["src"], daemons["loop"])
            times["loop"] = skopeo_loop(refs, host["loop"], ctx["cert_dir"], ctx["auth"], ctx["home"])
            times["cpu_loop"] = meter.registries() + meter.child_processes()

        def run_sync() -> None:
            meter = CpuMeter(ctx["src"], daemons["sync"])
            times["sync"] = skopeo_sync(
                refs, host["src"], host["sync"], ctx["cert_dir"], ctx["auth"], ctx["home"], work
            )
            times["cpu_sync"] = meter.registries() + meter.child_processes()

        methods = [run_ours, run_loop, run_sync]
        for method in methods[n % 3 :] + methods[: n % 3]:
            method()
    finally:
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(work / f"round{n}", ignore_errors=True)
    log(
        f"round {n + 1}: ours cold {times['cold']:.2f}s warm {times['warm']:.3f}s (tags {times['warm_tags']:.3f}s),"
        f" skopeo loop {times['loop']:.2f}s, sync {times['sync']:.2f}s; CPU seconds (client and both registries)"
        f" ours {times['cpu_cold']:.2f}, loop {times['cpu_loop']:.2f}, sync {times['cpu_sync']:.2f}"
    )
    return times


def lab_env() -> dict:
    """The lab's connection data (`lab.py json`)."""
    return json.loads(
        subprocess.run(
            [sys.executable, str(ROOT / "lab" / "lab.py"), "json"], check=True, capture_output=True, text=True
        ).stdout
    )


def main() -> int:
    env = lab_env()
    ca, cert_dir = env["LAB_CA"], env["LAB_CA_DIR"]
    user, password = env["REGISTRY_INTERNAL_USER"], env["REGISTRY_INTERNAL_PASSWORD"]
    work = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    daemons = start_registries(work / "registries", PORTS)
    try:
        host = {name: f"127.0.0.1:{port}" for name, port in {**PORTS, **ROUND_PORTS}.items()}
        src = Registry(host["src"], ca)
        log("generating the image set")
        refs, big_ref = generate(src, host["src"])
        home = work / "home"
        home.mkdir()
        ctx = {"cert_dir": cert_dir, "auth": authfile(work / "auth.json", list(host.values()), user, password)}
        ctx["home"] = home
        ctx["src"] = daemons["src"]
        base = {"ca": ca, "user": user, "password": password}
        rounds = [cold_round(n, refs, host, base, ctx, work) for n in range(ROUNDS)]
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}

        log("bundle")
        bundle = work / "bundle"
        exported = ours({**base, "op": "export", "refs": refs, "dest": "", "bundle": str(bundle)})
        imported = ours({**base, "op": "import", "dest": host["bundle"], "bundle": str(bundle)})
        raw = raw_copy(bundle, src, Registry(host["raw"], ca, user, password), exported["lock"])
        log(f"bundle export {exported['seconds']:.2f}s import {imported['seconds']:.2f}s raw {raw:.2f}s; big image")
        big = ours({**base, "op": "mirror", "refs": [big_ref], "dest": host["big"]})
        log(f"big image {big['seconds']:.2f}s, {big['stats']['bytes_copied']} bytes")
    finally:
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"mirror_cold_vs_skopeo_loop: {med['loop'] / med['cold']:.2f}")
    print(f"mirror_cold_vs_skopeo_sync: {med['sync'] / med['cold']:.2f}")
    print(f"mirror_warm_vs_cold: {med['warm'] / med['cold']:.4f}")
    print(f"mirror_warm_tags_vs_cold: {med['warm_tags'] / med['cold']:.4f}")
    print(f"bundle_vs_raw_copy: {raw / (exported['seconds'] + imported['seconds']):.2f}")
    print(f"mirror_peak_rss_mb: {big['rss_mb']:.1f}")
    cores = os.cpu_count() or 1
    print(f"mirror_cold_cpu_vs_skopeo_loop: {med['cpu_loop'] / med['cpu_cold']:.2f}")
    print(f"mirror_cold_cpu_vs_skopeo_sync: {med['cpu_sync'] / med['cpu_cold']:.2f}")
    print(f"mirror_cold_vs_skopeo_loop_ceiling: {med['loop'] / (med['cpu_cold'] / cores):.2f}")
    print(f"mirror_cold_cpu_s: {med['cpu_cold']:.2f}")
    print(f"skopeo_loop_cpu_s: {med['cpu_loop']:.2f}")
    print(f"skopeo_sync_cpu_s: {med['cpu_sync']:.2f}")
    print(f"cpu_cores: {cores}")
    print(f"mirror_cold_s: {med['cold']:.2f}")
    print(f"mirror_warm_s: {med['warm']:.3f}")
    print(f"mirror_warm_tags_s: {med['warm_tags']:.3f}")
    print(f"skopeo_loop_s: {med['loop']:.2f}")
    print(f"skopeo_sync_s: {med['sync']:.2f}")
    print(f"mirror_python_startup_s: {ctx['startup']:.2f}")
    print(f"mirror_big_layer_mb: {BIG_LAYER >> 20}")
    print(f"bench_images: {len(refs)}")
    print(f"bench_rounds: {ROUNDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

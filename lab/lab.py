#!/usr/bin/env python3
"""The lab: real Kubernetes control planes, OCI registries and network daemons as plain processes.

    lab.py up | down | status | env

Everything listens on loopback (or inside network namespaces the lab makes). State lives in
`.lab/` at the repository root (or $AIRGAP_LAB_STATE); binaries come from the build cache
(`lab/build-binaries.sh`). `up` is idempotent, `down` stops exactly the processes it started, by pid.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labcore import (
    BIN,
    CLUSTERS,
    CONNECTION_VARS,
    INTERNAL_USER,
    KWOK_NODES,
    LOG,
    LOOPBACK,
    PKI,
    REGISTRIES,
    RUN,
    SERVICE_CIDR,
    STATE,
    Daemon,
    LabCA,
    binary,
    ensure_rsa_key,
    http_ok,
    https_ok,
    log,
    registry_daemon,
    registry_password,
    wait_healthy,
    write_private,
    write_public,
)

COMPONENTS_DIR = Path(__file__).resolve().parent / "components"


def components() -> list[ModuleType]:
    """Optional lab parts in lab/components/*.py, in name order."""
    sys.path.insert(0, str(COMPONENTS_DIR.parent))
    return [importlib.import_module(f"components.{p.stem}") for p in sorted(COMPONENTS_DIR.glob("[a-z]*.py"))]


# --------------------------------------------------------------------------------------------------
# Kubernetes control planes


def kubeconfig(cluster: str, user: str, cert: Path, key: Path) -> dict:
    import base64

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    ctx = f"{user}@lab-{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": f"lab-{cluster}",
                "cluster": {
                    "server": f"https://{LOOPBACK}:{CLUSTERS[cluster]['api']}",
                    "certificate-authority-data": b64(PKI / "ca.crt"),
                },
            }
        ],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": ctx, "context": {"cluster": f"lab-{cluster}", "user": user, "namespace": "default"}}],
        "current-context": ctx,
    }


def write_kubeconfig(path: Path, config: dict) -> Path:
    write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path


def kubeconfig_path(cluster: str, who: str = "admin") -> Path:
    return STATE / f"{who}-{cluster}.kubeconfig"


def control_plane(ca: LabCA, cluster: str) -> list[list[Daemon]]:
    ports = CLUSTERS[cluster]
    data = STATE / f"etcd-{cluster}"
    api_crt, api_key = ca.issue(
        f"apiserver-{cluster}",
        f"kube-apiserver-{cluster}",
        [
            LOOPBACK,
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        ],
    )
    sa_key = ensure_rsa_key(PKI / f"sa-{cluster}.key")
    for who, cn, orgs in (
        ("admin", "lab-admin", ["system:masters"]),
        ("kcm", "system:kube-controller-manager", []),
        ("sched", "system:kube-scheduler", []),
    ):
        crt, key = ca.issue(f"{who}-{cluster}-client", cn, organizations=orgs, client=True)
        write_kubeconfig(kubeconfig_path(cluster, who), kubeconfig(cluster, cn, crt, key))
    kcm_crt, kcm_key = ca.issue(f"kcm-{cluster}-serving", "kube-controller-manager", [LOOPBACK, "localhost"])
    sched_crt, sched_key = ca.issue(f"sched-{cluster}-serving", "kube-scheduler", [LOOPBACK, "localhost"])
    etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
    etcd = Daemon(
        f"etcd-{cluster}",
        [
            binary("etcd"),
            f"--name=lab-{cluster}",
            f"--data-dir={data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://{LOOPBACK}:{ports['peer']}",
            f"--initial-advertise-peer-urls=http://{LOOPBACK}:{ports['peer']}",
            f"--initial-cluster=lab-{cluster}=http://{LOOPBACK}:{ports['peer']}",
            "--unsafe-no-fsync",
            "--log-level=warn",
            "--quota-backend-bytes=2147483648",
        ],
        http_ok(f"{etcd_url}/health"),
    )
    apiserver = Daemon(
        f"apiserver-{cluster}",
        [
            binary("kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--etcd-prefix=/registry-{cluster}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={ports['api']}",
            f"--tls-cert-file={api_crt}",
            f"--tls-private-key-file={api_key}",
            f"--client-ca-file={PKI / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key.with_suffix('.pub')}",
            f"--service-account-signing-key-file={sa_key}",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={STATE / ('apiserver-' + cluster)}",
            "--v=0",
        ],
        https_ok(f"https://{LOOPBACK}:{ports['api']}/readyz"),
    )
    kcm_kc = kubeconfig_path(cluster, "kcm")
    kcm = Daemon(
        f"controller-manager-{cluster}",
        [
            binary("kube-controller-manager"),
            f"--kubeconfig={kcm_kc}",
            f"--authentication-kubeconfig={kcm_kc}",
            f"--authorization-kubeconfig={kcm_kc}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports['kcm']}",
            f"--tls-cert-file={kcm_crt}",
            f"--tls-private-key-file={kcm_key}",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={PKI / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            "--v=0",
        ],
        https_ok(f"https://{LOOPBACK}:{ports['kcm']}/healthz"),
    )
    sched_kc = kubeconfig_path(cluster, "sched")
    sched = Daemon(
        f"scheduler-{cluster}",
        [
            binary("kube-scheduler"),
            f"--kubeconfig={sched_kc}",
            f"--authentication-kubeconfig={sched_kc}",
            f"--authorization-kubeconfig={sched_kc}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports['sched']}",
            f"--tls-cert-file={sched_crt}",
            f"--tls-private-key-file={sched_key}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=0",
        ],
        https_ok(f"https://{LOOPBACK}:{ports['sched']}/healthz"),
    )
    tiers: list[list[Daemon]] = [[etcd], [apiserver], [kcm, sched]]
    tiers[2].append(
        Daemon(
            f"kwok-{cluster}",
            [
                binary("kwok"),
                f"--kubeconfig={kubeconfig_path(cluster)}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--config={Path(__file__).resolve().parent / 'kwok-stages.yaml'}",
                f"--server-address={LOOPBACK}:{ports['kwok']}",
                "--cidr=10.244.0.1/16",
                f"--node-ip={LOOPBACK}",
                "--v=WARN",
            ],
            http_ok(f"http://{LOOPBACK}:{ports['kwok']}/healthz"),
        )
    )
    return tiers


# --------------------------------------------------------------------------------------------------
# the whole lab


def daemons(ca: LabCA) -> list[list[Daemon]]:
    """Start order: each inner list starts together and must be healthy before the next."""
    local, remote = control_plane(ca, "local"), control_plane(ca, "remote")
    tiers = [a + b for a, b in zip(local, remote, strict=True)]
    tiers[0] += [
        registry_daemon(ca, "upstream", REGISTRIES["upstream"], auth=False),
        registry_daemon(ca, "internal", REGISTRIES["internal"], auth=True),
    ]
    extra = [d for comp in components() if hasattr(comp, "daemons") for d in comp.daemons(ca)]
    if extra:
        tiers.append(extra)
    return tiers


def trust_dir() -> Path:
    """A directory holding only the CA, for tools that take a certificate directory (skopeo --cert-dir)."""
    path = STATE / "trust"
    path.mkdir(exist_ok=True)
    write_public(path / "ca.crt", (PKI / "ca.crt").read_bytes())
    return path


def env_vars() -> dict[str, str]:
    return {
        "LAB_STATE": str(STATE),
        "LAB_BIN": str(BIN),
        "LAB_CA": str(PKI / "ca.crt"),
        "LAB_CA_DIR": str(STATE / "trust"),
        "KUBECONFIG_LOCAL": str(kubeconfig_path("local")),
        "KUBECONFIG_REMOTE": str(kubeconfig_path("remote")),
        "REGISTRY_UPSTREAM": f"{LOOPBACK}:{REGISTRIES['upstream']}",
        "REGISTRY_INTERNAL": f"{LOOPBACK}:{REGISTRIES['internal']}",
        "REGISTRY_INTERNAL_USER": INTERNAL_USER,
        "REGISTRY_INTERNAL_PASSWORD": registry_password(),
        "HELM": str(BIN / "helm"),
        "HELM3": str(BIN / "helm3"),
        "KUBECTL": str(BIN / "kubectl"),
        **{k: v for comp in components() if hasattr(comp, "env") for k, v in comp.env().items()},
    }


def write_connection_vars() -> None:
    """The lab's connection data for the lab inventory; never committed (see .gitignore)."""
    env = env_vars()
    data = {
        "lab_state_dir": env["LAB_STATE"],
        "lab_bin_dir": env["LAB_BIN"],
        "lab_ca_file": env["LAB_CA"],
        "lab_kubeconfig_local": env["KUBECONFIG_LOCAL"],
        "lab_kubeconfig_remote": env["KUBECONFIG_REMOTE"],
        "lab_registry_upstream": env["REGISTRY_UPSTREAM"],
        "lab_registry_internal": env["REGISTRY_INTERNAL"],
        "lab_registry_internal_user": env["REGISTRY_INTERNAL_USER"],
        "lab_registry_internal_password": env["REGISTRY_INTERNAL_PASSWORD"],
        "lab_helm": env["HELM"],
        "lab_kubectl": env["KUBECTL"],
    }
    # what lab components export (LAB_GIT_URL, LAB_DNS ...) is there too, as lab_git_url, lab_dns ...
    for comp in components():
        if hasattr(comp, "env"):
            data.update({"lab_" + key.removeprefix("LAB_").lower(): value for key, value in comp.env().items()})
    CONNECTION_VARS.parent.mkdir(parents=True, exist_ok=True)
    header = "---\n# Written by `make lab-up` (lab/lab.py); machine-specific, not under version control.\n"
    write_private(CONNECTION_VARS, (header + yaml.safe_dump(data, sort_keys=True)).encode())


def bootstrap_clusters() -> None:
    """Objects every lab cluster has: kwok-managed nodes (so pods get scheduled and run)."""
    from kubernetes import client, config

    for cluster, nodes in KWOK_NODES.items():
        api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig_path(cluster))))
        existing = {n.metadata.name for n in api.list_node().items}
        for name in nodes:
            if name in existing:
                continue
            api.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    },
                }
            )


def up() -> None:
    for d in (STATE, RUN, LOG, PKI):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE, 0o700)
    started = time.monotonic()
    ca = LabCA(PKI)
    ca.ensure()
    trust_dir()
    for group in daemons(ca):
        for d in group:
            if not d.healthy():
                d.start()
        required = [d for d in group if not d.optional]
        wait_healthy(required)
        for d in group:
            if d.optional:
                try:
                    wait_healthy([d], timeout=30)
                except SystemExit as exc:
                    log(f"optional component {d.name} is not healthy: {exc}")
    write_connection_vars()
    bootstrap_clusters()
    import seed

    env = env_vars()
    seed.seed_upstream(env)
    for comp in components():
        if hasattr(comp, "after_up"):
            comp.after_up(env)
    log(f"lab is up ({time.monotonic() - started:.1f}s); `make -s lab-env` prints its connection data")


def down() -> None:
    if not RUN.exists():
        return
    ca = LabCA(PKI)
    try:
        groups = daemons(ca) if (PKI / "ca.crt").exists() else []
    except SystemExit:
        groups = []
    known = {d.name: d for g in groups for d in g}
    # stop in reverse start order, then anything else we have a pid file for (e.g. test-started daemons)
    for group in reversed(groups):
        with ThreadPoolExecutor(max_workers=len(group)) as pool:
            list(pool.map(Daemon.stop, group))
    for pidfile in RUN.glob("*.pid"):
        name = pidfile.stem
        if name in known:
            continue
        try:
            program = os.readlink(f"/proc/{int(pidfile.read_text())}/exe")
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        Daemon(name, [program], lambda: True).stop()
    log("lab is down")


def status() -> int:
    ca = LabCA(PKI)
    if not (PKI / "ca.crt").exists():
        print("lab: not set up (run `make lab-up`)")
        return 1
    bad = 0
    for group in daemons(ca):
        for d in group:
            ok = d.healthy()
            bad += 0 if ok or d.optional else 1
            print(
                f"{d.name:28} {'healthy' if ok else 'NOT healthy'}{' (optional)' if d.optional else ''}"
                f"  pid={d.pid() or '-'}"
            )
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "env", "json"])
    args = parser.parse_args()
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    elif args.command == "status":
        return status()
    elif args.command == "env":
        for key, value in env_vars().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        print(json.dumps(env_vars(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bare metal on the lab: the roles' files driving real named, Kea, dhcpd, in.tftpd and HAProxy.

The lab component netlab (lab/components/netlab.py) runs the daemons on the files the roles render;
these tests converge the roles, then ask the daemons with real clients: dig, dhclient in its own
network namespace, the tftp-hpa client, HTTP through HAProxy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from playbook import ROOT, SCENARIOS, converge, run_playbook

LAB_VARS = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "all" / "baremetal.yml").read_text())
BRIDGE = "nlbr0"


def lab_host(name: str) -> dict:
    return next(h for h in LAB_VARS["baremetal_hosts"] if h["name"] == name)


def dig(server: str, *query: str) -> list[str]:
    host, port = server.rsplit(":", 1)
    out = subprocess.run(["dig", f"@{host}", "-p", port, "+short", *query], check=True, capture_output=True, text=True)
    return sorted(out.stdout.split("\n")[:-1])


# --------------------------------------------------------------------------------------------------
# dns


def test_dns_role_on_real_named(lab_env):
    converge("dns")
    server = lab_env["LAB_DNS"]
    assert dig(server, "master-2.lab.airgap.test", "A") == ["10.77.0.23"]
    assert dig(server, "anything.apps.lab.airgap.test", "A") == ["10.77.1.6"]
    assert dig(server, "-x", "10.77.0.31") == ["worker-0.lab.airgap.test."]
    assert dig(server, "_etcd-server-ssl._tcp.lab.airgap.test", "SRV") == [
        f"0 10 2380 etcd-{n}.lab.airgap.test." for n in range(3)
    ]
    # the edge network is a /26: its PTRs live in an RFC 2317 zone reached through a CNAME
    assert dig(server, "-x", "10.77.1.10") == ["10.0-26.1.77.10.in-addr.arpa."]
    assert dig(server, "10.0-26.1.77.10.in-addr.arpa", "PTR") == ["lb-0.lab.airgap.test."]


# --------------------------------------------------------------------------------------------------
# dhcp_pxe


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def dhcp_lease(server_ns: str, mac: str, tmp_path: Path, client_conf: str = "") -> tuple[str, dict[str, str]]:
    """A real dhclient in a namespace of its own, plugged into the server's bridge with `mac`: its lease file
    and the variables dhclient-script would have been given (a recording script stands in for it, so nothing
    on this machine is reconfigured)."""
    tag = f"{os.getpid() % 10000}{len(list(tmp_path.iterdir()))}"
    client_ns, client_if, server_if = f"bmtest-{tag}", f"bmc{tag}", f"bms{tag}"
    work = tmp_path / f"client-{tag}"
    work.mkdir()
    script = work / "record.sh"
    script.write_text(f'#!/bin/sh\nenv > "{work}/env.$reason"\n')
    script.chmod(0o755)
    (work / "dhclient.conf").write_text(client_conf)
    _ip("netns", "add", client_ns)
    try:
        _ip("link", "add", client_if, "type", "veth", "peer", "name", server_if)
        _ip("link", "set", client_if, "netns", client_ns)
        _ip("-n", client_ns, "link", "set", client_if, "address", mac)
        _ip("-n", client_ns, "link", "set", client_if, "up")
        _ip("link", "set", server_if, "netns", server_ns)
        _ip("-n", server_ns, "link", "set", server_if, "master", BRIDGE)
        _ip("-n", server_ns, "link", "set", server_if, "up")
        dhclient = ["dhclient", "-4", "-1", "-cf", str(work / "dhclient.conf"), "-sf", str(script)]
        dhclient += ["-lf", str(work / "leases"), "-pf", str(work / "pid"), client_if]
        subprocess.run(["ip", "netns", "exec", client_ns, *dhclient], check=True, capture_output=True, timeout=90)
        lease = (work / "leases").read_text()
        bound = dict(line.split("=", 1) for line in (work / "env.BOUND").read_text().splitlines() if "=" in line)
    finally:
        if (work / "pid").exists():
            os.kill(int((work / "pid").read_text().strip()), signal.SIGTERM)
        # cleanup is best effort: the peer may already be gone with the namespace
        subprocess.run(["ip", "netns", "del", client_ns], capture_output=True, check=False)
        subprocess.run(["ip", "-n", server_ns, "link", "del", server_if], capture_output=True, check=False)
    return lease, bound


def tftp_get(lab_env: dict, remote: str, directory: Path) -> str:
    server, port = lab_env["LAB_TFTP"].rsplit(":", 1)
    local = remote.replace("/", "_")
    subprocess.run(
        ["tftp", server, port, "-c", "get", remote, local], cwd=directory, check=True, capture_output=True, timeout=30
    )
    return (directory / local).read_text()


@pytest.mark.parametrize("server", ["kea", "isc"])
def test_dhcp_pxe_role_client_gets_reserved_address_boot_file_and_tftp_config(lab_env, tmp_path, server):
    """The lab's PXE server runs Kea (namespace LAB_NETNS); dhcpd answers the same site in LAB_NETNS_ISC."""
    converge("dhcp_pxe", extra_vars={"dhcp_pxe_server": server})
    host = lab_host("worker-0")
    namespace = lab_env["LAB_NETNS"] if server == "kea" else lab_env["LAB_NETNS_ISC"]
    lease, bound = dhcp_lease(namespace, host["mac"], tmp_path)
    assert f"fixed-address {host['ip']};" in lease
    assert 'filename "pxelinux.0";' in lease
    assert 'option host-name "worker-0";' in lease
    assert bound["new_next_server"] == "10.77.0.1"
    assert bound["new_routers"] == "10.77.0.1"

    # what that host then asks the TFTP server for: its per-MAC PXELINUX file
    config = tftp_get(lab_env, "pxelinux.cfg/01-" + host["mac"].replace(":", "-"), tmp_path)
    assert "KERNEL images/kernel" in config
    assert "APPEND initrd=images/initramfs.img " in config
    assert "coreos.inst.ignition_url=http://127.0.0.1:18081/ignition/worker.ign" in config
    assert "coreos.inst.install_dev=/dev/sda" in config


@pytest.fixture(scope="module")
def kea_converged(lab_env) -> None:
    """The lab's Kea on the role's configuration (unchanged when it already is)."""
    result = run_playbook(SCENARIOS / "dhcp_pxe" / "converge.yml", extra_vars={"dhcp_pxe_server": "kea"})
    assert result.rc == 0, result.output[-3000:]


ARCH = "option client-arch code 93 = unsigned integer 16;\nsend client-arch {};\n"


@pytest.mark.parametrize(
    ("host_name", "client_conf", "boot_file"),
    [
        ("master-1", ARCH.format(7), "grubx64.efi"),  # x86-64 UEFI
        ("master-1", ARCH.format(11), "grubaa64.efi"),  # arm64 UEFI
        (
            "worker-1",
            'send vendor-class-identifier "HTTPClient:Arch:00016:UNDI:003001";\n',
            "http://127.0.0.1:18081/grubx64.efi",
        ),
        ("master-2", "", "undionly.kpxe"),  # boot_mode ipxe, BIOS firmware: chain-loaded into iPXE
        ("master-2", ARCH.format(7), "ipxe.efi"),  # boot_mode ipxe, UEFI firmware
        ("master-2", 'send user-class "iPXE";\n', "http://127.0.0.1:18081/ipxe/boot.ipxe"),  # iPXE itself
    ],
)
def test_kea_client_classes_give_each_kind_of_client_its_boot_file(
    lab_env, tmp_path, host_name, client_conf, boot_file
):
    """Against the lab's live Kea (converged by the scenario above or by `make demo`): the reservation and the class."""
    host = lab_host(host_name)
    lease, _bound = dhcp_lease(lab_env["LAB_NETNS"], host["mac"], tmp_path, client_conf)
    assert f"fixed-address {host['ip']};" in lease
    assert f'filename "{boot_file}";' in lease


# --------------------------------------------------------------------------------------------------
# haproxy


def test_haproxy_role_on_real_haproxy(lab_env):
    converge("haproxy")


class _Backend:
    """A small HTTP server answering its own name, on a port of its own."""

    def __init__(self, name: str, port: int) -> None:
        body = f"{name}\n".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _stats(port: int, password: str) -> dict[str, str]:
    """Server states from the statistics page ({} while HAProxy is not listening yet)."""
    with requests.Session() as session:
        session.trust_env = False
        try:
            csv = session.get(f"http://127.0.0.1:{port}/;csv", auth=("admin", password), timeout=3).text
        except requests.ConnectionError:
            return {}
    rows = [line.split(",") for line in csv.splitlines() if line and not line.startswith("#")]
    return {f"{r[0]}/{r[1]}": r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def test_haproxy_takes_a_failing_backend_out(lab_env, tmp_path):
    """A private HAProxy from the role's file: API servers checked on /readyz with the lab CA, and an
    ingress backend stopped mid-test leaves the rotation while traffic moves to the other."""
    ports = {"api": 19743, "machine_config": 19723, "https": 19543, "http": 19180}
    stats_port, password = 19937, "failover-test-password"
    backends = [_Backend("web-a", 19181), _Backend("web-b", 19182)]
    extra = {
        "haproxy_config_dir": str(tmp_path),
        "haproxy_ports": ports,
        "haproxy_stats_port": stats_port,
        "haproxy_stats_password": password,
        "haproxy_check_interval": "500ms",
        "haproxy_reload_command": ["true"],
        "haproxy_backend_servers": {
            **LAB_VARS["haproxy_backend_servers"],
            "http": [
                {"name": "web-a", "address": "127.0.0.1", "port": 19181},
                {"name": "web-b", "address": "127.0.0.1", "port": 19182},
            ],
        },
    }
    result = run_playbook(SCENARIOS / "haproxy" / "converge.yml", extra_vars=extra)
    assert result.rc == 0, result.output[-3000:]
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        up = _wait(lambda: (states := _stats(stats_port, password)) and all(v == "UP" for v in states.values()))
        assert up, _stats(stats_port, password)
        states = _stats(stats_port, password)
        assert states["api/api-local"] == "UP" and states["api/api-remote"] == "UP"  # TLS /readyz, lab CA

        def answers(n: int = 6) -> list[str]:
            with requests.Session() as session:
                session.trust_env = False
                return [
                    session.get(f"http://127.0.0.1:{ports['http']}/", timeout=3).text.strip() for _request in range(n)
                ]

        assert set(answers()) == {"web-a", "web-b"}
        backends[0].stop()
        assert _wait(lambda: _stats(stats_port, password)["http/web-a"].startswith("DOWN"))
        assert set(answers()) == {"web-b"}
        with requests.Session() as session:
            session.trust_env = False
            ready = session.get(f"https://127.0.0.1:{ports['api']}/readyz", verify=lab_env["LAB_CA"], timeout=5)
        assert ready.text == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        backends[1].stop()


# --------------------------------------------------------------------------------------------------
# the whole stage: refusal, check mode, the checker


def _private_dirs(tmp_path: Path) -> dict:
    """Every path of the three roles under tmp_path, so nothing live is touched."""
    return {
        "dns_config_dir": str(tmp_path / "bind"),
        "dns_working_dir": str(tmp_path / "bind" / "work"),
        "dns_run_dir": str(tmp_path / "bind" / "run"),
        "dns_reload_command": ["true"],
        "dhcp_pxe_dhcpd_config_file": str(tmp_path / "dhcp" / "dhcpd.conf"),
        "dhcp_pxe_kea_config_file": str(tmp_path / "dhcp" / "kea-dhcp4.conf"),
        "dhcp_pxe_tftp_root": str(tmp_path / "tftp"),
        "dhcp_pxe_http_root": str(tmp_path / "http"),
        "dhcp_pxe_restart_command": ["true"],
        "haproxy_config_dir": str(tmp_path / "haproxy"),
        "haproxy_reload_command": ["true"],
    }


def test_writeup_mistake_is_refused_and_nothing_is_written(lab_env, tmp_path):
    hosts = list(LAB_VARS["baremetal_hosts"])
    hosts += [
        {
            "name": f"compute-{n}",
            "role": "worker",
            "mac": f"52:54:00:77:00:5{n}",
            "ip": "10.77.0.50",
            "network": "machines",
        }
        for n in range(3)
    ]
    out = tmp_path / "site"
    out.mkdir()
    result = run_playbook(
        ROOT / "playbooks" / "baremetal.yml", extra_vars={**_private_dirs(out), "baremetal_hosts": hosts}
    )
    assert result.rc != 0
    task = "Validate hosts, networks and cluster (unique names, MACs, addresses; subnets, pools, VIPs, masters)"
    message = result.task_results(task)[0]["msg"]
    assert 'hosts[8] "compute-1" ip: 10.77.0.50 is also used by hosts[7] "compute-0"' in message
    assert 'hosts[9] "compute-2" ip: 10.77.0.50 is also used by hosts[7] "compute-0"' in message
    assert result.changed == 0
    assert list(out.iterdir()) == []


def test_check_mode_writes_nothing(lab_env, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    result = run_playbook(ROOT / "playbooks" / "baremetal.yml", check=True, diff=True, extra_vars=_private_dirs(out))
    assert result.rc == 0, result.output[-3000:]
    assert result.changed > 0  # it would write the files
    assert list(out.iterdir()) == []


def test_checker_reports_every_check(lab_env, tmp_path):
    converge = run_playbook(ROOT / "playbooks" / "baremetal.yml")  # the lab's live files (unchanged if converged)
    assert converge.rc == 0, converge.output[-3000:]
    report_file = tmp_path / "report.json"
    result = run_playbook(ROOT / "playbooks" / "check.yml", extra_vars={"check_report_file": str(report_file)})
    assert result.rc == 0, result.output[-3000:]
    report = json.loads(report_file.read_text())
    assert report["ok"] and report["failed"] == 0
    hosts = LAB_VARS["baremetal_hosts"]
    assert report["by_check"]["dns"]["passed"] == 2 * len(hosts) + 3 + 1  # A and PTR per host, VIPs, etcd SRV
    assert report["by_check"]["tftp"]["passed"] == len(
        [h for h in hosts if h.get("boot_mode") in ("bios", "uefi") and h["role"] != "lb"]
    )
    assert report["by_check"]["lb"]["passed"] == 4
    # Kea's running configuration: a reservation per host on the DHCP network, and the eight boot classes
    reserved = [h for h in hosts if h["network"] == "machines"]
    assert report["by_check"]["dhcp"] == {"passed": len(reserved) + 8, "failed": 0}

    # a wrong DNS port: the checker fails and names every record it could not get
    broken = tmp_path / "broken.json"
    result = run_playbook(
        ROOT / "playbooks" / "check.yml", extra_vars={"check_report_file": str(broken), "check_dns_port": 1}
    )
    assert result.rc != 0
    failed = json.loads(broken.read_text())
    assert failed["by_check"]["dns"]["failed"] == report["by_check"]["dns"]["passed"]
    assert failed["by_check"]["tftp"]["failed"] == 0


@pytest.fixture(autouse=True)
def _tools():
    missing = [
        t
        for t in ("dig", "tftp", "dhclient", "haproxy", "named", "dhcpd", "kea-dhcp4", "socat")
        if shutil.which(t) is None
    ]
    if missing:
        pytest.fail(f"missing tools {missing}: run `make deps` (lab/install-deps.sh)")


# --------------------------------------------------------------------------------------------------
# node_csr_approve on the lab's API server


def _csr_pem(cn: str, dns: list[str] | None = None, ips: list[str] | None = None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return base64.b64encode(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)).decode()


class _Cluster:
    """The lab's local API server as admin, and as other identities through impersonation."""

    def __init__(self, kubeconfig: str, tag: str) -> None:
        self.kubeconfig, self.tag = kubeconfig, tag
        self.admin = kube_config.new_client_from_config(kubeconfig)
        self.rbac_name = f"csr-test-{tag}"

    def as_user(self, user: str, group: str) -> kube_client.CertificatesV1Api:
        api = kube_config.new_client_from_config(self.kubeconfig)
        api.set_default_header("Impersonate-User", user)
        api.set_default_header("Impersonate-Group", group)
        return kube_client.CertificatesV1Api(api)

    def allow_csr_creation(self, users: list[str]) -> None:
        """Only `certificatesigningrequests` (no nodeclient subresource): the built-in approver leaves them."""
        rbac = kube_client.RbacAuthorizationV1Api(self.admin)
        rule = kube_client.V1PolicyRule(
            api_groups=["certificates.k8s.io"],
            resources=["certificatesigningrequests"],
            verbs=["create", "get", "list"],
        )
        rbac.create_cluster_role(kube_client.V1ClusterRole(metadata={"name": self.rbac_name}, rules=[rule]))
        subjects = [
            kube_client.RbacV1Subject(kind="User", name=u, api_group="rbac.authorization.k8s.io") for u in users
        ]
        rbac.create_cluster_role_binding(
            kube_client.V1ClusterRoleBinding(
                metadata={"name": self.rbac_name},
                role_ref=kube_client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=self.rbac_name
                ),
                subjects=subjects,
            )
        )

    def request(self, api: kube_client.CertificatesV1Api, name: str, signer: str, pem: str, usages: list[str]) -> None:
        body = kube_client.V1CertificateSigningRequest(
            metadata={"name": f"{self.tag}-{name}"},
            spec=kube_client.V1CertificateSigningRequestSpec(request=pem, signer_name=signer, usages=usages),
        )
        api.create_certificate_signing_request(body)

    def conditions(self) -> dict[str, list[str]]:
        items = kube_client.CertificatesV1Api(self.admin).list_certificate_signing_request().items
        return {
            i.metadata.name[len(self.tag) + 1 :]: [f"{c.type}/{c.reason}" for c in (i.status.conditions or [])]
            for i in items
            if i.metadata.name.startswith(self.tag + "-")
        }

    def add_node(self, name: str) -> None:
        kube_client.CoreV1Api(self.admin).create_node(kube_client.V1Node(metadata={"name": name}))

    def cleanup(self, nodes: list[str]) -> None:
        certificates, core = kube_client.CertificatesV1Api(self.admin), kube_client.CoreV1Api(self.admin)
        rbac = kube_client.RbacAuthorizationV1Api(self.admin)
        calls = [(certificates.delete_certificate_signing_request, f"{self.tag}-{n}") for n in self.conditions()]
        calls += [(core.delete_node, n) for n in nodes]
        calls += [(rbac.delete_cluster_role_binding, self.rbac_name), (rbac.delete_cluster_role, self.rbac_name)]
        for call, name in calls:
            with contextlib.suppress(kube_client.ApiException):
                call(name)


def _approve(tmp_path: Path, kubeconfig: str, nodes: list[dict], check: bool = False, **options) -> tuple[int, dict]:
    playbook = tmp_path / "approve.yml"
    task = {"airgap.renku.node_csr_approve": {"kubeconfig": kubeconfig, "nodes": nodes, "wait_sleep": 1, **options}}
    play = [
        {
            "name": "Approve",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "Approve node CSRs", **task}],
        }
    ]
    playbook.write_text(yaml.safe_dump(play))
    result = run_playbook(playbook, check=check, diff=True)
    found = result.task_results("Approve node CSRs")
    assert found, result.output[-3000:]
    return result.rc, found[0]


CLIENT_USAGES = ["digital signature", "client auth"]
SERVING_USAGES = ["digital signature", "server auth"]


def test_node_csr_approve_approves_only_inventory_kubelets(lab_env, tmp_path):
    tag = f"csrt{os.getpid() % 100000}"
    n0, n1, n2 = f"{tag}-0", f"{tag}-1", f"{tag}-2"
    nodes = [{"name": n0, "addresses": ["10.77.0.41"]}, {"name": n1, "addresses": ["10.77.0.42"]}]
    cluster = _Cluster(lab_env["KUBECONFIG_LOCAL"], tag)
    bootstrapper = f"system:serviceaccount:default:{tag}-bootstrapper"
    try:
        cluster.allow_csr_creation([bootstrapper, f"system:node:{n0}", f"system:node:{n1}"])
        boot = cluster.as_user(bootstrapper, "system:serviceaccounts")
        node0, node1 = (cluster.as_user(f"system:node:{n}", "system:nodes") for n in (n0, n1))
        client_signer, serving_signer = "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"
        cluster.request(boot, "client-known", client_signer, _csr_pem(f"system:node:{n0}"), CLIENT_USAGES)
        cluster.request(boot, "client-unknown", client_signer, _csr_pem(f"system:node:{tag}-intruder"), CLIENT_USAGES)
        cluster.request(
            node0, "serving-known", serving_signer, _csr_pem(f"system:node:{n0}", [n0], ["10.77.0.41"]), SERVING_USAGES
        )
        cluster.request(
            node1,
            "serving-wrong-ip",
            serving_signer,
            _csr_pem(f"system:node:{n1}", [n1], ["10.77.0.99"]),
            SERVING_USAGES,
        )
        extra = _csr_pem(f"system:node:{n1}", [n1, f"api.{tag}.test"], ["10.77.0.42"])
        cluster.request(node1, "serving-extra-san", serving_signer, extra, SERVING_USAGES)
        pending = cluster.conditions()
        assert len(pending) == 5 and not any(pending.values())  # nothing approved them meanwhile

        # check mode: the decision, and nothing written
        rc, checked = _approve(tmp_path, lab_env["KUBECONFIG_LOCAL"], nodes, check=True)
        assert rc == 0 and checked["changed"]
        assert sorted(a["name"] for a in checked["approved"]) == [f"{tag}-client-known", f"{tag}-serving-known"]
        assert checked["diff"]["after"][f"{tag}-client-known"] == "Approved"
        assert cluster.conditions() == pending

        rc, done = _approve(tmp_path, lab_env["KUBECONFIG_LOCAL"], nodes)
        assert rc == 0 and done["changed"]
        left = {item["name"][len(tag) + 1 :]: item["reason"] for item in done["left"] if item["name"].startswith(tag)}
        assert left == {
            "client-unknown": f"{tag}-intruder is not a node of the inventory",
            "serving-wrong-ip": "IP addresses ['10.77.0.99'] are not the inventory's ['10.77.0.42']",
            "serving-extra-san": f"DNS names ['api.{tag}.test', '{n1}'] are not the inventory's ['{n1}']",
        }
        state = cluster.conditions()
        assert state["client-known"][:1] == state["serving-known"][:1] == ["Approved/AirgapRenkuInventory"]
        assert state["client-unknown"] == state["serving-wrong-ip"] == state["serving-extra-san"] == []

        rc, again = _approve(tmp_path, lab_env["KUBECONFIG_LOCAL"], nodes)
        assert rc == 0 and not again["changed"]

        rc, denied = _approve(tmp_path, lab_env["KUBECONFIG_LOCAL"], nodes, deny=True)
        assert rc == 0 and denied["changed"]
        state = cluster.conditions()
        for name in ("client-unknown", "serving-wrong-ip", "serving-extra-san"):
            assert state[name] == ["Denied/AirgapRenkuInventory"], state

        # waiting: done once every node has joined; a node that never joins times out and says which
        cluster.add_node(n0)
        cluster.add_node(n1)
        rc, joined = _approve(tmp_path, lab_env["KUBECONFIG_LOCAL"], nodes, wait_timeout=30)
        assert rc == 0 and joined["joined"] == [n0, n1] and joined["passes"] == 1
        late = [*nodes, {"name": n2, "addresses": ["10.77.0.43"]}]
        started = time.monotonic()
        rc, timed_out = _approve(tmp_path, lab_env["KUBECONFIG_LOCAL"], late, wait_timeout=3)
        assert rc != 0 and timed_out["missing"] == [n2] and timed_out["passes"] >= 2
        assert f"nodes {n2} had not joined after 3s" in timed_out["msg"]
        assert time.monotonic() - started < 60
    finally:
        cluster.cleanup([n0, n1])


# --------------------------------------------------------------------------------------------------
# install-config.yaml for the mirrored site, served by the lab's boot HTTP server program


def _lab_lock(lab_env: dict) -> dict:
    """A mirror lock in the format the mirror stage writes, pointing at the lab's internal registry."""
    internal = lab_env["REGISTRY_INTERNAL"]
    return {
        "apiVersion": "airgap.renku/v1",
        "kind": "MirrorLock",
        "images": [
            {
                "source": f"quay.io/openshift-release-dev/ocp-release:4.18.1-{arch}",
                "destination": f"{internal}/quay.io/openshift-release-dev/ocp-release:4.18.1-{arch}",
                "digest": "sha256:" + digit * 64,
            }
            for arch, digit in (("x86_64", "1"), ("aarch64", "2"))
        ],
    }


def test_install_config_is_validated_and_served_with_its_checksum(lab_env, tmp_path):
    lock = tmp_path / "mirror-lock.yaml"
    lock.write_text(yaml.safe_dump(_lab_lock(lab_env)))
    site_dir = tmp_path / "site"
    extra = {
        **_private_dirs(site_dir),
        "dhcp_pxe_server": "isc",
        "dhcp_pxe_install_config_enabled": True,
        "dhcp_pxe_install_config_lock_file": str(lock),
        "dhcp_pxe_install_config_ca_file": lab_env["LAB_CA"],
        "dhcp_pxe_install_config_registry": {
            "host": lab_env["REGISTRY_INTERNAL"],
            "username": lab_env["REGISTRY_INTERNAL_USER"],
            "password": lab_env["REGISTRY_INTERNAL_PASSWORD"],
        },
    }
    converge = SCENARIOS / "dhcp_pxe" / "converge.yml"
    refused = run_playbook(
        converge, extra_vars={**extra, "dhcp_pxe_install_config_settings": {"service_networks": ["10.77.0.0/16"]}}
    )
    assert refused.rc != 0
    assert (
        "install_config networks: service_networks[0] 10.77.0.0/16 overlaps machine network 10.77.0.0/24"
        in refused.output
    )
    assert lab_env["REGISTRY_INTERNAL_PASSWORD"] not in refused.output
    assert not site_dir.exists() or not any(site_dir.rglob("*.yaml"))

    first = run_playbook(converge, extra_vars=extra)
    assert first.rc == 0, first.output[-3000:]
    again = run_playbook(converge, extra_vars=extra)
    assert again.rc == 0 and again.changed == 0, again.changed_tasks()
    assert lab_env["REGISTRY_INTERNAL_PASSWORD"] not in first.output + again.output

    port = 18099
    serve = [str(ROOT / "lab" / "components" / "netlab.py"), "serve-http", "--port", str(port), "--dir"]
    server = subprocess.Popen(
        [sys.executable, *serve, str(site_dir / "http")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with requests.Session() as session:
            session.trust_env = False
            base = f"http://127.0.0.1:{port}"
            body = _wait(lambda: _get(session, f"{base}/install-config.yaml"))
            sums = _get(session, f"{base}/SHA256SUMS")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert f"{hashlib.sha256(body).hexdigest()}  install-config.yaml" in sums.decode().splitlines()
    document = yaml.safe_load(body)
    assert (document["metadata"]["name"], document["baseDomain"]) == ("lab", "airgap.test")
    assert (document["controlPlane"]["replicas"], document["compute"][0]["replicas"]) == (3, 2)
    assert document["platform"] == {"none": {}}
    assert document["additionalTrustBundle"].strip() == Path(lab_env["LAB_CA"]).read_text().strip()
    auth = json.loads(document["pullSecret"])["auths"][lab_env["REGISTRY_INTERNAL"]]["auth"]
    user = lab_env["REGISTRY_INTERNAL_USER"]
    assert base64.b64decode(auth).decode() == f"{user}:{lab_env['REGISTRY_INTERNAL_PASSWORD']}"
    assert document["imageDigestSources"] == [
        {
            "source": "quay.io/openshift-release-dev/ocp-release",
            "mirrors": [f"{lab_env['REGISTRY_INTERNAL']}/quay.io/openshift-release-dev/ocp-release"],
        }
    ]


def _get(session: requests.Session, url: str) -> bytes:
    try:
        response = session.get(url, timeout=3)
    except requests.ConnectionError:
        return b""
    return response.content if response.status_code == 200 else b""

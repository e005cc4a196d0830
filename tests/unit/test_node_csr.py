"""Kubelet CSRs judged against the inventory: real requests made with cryptography, no cluster."""

from __future__ import annotations

import base64
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import csr

NODES = csr.inventory_nodes(
    [
        {"name": "worker-0", "addresses": ["10.77.0.31"]},
        {"name": "worker-1", "addresses": ["10.77.0.32"], "dns_names": ["worker-1", "worker-1.lab.airgap.test"]},
    ]
)
CLIENT = ["digital signature", "client auth"]
SERVING = ["digital signature", "server auth"]


def request(cn: str, dns: list[str] | None = None, ips: list[str] | None = None, org: str = "system:nodes") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    names = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(names)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def obj(name: str, signer: str, username: str, req: str, usages: list[str], conditions: list | None = None) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"signerName": signer, "username": username, "request": req, "usages": usages},
        "status": {"conditions": conditions or []},
    }


def verdict(item: dict, joined: frozenset[str] = frozenset(), deny: bool = False) -> tuple[str, str]:
    found = csr.judge(item, NODES, set(joined), deny)
    return found.action, found.reason


BOOTSTRAP = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"


def test_client_request_of_an_inventory_node_is_approved():
    item = obj("a", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:worker-0"), CLIENT)
    assert verdict(item) == ("approve", "kubelet client certificate of inventory node worker-0")


def test_unknown_node_and_wrong_subject_are_left_with_the_reason():
    unknown = obj("b", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:intruder"), CLIENT)
    assert verdict(unknown) == ("leave", "intruder is not a node of the inventory")
    wrong_org = obj("c", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:worker-0", org="system:masters"), CLIENT)
    assert verdict(wrong_org) == ("leave", "subject O ['system:masters'] is not [system:nodes]")
    with_san = obj("d", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:worker-0", dns=["worker-0"]), CLIENT)
    assert verdict(with_san)[1] == "a kubelet client certificate carries no subject alternative names"


def test_a_joined_node_renews_only_itself():
    item = obj("e", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:worker-0"), CLIENT)
    action, reason = verdict(item, frozenset({"worker-0"}))
    assert action == "leave" and reason.startswith("node worker-0 has already joined")
    renewal = obj("f", csr.CLIENT_SIGNER, "system:node:worker-0", request("system:node:worker-0"), CLIENT)
    assert verdict(renewal, frozenset({"worker-0"}))[0] == "approve"


def test_serving_request_must_name_exactly_the_inventory_addresses():
    good = obj(
        "g",
        csr.SERVING_SIGNER,
        "system:node:worker-0",
        request("system:node:worker-0", ["worker-0"], ["10.77.0.31"]),
        SERVING,
    )
    assert verdict(good) == ("approve", "kubelet serving certificate of inventory node worker-0")
    wrong_ip = obj(
        "h",
        csr.SERVING_SIGNER,
        "system:node:worker-0",
        request("system:node:worker-0", ["worker-0"], ["10.77.0.99"]),
        SERVING,
    )
    assert verdict(wrong_ip) == ("leave", "IP addresses ['10.77.0.99'] are not the inventory's ['10.77.0.31']")
    extra = request(
        "system:node:worker-1", ["worker-1", "worker-1.lab.airgap.test", "api.lab.airgap.test"], ["10.77.0.32"]
    )
    extra_san = obj("i", csr.SERVING_SIGNER, "system:node:worker-1", extra, SERVING)
    assert verdict(extra_san)[1].startswith("DNS names ['api.lab.airgap.test', 'worker-1', 'worker-1.lab.airgap.test']")
    by_other = obj(
        "j",
        csr.SERVING_SIGNER,
        "system:node:worker-1",
        request("system:node:worker-0", ["worker-0"], ["10.77.0.31"]),
        SERVING,
    )
    assert verdict(by_other)[1] == "requested by system:node:worker-1, not by the node itself (system:node:worker-0)"
    client_usage = obj(
        "k",
        csr.SERVING_SIGNER,
        "system:node:worker-0",
        request("system:node:worker-0", ["worker-0"], ["10.77.0.31"]),
        CLIENT,
    )
    assert verdict(client_usage)[0] == "leave"


def test_deny_only_kubelet_requests_and_skip_decided_ones():
    unknown = obj("l", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:intruder"), CLIENT)
    assert verdict(unknown, deny=True)[0] == "deny"
    other = obj("m", "example.com/signer", "someone", request("anything"), CLIENT)
    assert verdict(other, deny=True) == ("leave", "signer example.com/signer is not a kubelet signer")
    done = obj("n", csr.CLIENT_SIGNER, BOOTSTRAP, request("system:node:worker-0"), CLIENT, [{"type": "Approved"}])
    assert verdict(done) == ("done", "already approved")


def test_site_nodes_skip_bootstrap_and_load_balancers():
    site = {
        "hosts": [
            {"name": "bootstrap", "fqdn": "bootstrap.c.example.org", "role": "bootstrap", "ip": "10.0.0.5"},
            {"name": "master-0", "fqdn": "master-0.c.example.org", "role": "master", "ip": "10.0.0.10"},
            {"name": "lb-0", "fqdn": "lb-0.c.example.org", "role": "lb", "ip": "10.0.0.2"},
        ]
    }
    assert csr.site_nodes(site) == [
        {"name": "master-0.c.example.org", "addresses": ["10.0.0.10"], "dns_names": ["master-0.c.example.org"]}
    ]
    assert csr.site_nodes(site, "short")[0]["name"] == "master-0"

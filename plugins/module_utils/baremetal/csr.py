# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubelet certificate signing requests judged against the inventory (used by node_csr_approve).

A pending CSR is approved only when it is one of the two kubelet kinds and names an inventory node exactly:

- `kubernetes.io/kube-apiserver-client-kubelet`: subject `CN=system:node:<name>, O=system:nodes` of an
  inventory node, no subject alternative names, client usages. A node that has already joined renews its own
  certificate: then the requester must be that node; anyone else asking for its identity is refused.
- `kubernetes.io/kubelet-serving`: requested by `system:node:<name>` itself, the same subject, and DNS names
  and IP addresses exactly the inventory's for that node (nothing missing, nothing extra), server usages.

Everything else is left (and denied only when asked), each with the reason.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any, Callable

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_CRYPTOGRAPHY = False

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
CLIENT_USAGES = ({"client auth", "digital signature"}, {"client auth", "digital signature", "key encipherment"})
SERVING_USAGES = ({"server auth", "digital signature"}, {"server auth", "digital signature", "key encipherment"})
REASON = "AirgapRenkuInventory"


class CsrError(ValueError):
    """Bad options (a node without a name, an address that is not one)."""


@dataclass
class Node:
    name: str
    addresses: frozenset[str]
    dns_names: frozenset[str]


@dataclass
class Verdict:
    name: str
    signer: str
    username: str
    node: str
    action: str  # approve, deny, leave, done (already approved or denied)
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("name", "signer", "username", "node", "action", "reason")}


@dataclass
class Pass:
    verdicts: list[Verdict] = field(default_factory=list)

    def of(self, action: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.action == action]


def inventory_nodes(nodes: list[dict]) -> dict[str, Node]:
    """The `nodes` option by name; DNS names default to the node name."""
    found: dict[str, Node] = {}
    for index, item in enumerate(nodes):
        name = str(item.get("name") or "")
        if not name:
            raise CsrError(f"nodes[{index}] name: missing; give the node name (system:node:<name>)")
        addresses = []
        for value in item.get("addresses") or []:
            try:
                addresses.append(str(ipaddress.ip_address(str(value))))
            except ValueError as exc:
                raise CsrError(f'nodes[{index}] "{name}" addresses: {value!r} is not an IP address') from exc
        dns_names = item.get("dns_names")
        found[name] = Node(name, frozenset(addresses), frozenset(dns_names if dns_names is not None else [name]))
    return found


def site_nodes(site: dict, name_format: str = "fqdn") -> list[dict]:
    """The `nodes` option from a validated site: every master, infra and worker host (the bootstrap node and
    the load balancers never join), named by its FQDN or short name, with its address."""
    if name_format not in ("fqdn", "short"):
        raise CsrError(f"name_format: {name_format!r} is not fqdn or short (how the kubelets name their nodes)")
    joining = [h for h in site["hosts"] if h["role"] in ("master", "infra", "worker")]
    key = "fqdn" if name_format == "fqdn" else "name"
    return [{"name": h[key], "addresses": [h["ip"]], "dns_names": [h[key]]} for h in joining]


# --------------------------------------------------------------------------------------------------
# one CSR


@dataclass
class Request:
    common_names: list[str]
    organizations: list[str]
    dns_names: list[str]
    ip_addresses: list[str]
    other_sans: int


def parse_request(request_b64: str) -> Request:
    """The subject and SANs of a CSR's `spec.request` (base64 of a PEM CERTIFICATE REQUEST)."""
    csr = x509.load_pem_x509_csr(base64.b64decode(request_b64))
    subject = csr.subject
    dns: list[str] = []
    ips: list[str] = []
    other = 0
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if sans is not None:
        dns = sans.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        other = len(list(sans)) - len(dns) - len(ips)
    return Request(
        common_names=[str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)],
        organizations=[str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)],
        dns_names=dns,
        ip_addresses=ips,
        other_sans=other,
    )


def _state(csr: dict) -> str:
    types = {c.get("type") for c in (csr.get("status") or {}).get("conditions") or []}
    return (
        "denied" if "Denied" in types else "approved" if "Approved" in types else "failed" if "Failed" in types else ""
    )


def _subject_node(request: Request) -> tuple[str, str]:
    """(node name, problem) from the subject: one CN system:node:<name>, O exactly system:nodes."""
    if len(request.common_names) != 1 or not request.common_names[0].startswith(NODE_PREFIX):
        return "", f"subject CN {request.common_names} is not system:node:<name>"
    if request.organizations != [NODES_GROUP]:
        return request.common_names[0][len(NODE_PREFIX) :], f"subject O {request.organizations} is not [{NODES_GROUP}]"
    return request.common_names[0][len(NODE_PREFIX) :], ""


def _client_problem(request: Request, username: str, node: str, joined: set[str]) -> str:
    if request.dns_names or request.ip_addresses or request.other_sans:
        return "a kubelet client certificate carries no subject alternative names"
    if node in joined and username != NODE_PREFIX + node:
        return f"node {node} has already joined: only the node itself ({NODE_PREFIX}{node}) may renew, not {username}"
    if username.startswith(NODE_PREFIX) and username != NODE_PREFIX + node:
        return f"requested by {username}, another node"
    return ""


def _serving_problem(request: Request, username: str, wanted: Node) -> str:
    if username != NODE_PREFIX + wanted.name:
        return f"requested by {username}, not by the node itself ({NODE_PREFIX}{wanted.name})"
    if request.other_sans:
        return "subject alternative names other than DNS names and IP addresses"
    problems = []
    dns, ips = set(request.dns_names), {str(ipaddress.ip_address(ip)) for ip in request.ip_addresses}
    if dns != wanted.dns_names:
        problems.append(f"DNS names {sorted(dns)} are not the inventory's {sorted(wanted.dns_names)}")
    if ips != wanted.addresses:
        problems.append(f"IP addresses {sorted(ips)} are not the inventory's {sorted(wanted.addresses)}")
    return "; ".join(problems)


def judge(csr: dict, nodes: dict[str, Node], joined: set[str], deny: bool = False) -> Verdict:
    """The verdict on one CSR (a dict as the API returns it)."""
    spec = csr.get("spec") or {}
    name, signer, username = csr["metadata"]["name"], spec.get("signerName", ""), spec.get("username", "")

    def verdict(action: str, reason: str, node: str = "") -> Verdict:
        if action == "leave" and deny and signer in (CLIENT_SIGNER, SERVING_SIGNER):
            action = "deny"
        return Verdict(name, signer, username, node, action, reason)

    state = _state(csr)
    if state:
        return Verdict(name, signer, username, "", "done", f"already {state}")
    if signer not in (CLIENT_SIGNER, SERVING_SIGNER):
        return Verdict(name, signer, username, "", "leave", f"signer {signer} is not a kubelet signer")
    try:
        request = parse_request(spec.get("request", ""))
    except (ValueError, TypeError) as exc:
        return verdict("leave", f"the request does not parse as a PEM certificate request: {exc}")
    node, problem = _subject_node(request)
    if problem:
        return verdict("leave", problem, node)
    if node not in nodes:
        return verdict("leave", f"{node} is not a node of the inventory", node)
    usages = set(spec.get("usages") or [])
    if signer == CLIENT_SIGNER:
        problem = _client_problem(request, username, node, joined)
        if not problem and usages not in CLIENT_USAGES:
            problem = f"usages {sorted(usages)} are not those of a kubelet client certificate"
    else:
        problem = _serving_problem(request, username, nodes[node])
        if not problem and usages not in SERVING_USAGES:
            problem = f"usages {sorted(usages)} are not those of a kubelet serving certificate"
    if problem:
        return verdict("leave", problem, node)
    kind = "client" if signer == CLIENT_SIGNER else "serving"
    return Verdict(name, signer, username, node, "approve", f"kubelet {kind} certificate of inventory node {node}")


def judge_all(csrs: list[dict], nodes: dict[str, Node], joined: set[str], deny: bool = False) -> Pass:
    return Pass([judge(csr, nodes, joined, deny) for csr in sorted(csrs, key=lambda c: c["metadata"]["name"])])


# --------------------------------------------------------------------------------------------------
# the API


class CsrApi:
    """The few calls the approver makes, through an ApiClient from common.kube."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client  # only here: the import is guarded in common.kube

        self._client = api_client
        self._certificates = client.CertificatesV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._condition = client.V1CertificateSigningRequestCondition

    def csrs(self) -> list[dict]:
        items = self._certificates.list_certificate_signing_request().items
        return [self._client.sanitize_for_serialization(item) for item in items]

    def joined(self) -> set[str]:
        return {item.metadata.name for item in self._core.list_node().items}

    def decide(self, verdict: Verdict, message: str) -> None:
        body = self._certificates.read_certificate_signing_request(verdict.name)
        condition = self._condition(
            type="Approved" if verdict.action == "approve" else "Denied",
            status="True",
            reason=REASON,
            message=message,
            last_update_time=datetime.datetime.now(datetime.timezone.utc),  # noqa: UP017 - modules run on Python < 3.11 too
        )
        body.status.conditions = [*(body.status.conditions or []), condition]
        self._certificates.replace_certificate_signing_request_approval(verdict.name, body)


@dataclass
class Outcome:
    approved: list[dict] = field(default_factory=list)
    denied: list[dict] = field(default_factory=list)
    left: dict[str, dict] = field(default_factory=dict)
    joined: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    passes: int = 0
    timed_out: bool = False


def run(
    api: CsrApi,
    nodes: dict[str, Node],
    *,
    deny: bool = False,
    check_mode: bool = False,
    wait_timeout: float = 0,
    wait_sleep: float = 5,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Approve (and deny, if asked) pending kubelet CSRs; with `wait_timeout`, repeat until every inventory
    node has joined or the time is up. Check mode decides once and writes nothing."""
    outcome = Outcome()
    deadline = clock() + wait_timeout
    while True:
        joined = api.joined()
        verdicts = judge_all(api.csrs(), nodes, joined, deny)
        outcome.passes += 1
        for verdict in verdicts.verdicts:
            if verdict.action in ("approve", "deny"):
                if not check_mode:
                    api.decide(verdict, f"{verdict.reason} (airgap.renku.node_csr_approve)")
                (outcome.approved if verdict.action == "approve" else outcome.denied).append(verdict.as_dict())
            elif verdict.action == "leave":
                outcome.left[verdict.name] = verdict.as_dict()
        outcome.joined = sorted(set(nodes) & joined)
        outcome.missing = sorted(set(nodes) - joined)
        if check_mode or not wait_timeout or not outcome.missing:
            break
        if clock() >= deadline:
            outcome.timed_out = True
            break
        time.sleep(wait_sleep)
    # a CSR left in an early pass and decided in a later one is reported once, where it ended
    decided = {v["name"] for v in outcome.approved + outcome.denied}
    outcome.left = {k: v for k, v in outcome.left.items() if k not in decided}
    return outcome

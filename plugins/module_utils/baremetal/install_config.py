# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""install-config.yaml for a mirrored site, from the validated site model and the mirror lock.

What the installer needs and the collection already knows: cluster name and base domain, replica counts
from the host roles, the machine networks, `platform: none`, a pull secret for the internal registry, the
site CA as `additionalTrustBundle`, and `imageDigestSources` from the lock's source -> destination pairs.
It is validated before anyone writes it: the cluster, service and machine networks must not overlap, the
host prefix must fit the cluster network, and replica counts given explicitly must match the hosts.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

from ansible_collections.airgap.renku.plugins.module_utils.baremetal.site import InventoryError

try:
    from cryptography import x509

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - the filter reports it
    HAS_CRYPTOGRAPHY = False

DEFAULTS: dict[str, Any] = {
    "cluster_networks": [{"cidr": "10.128.0.0/14", "host_prefix": 23}],
    "service_networks": ["172.30.0.0/16"],
    "network_type": "OVNKubernetes",
    "machine_networks": [],
    "control_plane_replicas": None,
    "compute_replicas": None,
    "ssh_key": "",
}


def _network(value: Any, field: str, problems: list[str]) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        problems.append(f"install_config {field}: {value!r} is not a network such as 10.128.0.0/14")
        return None


def _check_networks(opts: dict, machine: list[str], problems: list[str]) -> None:
    named: list[tuple[str, Any]] = []
    for index, entry in enumerate(opts["cluster_networks"]):
        net = _network(entry.get("cidr"), f"cluster_networks[{index}].cidr", problems)
        prefix = entry.get("host_prefix")
        if net is not None:
            named.append((f"cluster_networks[{index}] {net}", net))
            if not isinstance(prefix, int) or not net.prefixlen <= prefix <= net.max_prefixlen - 2:
                problems.append(
                    f"install_config cluster_networks[{index}].host_prefix: {prefix!r} must lie between the network's "
                    f"prefix /{net.prefixlen} and /{net.max_prefixlen - 2} (each node gets a /host_prefix from it)"
                )
    for index, cidr in enumerate(opts["service_networks"]):
        net = _network(cidr, f"service_networks[{index}]", problems)
        if net is not None:
            named.append((f"service_networks[{index}] {net}", net))
    for cidr in machine:
        net = _network(cidr, "machine_networks", problems)
        if net is not None:
            named.append((f"machine network {net}", net))
    for first in range(len(named)):
        for second in range(first + 1, len(named)):
            (a_name, a_net), (b_name, b_net) = named[first], named[second]
            if a_net.version == b_net.version and a_net.overlaps(b_net):
                problems.append(f"install_config networks: {a_name} overlaps {b_name}; give each network its own range")


def _replicas(site: dict, opts: dict, problems: list[str]) -> tuple[int, int]:
    masters = sum(1 for h in site["hosts"] if h["role"] == "master")
    compute = sum(1 for h in site["hosts"] if h["role"] in ("worker", "infra"))
    for field, counted, roles in (
        ("control_plane_replicas", masters, "master"),
        ("compute_replicas", compute, "worker and infra"),
    ):
        given = opts.get(field)
        if given is not None and int(given) != counted:
            problems.append(
                f"install_config {field}: {given} does not match the inventory's {counted} {roles} hosts; "
                "drop the setting or fix the hosts"
            )
    return masters, compute


def _trust_bundle(pem: str, problems: list[str]) -> str:
    text = (pem or "").strip()
    if not text:
        problems.append("install_config ca: empty; give the site CA (PEM) that signs the internal registry")
        return ""
    if HAS_CRYPTOGRAPHY:
        try:
            certificates = x509.load_pem_x509_certificates(text.encode())
        except ValueError as exc:
            problems.append(f"install_config ca: not PEM certificates ({exc})")
            return ""
        for cert in certificates:
            try:
                is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                is_ca = False
            if not is_ca:
                problems.append(f"install_config ca: {cert.subject.rfc4514_string()} is not a CA certificate")
    return text + "\n"


def _pull_secret(registry: dict, problems: list[str]) -> str:
    host, user, password = (str(registry.get(k) or "") for k in ("host", "username", "password"))
    if not host or not user or not password:
        problems.append(
            "install_config registry: give host, username and password of the internal registry (the pull secret)"
        )
        return ""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}, separators=(",", ":"))


def _repository(reference: str) -> str:
    """registry/repository of a reference (tag and digest dropped)."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    return name


def digest_sources(lock: dict) -> list[dict]:
    """imageDigestSources from the lock: each source repository with the internal repositories it was copied to."""
    mirrors: dict[str, set[str]] = {}
    for entry in lock.get("images") or []:
        source, destination = _repository(entry["source"]), _repository(entry["destination"])
        if source != destination:
            mirrors.setdefault(source, set()).add(destination)
    return [{"source": source, "mirrors": sorted(found)} for source, found in sorted(mirrors.items())]


def install_config(site: dict, settings: dict | None, lock: dict, ca_pem: str, registry: dict) -> dict:
    """The install-config document; raises InventoryError listing every problem (nothing is written then)."""
    opts = {**DEFAULTS, **{k: v for k, v in (settings or {}).items() if v is not None}}
    problems: list[str] = []
    machine = list(opts["machine_networks"]) or sorted(
        {n["subnet"] for n in site["networks"] if any(h["network"] == n["name"] for h in site["hosts"])}
    )
    _check_networks(opts, machine, problems)
    masters, compute = _replicas(site, opts, problems)
    bundle = _trust_bundle(ca_pem, problems)
    secret = _pull_secret(registry or {}, problems)
    sources = digest_sources(lock or {})
    if not sources:
        problems.append(
            "install_config lock: the mirror lock has no images; run the mirror stage first (playbooks/mirror.yml)"
        )
    if problems:
        raise InventoryError(problems)
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "baseDomain": site["cluster"]["base_domain"],
        "metadata": {"name": site["cluster"]["name"]},
        "compute": [{"name": "worker", "hyperthreading": "Enabled", "replicas": compute}],
        "controlPlane": {"name": "master", "hyperthreading": "Enabled", "replicas": masters},
        "networking": {
            "clusterNetwork": [{"cidr": c["cidr"], "hostPrefix": c["host_prefix"]} for c in opts["cluster_networks"]],
            "serviceNetwork": list(opts["service_networks"]),
            "machineNetwork": [{"cidr": cidr} for cidr in machine],
            "networkType": opts["network_type"],
        },
        "platform": {"none": {}},
        "pullSecret": secret,
        "additionalTrustBundle": bundle,
        "additionalTrustBundlePolicy": "Always",
        "imageDigestSources": sources,
    }
    if opts["ssh_key"]:
        document["sshKey"] = opts["ssh_key"]
    return document

"""Kea DHCPv4 from the site model: reservations, boot classes, kea-dhcp4 -t, and the checker's verdicts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import check, kea
from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"http_url": "http://192.0.2.2:8080/", "next_server": "192.0.2.2"}


def inventory(name: str) -> dict:
    return yaml.safe_load((ROOT / "inventories" / name / "group_vars" / "all" / "baremetal.yml").read_text())


def example_site() -> dict:
    data = inventory("example")
    return bm.build_site(data["baremetal_hosts"], data["baremetal_networks"], data["baremetal_cluster"])


def test_one_reservation_per_mac_on_served_networks():
    site = example_site()
    config = kea.kea_dhcp4_config(site, SETTINGS)["Dhcp4"]
    (subnet,) = config["subnet4"]
    assert subnet["subnet"] == "172.16.10.0/24"
    assert subnet["id"] == int.from_bytes(bytes([172, 16, 10, 0]), "big")
    assert subnet["pools"] == [{"pool": "172.16.10.200 - 172.16.10.240"}]
    assert subnet["next-server"] == "172.16.10.2"  # the network's own next_server wins
    by_mac = {r["hw-address"]: r for r in subnet["reservations"]}
    assert len(by_mac) == len(site["hosts"])
    assert by_mac["52:54:00:10:00:41"] == {
        "hw-address": "52:54:00:10:00:41",
        "ip-address": "172.16.10.41",
        "hostname": "compute-0",
    }
    options = {o["name"]: o["data"] for o in subnet["option-data"]}
    assert options == {
        "subnet-mask": "255.255.255.0",
        "domain-search": "ocp.example.org",
        "routers": "172.16.10.1",
        "domain-name-servers": "172.16.10.2",
    }


def test_lab_edge_network_without_dhcp_gets_no_subnet():
    data = inventory("lab")
    site = bm.build_site(data["baremetal_hosts"], data["baremetal_networks"], data["baremetal_cluster"])
    config = kea.kea_dhcp4_config(site, SETTINGS)["Dhcp4"]
    assert [s["subnet"] for s in config["subnet4"]] == ["10.77.0.0/24"]
    reserved = {r["hostname"] for r in config["subnet4"][0]["reservations"]}
    assert "lb-0" not in reserved and "worker-0" in reserved


def test_boot_classes_are_mutually_exclusive_and_name_their_files():
    site = example_site()
    classes = kea.client_classes(site, SETTINGS)
    names = [c["name"] for c in classes]
    assert names == [
        "ipxe",
        "http-boot",
        "ipxe-chain",
        "ipxe-chain-uefi",
        "ipxe-chain-bios",
        "uefi-x64",
        "uefi-arm64",
        "bios",
    ]
    files = {c["name"]: c.get("boot-file-name") for c in classes}
    assert files["ipxe"] == "http://192.0.2.2:8080/ipxe/boot.ipxe"
    assert files["http-boot"] == "http://192.0.2.2:8080/grubx64.efi"
    assert (files["uefi-x64"], files["uefi-arm64"], files["bios"]) == ("grubx64.efi", "grubaa64.efi", "pxelinux.0")
    chain = next(c for c in classes if c["name"] == "ipxe-chain")["test"]
    assert "pkt4.mac == 0x525400100044" in chain and "pkt4.mac == 0x525400100045" in chain
    assert chain.count("pkt4.mac") == 2  # only the two compute hosts with boot_mode ipxe
    # every class after the first excludes the ones before it: the outcome never depends on evaluation order
    for later in classes[1:]:
        assert later["test"].startswith(("not member('ipxe')", "member('ipxe-chain')"))


def test_without_ipxe_hosts_there_is_no_chain_class():
    site = bm.build_site(
        [{"name": "m0", "role": "master", "mac": "52:54:00:00:00:01", "ip": "10.0.0.5", "network": "n"}],
        [{"name": "n", "subnet": "10.0.0.0/24"}],
        {"name": "c", "base_domain": "example.org", "api_vip": "10.0.0.2", "ingress_vip": "10.0.0.3"},
    )
    names = [c["name"] for c in kea.client_classes(site)]
    assert "ipxe-chain" not in names
    assert "next-server" not in kea.kea_dhcp4_config(site)["Dhcp4"]["subnet4"][0]


def test_kea_accepts_the_configuration(tmp_path):
    if shutil.which("kea-dhcp4") is None:
        pytest.fail("kea-dhcp4 is missing: run `make deps` (lab/install-deps.sh)")
    settings = {**SETTINGS, "control_socket": str(tmp_path / "sock"), "lease_file": str(tmp_path / "leases.csv")}
    path = tmp_path / "kea-dhcp4.conf"
    path.write_text(json.dumps(kea.kea_dhcp4_config(example_site(), settings)))
    result = subprocess.run(["kea-dhcp4", "-t", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def _config_get(config: dict) -> str:
    return json.dumps({"result": 0, "arguments": config})


def test_checker_compares_live_kea_with_the_inventory():
    site = example_site()
    expected = check.dhcp_expected(site, SETTINGS)
    live = kea.kea_dhcp4_config(site, SETTINGS)
    good = check.dhcp_results(expected, _config_get(live), "kea")
    assert all(r["ok"] for r in good) and len(good) == len(site["hosts"]) + 8
    live["Dhcp4"]["subnet4"][0]["reservations"][0]["ip-address"] = "172.16.10.99"
    live["Dhcp4"]["client-classes"] = [c for c in live["Dhcp4"]["client-classes"] if c["name"] != "uefi-arm64"]
    bad = [r for r in check.dhcp_results(expected, _config_get(live), "kea") if not r["ok"]]
    assert [(r["name"], r["got"]) for r in bad] == [
        ("reservation 52:54:00:10:00:05 (bootstrap)", "172.16.10.99 bootstrap"),
        ("class uefi-arm64", "no such class"),
    ]
    silent = check.dhcp_results(expected, "", "kea")
    assert not any(r["ok"] for r in silent) and "no answer" in silent[0]["got"]


def test_checker_reads_dhcpd_hosts():
    site = example_site()
    expected = check.dhcp_expected(site)
    text = "".join(
        f"host {h['name']} {{\n  hardware ethernet {h['mac']};\n  fixed-address {h['ip']};\n}}\n"
        for h in site["hosts"][1:]
    )
    results = check.dhcp_results(expected, text, "isc")
    assert [r["name"] for r in results if not r["ok"]] == ["reservation 52:54:00:10:00:05 (bootstrap)"]
    assert len(results) == len(site["hosts"])

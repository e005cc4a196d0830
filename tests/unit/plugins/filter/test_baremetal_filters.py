"""The filter wrappers turn model errors into AnsibleFilterError with every problem in one message."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.airgap.renku.plugins.filter.baremetal import FilterModule

FILTERS = FilterModule().filters()
NETWORKS = [{"name": "n", "subnet": "192.0.2.0/24"}]
CLUSTER = {"name": "c", "base_domain": "example.org", "api_vip": "192.0.2.5", "ingress_vip": "192.0.2.6"}


def test_site_and_zones():
    site = FILTERS["baremetal_site"](
        [{"name": "m0", "role": "master", "mac": "AA:BB:CC:DD:EE:01", "ip": "192.0.2.10", "network": "n"}],
        NETWORKS,
        CLUSTER,
    )
    zones = FILTERS["baremetal_dns_zones"](site, [{"name": "ns1", "address": "192.0.2.2"}])
    assert [z["name"] for z in zones] == ["c.example.org", "2.0.192.in-addr.arpa"]


def test_errors_are_filter_errors_listing_all_hosts():
    same = [
        {"name": f"w{n}", "role": "worker", "mac": f"aa:bb:cc:dd:ee:0{n}", "ip": "192.0.2.9", "network": "n"}
        for n in range(3)
    ]
    with pytest.raises(AnsibleFilterError) as err:
        FILTERS["baremetal_site"](same, NETWORKS, CLUSTER)
    message = str(err.value)
    assert '"w1" ip' in message and '"w2" ip' in message and "0 masters" in message
    with pytest.raises(AnsibleFilterError):
        FILTERS["baremetal_dns_zones"]({"cluster": {"domain": "x"}, "hosts": [], "networks": []}, [])
    assert FILTERS["baremetal_reverse_zones"]("192.0.2.128/25") == ["128-25.2.0.192.in-addr.arpa"]

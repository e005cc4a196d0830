"""Every Renku value the renku role and the inventories set is a key of the real Renku 2.19.3 chart's values.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.common.charts import read_chart

ROOT = Path(__file__).resolve().parents[2]
RENKU = ROOT.parent / "shared" / "reference" / "charts" / "renku-2.19.3.tgz"


def leaf_paths(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, (*path, str(key)))
    elif path:
        yield path


def exists(values: dict, path: tuple[str, ...]) -> bool:
    node: Any = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


@pytest.fixture(scope="module")
def chart_values() -> dict:
    return read_chart(str(RENKU)).values


def role_values() -> dict:
    return yaml.safe_load((ROOT / "roles" / "renku" / "vars" / "main.yml").read_text())["renku_generated_values"]


def inventory_values(name: str) -> dict:
    return (
        yaml.safe_load((ROOT / "inventories" / name / "group_vars" / "all" / "renku.yml").read_text()).get(
            "renku_values"
        )
        or {}
    )


@pytest.mark.parametrize(
    "source", ["role", "lab inventory", "example inventory"], ids=["role", "lab-inventory", "example-inventory"]
)
def test_every_key_set_exists_in_the_chart(chart_values, source):
    values = {"role": role_values, "lab inventory": lambda: inventory_values("lab")}.get(
        source, lambda: inventory_values("example")
    )()
    paths = list(leaf_paths(values))
    assert source == "lab inventory" or paths, "nothing was checked"
    missing = [".".join(p) for p in paths if not exists(chart_values, p)]
    assert not missing, f"{source} sets keys renku 2.19.3's values.yaml does not have: {missing}"


def test_the_role_sets_custom_cas_the_way_the_chart_reads_them(chart_values):
    # the chart's template: `- secret: <name>` (its values.yaml comment shows the same shape)
    (entry,) = role_values()["global"]["certificates"]["customCAs"]
    assert set(entry) == {"secret"} and isinstance(entry["secret"], str)
    assert chart_values["global"]["certificates"]["customCAs"] == []

"""The bare-metal roles' meta/argument_specs.yml in step with defaults/main.yml and the README tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("role", ["dhcp_pxe", "dns", "haproxy"])
def test_every_default_is_specified_with_the_same_value_and_documented(role):
    base = ROOT / "roles" / role
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    readme = (base / "README.md").read_text()
    assert sorted(defaults) == sorted(k for k in options if "default" in options[k] or k in defaults)
    for name, value in defaults.items():
        assert name.startswith(f"{role}_"), name
        assert options[name].get("default") == value, name
        assert f"| `{name}` |" in readme, name

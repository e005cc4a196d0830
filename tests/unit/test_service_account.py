"""Pure functions of module_utils/remote/service_account.py; the default rules equal the shared reference."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.remote import service_account as sa

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "renku-remote-role-rules.yaml"


def test_default_rules_equal_the_reference_file():
    reference = yaml.safe_load(REFERENCE.read_text())
    assert reference["rules"] == sa.DEFAULT_RULES
    assert reference["optional_when_image_builders_enabled"] == sa.IMAGE_BUILDER_RULES


def test_objects_in_creation_order_secret_after_service_account():
    objs = sa.desired_objects(sa.SaSpec(namespace="ns1", name="renku"))
    assert [o["kind"] for o in objs] == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret"]
    secret = objs[-1]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "renku"}
    assert objs[2]["rules"] == sa.DEFAULT_RULES
    assert objs[3]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "renku"}


def test_cluster_role_mode_binds_without_role_and_request_mode_has_no_secret():
    spec = sa.SaSpec(
        namespace="team", name="deployer", cluster_role="admin", token_mode="request", create_namespace=False
    )
    objs = sa.desired_objects(spec)
    assert [o["kind"] for o in objs] == ["ServiceAccount", "RoleBinding"]
    assert objs[1]["roleRef"]["kind"] == "ClusterRole"
    assert objs[1]["roleRef"]["name"] == "admin"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (sa.SaSpec(namespace="n", name="a", rules=[], cluster_role="admin"), "cluster_role"),
        (sa.SaSpec(namespace="n", name="a", token_mode="request", token_duration=60), "token_duration"),
        (sa.SaSpec(namespace="n", name="a", token_timeout=0), "token_timeout"),
        (sa.SaSpec(namespace="n", name="a", rules=[{"apiGroups": [""]}]), "rules[0]"),
    ],
)
def test_validate_spec_names_the_field(spec, field):
    with pytest.raises(sa.ServiceAccountError, match=field.replace("[", r"\[")):
        sa.validate_spec(spec)


def test_needs_update_and_replace():
    want = sa.desired_objects(sa.SaSpec(namespace="n", name="a"))[3]
    have = {**want, "metadata": {**want["metadata"], "uid": "x", "labels": {**want["metadata"]["labels"], "o": "1"}}}
    assert not sa.needs_update(want, have)
    assert not sa.needs_replace(want, have)
    assert sa.needs_replace(want, {**have, "roleRef": {**want["roleRef"], "name": "other"}})
    assert sa.needs_update(want, {**have, "subjects": []})


def test_token_from_secret_and_masked_view():
    secret = {
        "kind": "Secret",
        "data": {"token": base64.b64encode(b"tok").decode(), "ca.crt": base64.b64encode(b"PEM").decode()},
    }
    assert sa.token_from_secret(secret) == ("tok", "PEM")
    assert sa.token_from_secret({"data": None}) == ("", "")
    assert sa.owned_view(secret)["data"] == {"token": sa.MASK, "ca.crt": sa.MASK}

"""module_utils/remote/data_service.py against the published data-service spec (loaded from the shared reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest

from ansible_collections.airgap.renku.plugins.module_utils.remote import data_service as crc

SPEC_FILE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "renku-data-services-crc-api.spec.yaml"
)
SPEC = yaml.safe_load(SPEC_FILE.read_text())
SCHEMAS = SPEC["components"]["schemas"]
ULID = "01JB2ZK5V0Q8MDZ3RX4N2W5C7D"

CLUSTER = {
    "name": "remote-cluster-a",
    "config_name": "remote-a.yaml",
    "session_protocol": "https",
    "session_host": "sessions.remote-a.example.org",
    "session_port": 443,
    "session_path": "/sessions",
    "session_ingress_annotations": {"nginx.ingress.kubernetes.io/enable-cors": "true"},
    "session_ingress_use_default_cluster_tls_cert": True,
    "session_storage_class": "local-path",
}
POOL = {
    "name": "remote-a-standard",
    "public": False,
    "quota": {"cpu": 8, "memory": 32, "gpu": 0, "id": "renku-remote-a-standard"},
    "classes": [
        {"name": "small", "cpu": 1, "memory": 2, "max_storage": 20, "default_storage": 1, "default": True},
        {
            "name": "large",
            "cpu": 4,
            "memory": 16,
            "max_storage": 50,
            "default_storage": 10,
            "tolerations": ["renku.io/dedicated"],
        },
    ],
}


@pytest.fixture(scope="module")
def openapi():
    return OpenAPI.from_dict(SPEC, config=Config(spec_validator_cls=None))


def validate_request(openapi, method, path, body):
    request = MockRequest("https://renku.example.org", method, "/api/data" + path, data=json.dumps(body).encode())
    openapi.validate_request(request)


def test_constants_match_the_spec():
    assert SCHEMAS["Name"]["minLength"] == crc.NAME_MIN_LENGTH
    assert SCHEMAS["ConfigName"]["pattern"] == crc.CONFIG_NAME_PATTERN
    assert SCHEMAS["Host"]["pattern"] == crc.HOST_PATTERN
    assert SCHEMAS["Host"]["maxLength"] == crc.HOST_MAX_LENGTH
    assert SCHEMAS["Port"]["maximum"] == crc.PORT_MAX
    assert SCHEMAS["K8sResourceName"]["pattern"] == crc.K8S_RESOURCE_NAME_PATTERN
    assert SCHEMAS["K8sLabel"]["pattern"] == crc.K8S_LABEL_PATTERN
    assert SCHEMAS["K8sLabel"]["maxLength"] == crc.K8S_LABEL_MAX_LENGTH
    assert tuple(SCHEMAS["Protocol"]["enum"]) == crc.PROTOCOLS
    assert tuple(SCHEMAS["RuntimePlatform"]["enum"]) == crc.PLATFORMS
    assert set(crc.CLUSTER_FIELDS) == set(SCHEMAS["Cluster"]["properties"])
    assert set(crc.CLASS_FIELDS) == set(SCHEMAS["ResourceClass"]["properties"])


def test_built_payloads_satisfy_the_spec(openapi):
    assert crc.validate_cluster(CLUSTER) == []
    assert crc.validate_pool(POOL) == []
    validate_request(openapi, "post", "/clusters", crc.cluster_payload(CLUSTER))
    validate_request(openapi, "post", "/resource_pools", crc.pool_payload(POOL, ULID))
    have = {**CLUSTER, "id": ULID, "session_ingress_use_default_cluster_tls_cert": False}  # the v0.79 quirk
    patch = crc.cluster_patch(crc.cluster_payload(CLUSTER), have)
    assert patch == {"session_ingress_use_default_cluster_tls_cert": True}
    validate_request(openapi, "patch", f"/clusters/{ULID}", patch)


def test_pool_plan_patches_by_class_id_and_is_empty_when_equal(openapi):
    want = crc.pool_payload(POOL, ULID)
    stored = {
        **want,
        "id": 3,
        "cluster_id": ULID,
        "platform": "linux/amd64",
        "classes": [{**c, "id": i + 10, "gpu": 0, "quota_enforced": False} for i, c in enumerate(want["classes"])],
    }
    assert crc.plan_pool(want, stored).empty
    bigger = {**want, "classes": [{**want["classes"][0], "cpu": 2}, want["classes"][1]]}
    plan = crc.plan_pool(bigger, stored)
    assert plan.patch == {}
    assert plan.class_patches == {10: {"cpu": 2}}
    validate_request(openapi, "patch", "/resource_pools/3/classes/10", plan.class_patches[10])
    plan = crc.plan_pool({**want, "quota": {**want["quota"], "cpu": 16}}, stored)
    assert plan.patch == {"quota": {"cpu": 16}}
    validate_request(openapi, "patch", "/resource_pools/3", plan.patch)
    with pytest.raises(crc.CrcError, match=r"quota\.id"):
        crc.plan_pool({**want, "quota": {**want["quota"], "id": "other-prio"}}, stored)


def _pool(**kw):
    return {**POOL, **kw}


@pytest.mark.parametrize(
    ("cluster", "field"),
    [
        ({**CLUSTER, "name": "abcd"}, "cluster.name"),
        ({**CLUSTER, "config_name": "remote-a.yml"}, "cluster.config_name"),
        ({**CLUSTER, "config_name": "sub/dir.yaml"}, "cluster.config_name"),
        ({**CLUSTER, "session_tls_secret_name": "tls"}, "both given"),
        ({**CLUSTER, "session_ingress_use_default_cluster_tls_cert": False}, "neither given"),
        ({**CLUSTER, "session_port": 70000}, "cluster.session_port"),
        ({**CLUSTER, "session_host": "bad host"}, "cluster.session_host"),
    ],
)
def test_cluster_refusals_name_the_field(cluster, field):
    errors = crc.validate_cluster(cluster)
    assert any(field in e for e in errors), errors


@pytest.mark.parametrize(
    ("pool", "field"),
    [
        (_pool(public=True), "resource_pool.public"),
        (_pool(classes=[{**POOL["classes"][0], "cpu": 16}]), "resource_pool.classes[0].cpu (16) exceeds"),
        (_pool(classes=[{**POOL["classes"][0], "memory": 64}]), "resource_pool.classes[0].memory (64) exceeds"),
        (_pool(classes=[{**c, "default": False} for c in POOL["classes"]]), "exactly one class with default"),
        (_pool(classes=[{**c, "default": True} for c in POOL["classes"]]), "found 2"),
        (_pool(quota={**POOL["quota"], "id": "Bad_Id"}), "resource_pool.quota.id"),
        (_pool(name="pool"), "resource_pool.name"),
    ],
)
def test_pool_refusals_name_the_field(pool, field):
    errors = crc.validate_pool(pool)
    assert any(field in e for e in errors), errors


def test_ensure_present_refuses_before_any_call():
    class NoCalls:
        def call(self, *args):
            raise AssertionError("no API call may happen for invalid input")

        find = call

    with pytest.raises(crc.CrcError, match=r"cluster\.name"):
        crc.ensure_present(NoCalls(), {**CLUSTER, "name": "abc"}, POOL, check=False)


# renku_crc_cluster's payload rules for the default certificate and its explanation of refused tokens


def test_default_certificate_sends_an_empty_tls_secret_name_the_spec_accepts(openapi):
    payload = crc.cluster_payload(CLUSTER)
    assert payload["session_tls_secret_name"] == ""
    validate_request(openapi, "post", "/clusters", payload)


def test_own_secret_is_sent_and_an_empty_one_stored_is_not_patched():
    payload = crc.cluster_payload(
        {**CLUSTER, "session_ingress_use_default_cluster_tls_cert": False, "session_tls_secret_name": "tls"}
    )
    assert payload["session_tls_secret_name"] == "tls"
    stored = {**crc.cluster_payload(CLUSTER), "id": "x"}
    assert crc.cluster_patch(crc.cluster_payload(CLUSTER), stored) == {}


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, ["403 Forbidden", "not a Renku admin", "needs the Keycloak realm role renku-admin"]),
        (401, ["401 Unauthorized", "has expired", "Keycloak realm"]),
    ],
)
def test_refusals_say_why(status, words):
    said = {403: "user 'u' is not a Renku admin", 401: "the token has expired"}[status]
    message = crc.refusal("GET", "/clusters", status, json.dumps({"error": {"code": 1, "message": said}}))
    assert all(w in message for w in words), message


def test_token_request_url():
    request = crc.TokenRequest(
        url="https://renku.example.org/auth/", realm="Renku", client_id="renku-cli", username="u", password="p"
    )
    assert request.token_url == "https://renku.example.org/auth/realms/Renku/protocol/openid-connect/token"

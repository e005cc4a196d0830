"""renku_crc_cluster's payload rules for the default certificate and its explanation of refused tokens."""

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
CLUSTER = {
    "name": "remote-cluster-a",
    "config_name": "remote-a.yaml",
    "session_protocol": "https",
    "session_host": "sessions.remote-a.example.org",
    "session_port": 443,
    "session_path": "/sessions",
    "session_ingress_use_default_cluster_tls_cert": True,
}


def test_default_certificate_sends_an_empty_tls_secret_name_the_spec_accepts():
    payload = crc.cluster_payload(CLUSTER)
    assert payload["session_tls_secret_name"] == ""
    openapi = OpenAPI.from_dict(yaml.safe_load(SPEC_FILE.read_text()), config=Config(spec_validator_cls=None))
    request = MockRequest("https://renku.example.org", "post", "/api/data/clusters", data=json.dumps(payload).encode())
    openapi.validate_request(request)


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

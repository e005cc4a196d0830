"""The values each module adds to Ansible's no_log_values: every form in which a credential could show up."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from ansible_collections.airgap.renku.plugins.module_utils.common import secrets
from ansible_collections.airgap.renku.plugins.module_utils.deploy import kubeconfig as kc
from ansible_collections.airgap.renku.plugins.module_utils.remote import service_account as sa

TOKEN = "eyJhbGciOiJSUzI1NiJ9.payload.signature"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_token_forms_are_the_token_and_its_base64():
    assert sa.token_forms(TOKEN) == {TOKEN, b64(TOKEN)}
    assert sa.token_forms("") == set()


def test_token_file_written_with_mode_0600_and_only_when_it_differs(tmp_path: Path):
    path = str(tmp_path / "deployer.token")
    assert sa.write_token_file(path, TOKEN, check=True) is True
    assert not os.path.exists(path), "check mode wrote the token file"
    assert sa.write_token_file(path, TOKEN, check=False) is True
    assert Path(path).read_text() == TOKEN
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sa.write_token_file(path, TOKEN, check=False) is False
    os.chmod(path, 0o644)
    assert sa.write_token_file(path, TOKEN, check=False) is True
    assert os.stat(path).st_mode & 0o777 == 0o600


def _kubeconfig(**user: str) -> dict:
    spec = kc.KubeconfigSpec(
        server="https://k8s.example.internal:6443",
        namespace="team-a",
        cluster_name="c",
        user_name="u",
        context_name="team-a",
        **user,
    )
    return kc.build(spec)


def test_kubeconfig_secret_values_cover_token_and_the_whole_base64():
    config = _kubeconfig(token=TOKEN)
    text = kc.render(config)
    values = kc.secret_values(config, text)
    assert {TOKEN, b64(TOKEN), kc.one_line_base64(text)} <= values
    assert not any("k8s.example.internal" in value for value in values - {kc.one_line_base64(text)})


def test_kubeconfig_secret_values_cover_the_client_key_in_every_form():
    key_pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB\n-----END PRIVATE KEY-----"
    cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    config = _kubeconfig(client_cert_data=cert_pem, client_key_data=key_pem)
    values = kc.secret_values(config, kc.render(config))
    key_data = config["users"][0]["user"]["client-key-data"]
    assert {key_data, key_pem} <= values
    assert config["users"][0]["user"]["client-certificate-data"] not in values


def test_release_secret_values_as_written_and_decoded():
    documents = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "data": {"password": b64("s3cr3t-passw0rd"), "user": b64("renku-db"), "flag": b64("true")},
            "stringData": {"api-key": "0123456789abcdef"},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"DB_USER": "renku-db"}},
    ]
    values = secrets.secret_values(documents)
    assert {"s3cr3t-passw0rd", b64("s3cr3t-passw0rd"), "0123456789abcdef"} <= values
    assert "renku-db" not in values, "a value the release writes in the open is not a secret"
    assert "true" not in values, "a short value would garble every word it occurs in"
    assert b64("renku-db") in values


def test_release_secret_values_ignore_other_kinds():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "long-enough-value"}}
    assert secrets.secret_values([cm]) == set()


def test_credential_forms_of_nested_parameters():
    params = {
        "destination_username": "mirror",
        "destination_password": "p@ss/word+1",
        "registries": [{"registry": "r.example", "username": "u", "password": "second-password"}],
        "repositories": [{"source_username": "git", "source_password": "git-pass", "password": None}],
        "ca_file": "/etc/pki/ca.pem",
    }
    forms = secrets.credential_forms(params)
    assert {"p@ss/word+1", "p%40ss%2Fword%2B1", b64("mirror:p@ss/word+1")} <= forms
    assert {"second-password", b64("u:second-password"), "git-pass", b64("git:git-pass")} <= forms
    assert "/etc/pki/ca.pem" not in forms and "mirror" not in forms

"""Pure functions of module_utils/deploy/kubeconfig.py."""

from __future__ import annotations

import base64

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.deploy import kubeconfig as kc

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


def spec(**kw):
    base = {
        "server": "https://api.example:6443",
        "namespace": "team-a",
        "cluster_name": "c",
        "user_name": "u",
        "context_name": "ctx",
        "ca_data": PEM,
        "token": "secret-token",
    }
    return kc.KubeconfigSpec(**{**base, **kw})


def test_build_has_context_with_namespace_and_current_context():
    config = kc.build(spec())
    assert config["current-context"] == "ctx"
    assert config["contexts"][0]["context"] == {"cluster": "c", "user": "u", "namespace": "team-a"}
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode() == PEM + "\n"
    assert config["users"][0]["user"] == {"token": "secret-token"}
    assert yaml.safe_load(kc.render(config)) == config


def test_one_line_base64_round_trips():
    text = kc.render(kc.build(spec()))
    line = kc.one_line_base64(text)
    assert "\n" not in line
    assert base64.b64decode(line).decode() == text


def test_masked_hides_token_and_key():
    config = kc.build(spec(token="", client_cert_data=PEM, client_key_data=PEM.replace("CERTIFICATE", "KEY")))
    shown = kc.masked(config)
    assert shown["users"][0]["user"]["client-key-data"] == kc.MASK
    assert shown["users"][0]["user"]["client-certificate-data"] != kc.MASK
    assert kc.masked(kc.build(spec()))["users"][0]["user"]["token"] == kc.MASK
    assert "secret-token" not in str(kc.masked(kc.build(spec())))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"server": "http://api:80"}, "server"),
        ({"namespace": ""}, "namespace"),
        ({"token": ""}, "token"),
        ({"client_cert_data": PEM}, "token"),
        ({"ca_data": "not pem"}, "certificate data"),
    ],
)
def test_build_refuses(kw, field):
    with pytest.raises(kc.KubeconfigError, match=field):
        kc.build(spec(**kw))


def test_summarise_reports_unexpected_verdicts():
    checks = [
        {"verb": "list", "resource": "pods", "namespace": "kube-system", "expect": "denied"},
        {"verb": "create", "resource": "deployments", "group": "apps", "namespace": "a", "expect": "allowed"},
    ]
    out = kc.summarise(checks, [True, True])
    assert out["allowed"] == ["list pods in kube-system", "create deployments.apps in a"]
    assert out["unexpected"] == ["list pods in kube-system: expected denied, got allowed"]
    body = kc.access_review_body(checks[1])
    assert body["spec"]["resourceAttributes"] == {
        "verb": "create",
        "resource": "deployments",
        "group": "apps",
        "namespace": "a",
    }

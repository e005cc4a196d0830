from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml, secrets

MANIFEST = """\
apiVersion: v1
kind: Secret
metadata: {name: db}
data:
  password: PASSWORD
stringData:
  cookie-key: s3cr3t-cookie-key
  port: "5432"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  user: renku-db-user
---
apiVersion: v1
kind: Secret
metadata: {name: db-user}
stringData:
  username: renku-db-user
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: big.example.org}
spec: {group: example.org}
""".replace("PASSWORD", base64.b64encode(b"generated-password").decode())


def test_manifest_secret_values_as_written_and_decoded_public_and_short_ones_readable():
    values = secrets.manifest_secret_values(MANIFEST)
    assert {"generated-password", base64.b64encode(b"generated-password").decode(), "s3cr3t-cookie-key"} <= values
    assert "renku-db-user" not in values, "a value also written in a ConfigMap stays readable"
    assert "5432" not in values, "short values stay readable"


def test_deliver_manifest_without_dest_returns_the_text_and_masks_nothing():
    masked: set[str] = set()
    assert secrets.deliver_manifest(MANIFEST, None, masked) == {"manifest": MANIFEST}
    assert masked == set()


def test_deliver_manifest_with_dest_writes_a_private_file_and_masks_every_secret(tmp_path):
    masked: set[str] = set()
    dest = tmp_path / "out.yaml"
    assert secrets.deliver_manifest(MANIFEST, str(dest), masked) == {"dest": str(dest)}
    assert dest.read_text() == MANIFEST
    assert os.stat(dest).st_mode & 0o777 == 0o600
    assert "generated-password" in masked and "s3cr3t-cookie-key" in masked


def test_mask_input_secrets_only_with_dest_and_survives_unreadable_text():
    masked: set[str] = set()
    secrets.mask_input_secrets(MANIFEST, None, masked)
    assert masked == set()
    secrets.mask_input_secrets(MANIFEST, "/somewhere.yaml", masked)
    assert "s3cr3t-cookie-key" in masked
    secrets.mask_input_secrets("kind: Secret\ndata: [unclosed", "/somewhere.yaml", masked)


def test_unreadable_manifest_raises_for_the_transform_to_report():
    with pytest.raises(kube_yaml.KubeYAMLError):
        secrets.manifest_secret_values("kind: Secret\ndata: [unclosed")

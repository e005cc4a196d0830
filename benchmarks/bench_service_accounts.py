#!/usr/bin/env python3
"""Service-account kubeconfigs on the lab's remote API server, measured side by side in one run.

- first run (create namespace, ServiceAccount, Role, RoleBinding, token Secret, wait for the token) vs the
  idempotent second run (reads only), and their ratio;
- a secret-mode token vs a TokenRequest token;
- kubeconfig verify (13 SelfSubjectAccessReviews + one SelfSubjectRulesReview).

Uses the collection's module_utils directly (what the modules run); prints `name: value` lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "collections"))
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (links build/collections/ansible_collections/airgap/renku)
from kubernetes import client, config  # noqa: E402

from ansible_collections.airgap.renku.plugins.module_utils.deploy import kubeconfig as kc  # noqa: E402
from ansible_collections.airgap.renku.plugins.module_utils.remote import service_account as sa  # noqa: E402

NS = f"bench-sa-{os.getpid()}"


def timed(fn):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    env = json.loads(
        subprocess.run(
            [sys.executable, str(ROOT / "lab" / "lab.py"), "json"], check=True, capture_output=True, text=True
        ).stdout
    )
    api = config.new_client_from_config(env["KUBECONFIG_REMOTE"])
    rest = sa.KubeRest(api, dry_run=False)
    spec = sa.SaSpec(namespace=NS, name="bench")
    try:
        first, (_, creds) = timed(lambda: sa.ensure_present(rest, spec))
        second, (outcome, _) = timed(lambda: sa.ensure_present(rest, spec))
        assert not outcome.changed
        request, _ = timed(
            lambda: sa.ensure_present(
                rest, sa.SaSpec(namespace=NS, name="bench-req", token_mode="request", token_duration=600)
            )
        )
        config_dict = kc.build(
            kc.KubeconfigSpec(
                server=api.configuration.host,
                namespace=NS,
                cluster_name="c",
                user_name="u",
                context_name="x",
                ca_data=creds["ca_pem"],
                token=creds["token"],
            )
        )
        configuration = client.Configuration()
        config.load_kube_config_from_dict(config_dict, client_configuration=configuration)
        verify, report = timed(
            lambda: kc.verify(
                client.ApiClient(configuration), NS, kc.default_checks(NS) + kc.default_checks("default"), sa.rest_json
            )
        )
        print(f"sa_first_run_seconds: {first:.3f}")
        print(f"sa_second_run_seconds: {second:.3f}")
        print(f"sa_first_to_second_ratio: {first / second:.2f}")
        print(f"sa_token_request_run_seconds: {request:.3f}")
        print(f"kubeconfig_verify_seconds: {verify:.3f}")
        print(f"kubeconfig_verify_checks: {len(report['allowed']) + len(report['denied'])}")
    finally:
        sa.ensure_absent(rest, spec)
        sa.ensure_absent(rest, sa.SaSpec(namespace=NS, name="bench-req", token_mode="request"))


if __name__ == "__main__":
    main()

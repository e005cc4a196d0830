"""The renku role on the lab: CA Secrets on the local and remote clusters, Renku values through the
pipeline, and the kaniko rewrite of a template repository pushed to the lab git server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config
from playbook import ROOT, run_scenario

pytestmark = pytest.mark.lab
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")


@pytest.fixture(scope="module")
def template_repo(lab_env):
    if "LAB_GIT_URL" not in lab_env:
        pytest.skip("the lab git server is not part of this lab")
    sys.path.insert(0, str(ROOT / "lab" / "components"))
    sys.path.insert(0, str(ROOT / "lab"))
    import gitserver

    gitserver.ROOT = Path(lab_env["LAB_GIT_ROOT"])
    name = f"renku-test-template-{WORKER}-{uuid.uuid4().hex[:5]}"
    bare = gitserver.seed_repository(name, {".gitlab-ci.yml": gitserver.GITLAB_CI, "Dockerfile": "FROM python\n"})
    yield name
    subprocess.run(["rm", "-rf", str(bare)], check=False)


def test_renku_role_scenario(lab_env, template_repo, tmp_path):
    namespace = f"renku-{WORKER}-{uuid.uuid4().hex[:5]}"
    extra = {
        "renku_test_namespace": namespace,
        "renku_test_template": template_repo,
        "renku_test_git_url": lab_env["LAB_GIT_URL"],
        "renku_test_work_dir": str(tmp_path / "templates"),
    }
    try:
        results = run_scenario("renku", extra_vars=extra)
        assert results["converge"].changed > 0
        pushed = subprocess.run(
            ["git", "--git-dir", f"{lab_env['LAB_GIT_ROOT']}/{template_repo}.git", "log", "--format=%s", "main"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert pushed.stdout.splitlines()[0] == "CI: build the image with kaniko, trusting the site CA"
        assert len(pushed.stdout.splitlines()) == 2, "the idempotence run pushed again"
    finally:
        for kubeconfig, names in (
            (lab_env["KUBECONFIG_LOCAL"], (namespace, f"{namespace}-sessions")),
            (lab_env["KUBECONFIG_REMOTE"], (f"{namespace}-remote-sessions",)),
        ):
            core = client.CoreV1Api(config.new_client_from_config(kubeconfig))
            for name in names:
                with contextlib.suppress(client.ApiException):
                    core.delete_namespace(name)

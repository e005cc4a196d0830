"""api_error_message: one line per API failure, naming the likely fix."""

from __future__ import annotations

import json

from kubernetes.client.rest import ApiException

from ansible_collections.airgap.renku.plugins.module_utils.common.kube import api_error_message


def _error(status: int, reason: str, message: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "reason": reason, "code": status})
    return exc


def test_a_terminating_namespace_is_not_blamed_on_rbac():
    exc = _error(
        403,
        "Forbidden",
        'serviceaccounts "gitlab-deployer" is forbidden: unable to create new content in namespace '
        "itest-gitlab-deployer because it is being terminated",
    )
    message = api_error_message(exc, "service account itest-gitlab-deployer/gitlab-deployer")
    assert "being deleted (Terminating)" in message and "RBAC" not in message


def test_a_real_403_names_rbac():
    exc = _error(403, "Forbidden", 'serviceaccounts is forbidden: User "ci" cannot create resource "serviceaccounts"')
    assert "lacks RBAC permission" in api_error_message(exc, "service account a/b")


def test_401_and_unreachable():
    assert "rejected the credentials (401" in api_error_message(_error(401, "Unauthorized", ""), "x")
    assert "unreachable" in api_error_message(OSError("connection refused"), "x")

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter rewriting a Renku project template's `.gitlab-ci.yml` image build to kaniko with the site CA."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.airgap.renku.plugins.module_utils.platform.kaniko import KanikoEditError, kaniko_image_build


def kaniko_gitlab_ci(
    text: str, kaniko_image: str, ca_variable: str = "AIRGAP_CA_CERT", job: str = "image_build"
) -> str:
    """`text` with the `job` rewritten to the kaniko executor, the CA appended to kaniko's bundle."""
    try:
        return kaniko_image_build(text, kaniko_image, ca_variable, job)
    except KanikoEditError as exc:
        raise AnsibleFilterError(f"kaniko_gitlab_ci: {exc}") from exc


class FilterModule:
    """Project template filters."""

    def filters(self) -> dict[str, Any]:
        return {"kaniko_gitlab_ci": kaniko_gitlab_ci}

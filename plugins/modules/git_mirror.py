#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: git_mirror
short_description: Mirror git repositories (branches and tags) to an internal git server over HTTPS
version_added: "0.1.0"
description:
  - For each repository, compares the branches and tags of the source and the destination
    (C(git ls-remote)) and, when they differ, clones the source bare and pushes every branch and tag
    to the destination, pruning refs the source no longer has.
  - TLS is verified against O(ca_file); credentials travel in an HTTP header, never in URLs or logs.
author:
  - airgap.renku maintainers (@airgap-renku)
requirements:
  - git
attributes:
  check_mode:
    support: full
    description: Compares refs only.
  diff_mode:
    support: none
    description: The result lists, per repository, whether its refs differed.
options:
  repositories:
    description: Repositories to mirror.
    type: list
    elements: dict
    required: true
    suboptions:
      source:
        description: Source URL.
        type: str
        required: true
      destination:
        description: Destination URL (the repository must exist, or the server must create it on push).
        type: str
        required: true
      source_username:
        description: Source user.
        type: str
      source_password:
        description: Source password or token.
        type: str
      username:
        description: Destination user.
        type: str
      password:
        description: Destination password or token.
        type: str
  ca_file:
    description: CA bundle verifying both servers.
    type: path
seealso:
  - module: airgap.renku.image_mirror
"""

EXAMPLES = r"""
- name: Mirror the session template repositories
  airgap.renku.git_mirror:
    repositories:
      - source: https://git.connected.example/templates/python-basic.git
        destination: https://git.site.example/templates/python-basic.git
        username: mirror
        password: "{{ vault_git_password }}"
    ca_file: /etc/pki/site-ca.crt
"""

RETURN = r"""
repositories:
  description: One item per repository.
  returned: always
  type: list
  elements: dict
  sample:
    - source: https://git.connected.example/templates/python-basic.git
      destination: https://git.site.example/templates/python-basic.git
      refs: 3
      changed: true
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    repositories=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            source=dict(type="str", required=True),
            destination=dict(type="str", required=True),
            source_username=dict(type="str"),
            source_password=dict(type="str", no_log=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
        ),
    ),
    ca_file=dict(type="path"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.get_bin_path("git") is None:
        module.fail_json(msg="git is required on the host that runs git_mirror")
    from ansible_collections.airgap.renku.plugins.module_utils.mirror_charts import ChartMirrorError, mirror_git_repo

    results = []
    try:
        for repo in module.params["repositories"]:
            results.append(mirror_git_repo(repo, module.params["ca_file"], module.check_mode))
    except ChartMirrorError as exc:
        module.fail_json(msg=str(exc), repositories=results)
    module.exit_json(changed=any(r["changed"] for r in results), repositories=results)


if __name__ == "__main__":
    main()

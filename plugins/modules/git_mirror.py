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
  - For sites where the two sides never meet, O(bundle_mode=export) writes each repository's branches and tags
    into a C(git bundle) file, C(<bundle_dir>/<name>.bundle), and O(bundle_mode=import) pushes them from there
    to the destination. The bundle is rewritten only when the source's refs changed.
  - TLS is verified against O(ca_file); credentials travel in an HTTP header, never in URLs or logs.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.ca_file
  - airgap.renku.requirements.git
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
      name:
        description:
          - Name of the repository's bundle file (C(<name>.bundle)); the last part of O(repositories[].source)
            without C(.git) when not given. Both sides must use the same name.
        type: str
      destination:
        description:
          - Destination URL (the repository must exist, or the server must create it on push).
          - Required unless O(bundle_mode=export).
        type: str
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
  bundle_dir:
    description: Directory of the repositories' bundle files (C(git/) of an image_mirror bundle); with O(bundle_mode).
    type: path
  bundle_mode:
    description:
      - V(export) writes a bundle per repository into O(bundle_dir) (connected side).
      - V(import) pushes each repository from its bundle in O(bundle_dir) to its destination (offline side).
      - Not set, repositories are mirrored from source to destination directly.
    type: str
    choices: [export, import]
seealso:
  - module: airgap.renku.image_mirror
"""

EXAMPLES = r"""
- name: Carry the template repositories in the bundle (connected side)
  airgap.renku.git_mirror:
    repositories:
      - source: https://git.connected.example/templates/python-basic.git
    bundle_mode: export
    bundle_dir: /srv/carry/bundle/git
    ca_file: /etc/pki/connected-ca.crt

- name: Push them from the bundle to the internal git (offline side)
  airgap.renku.git_mirror:
    repositories:
      - source: https://git.connected.example/templates/python-basic.git
        destination: https://git.site.example/templates/python-basic.git
        username: mirror
        password: "{{ vault_git_password }}"
    bundle_mode: import
    bundle_dir: /srv/site/bundle/git
    ca_file: /etc/pki/site-ca.crt

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
    - source: https://git.connected.example/templates/python-basic.git
      bundle: /srv/carry/bundle/git/python-basic.bundle
      refs: 3
      changed: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.airgap.renku.plugins.module_utils.common.options import CA_FILE_ARGSPEC
from ansible_collections.airgap.renku.plugins.module_utils.common.secrets import credential_forms

ARGUMENT_SPEC = dict(
    repositories=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            source=dict(type="str", required=True),
            name=dict(type="str"),
            destination=dict(type="str"),
            source_username=dict(type="str"),
            source_password=dict(type="str", no_log=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
        ),
    ),
    **CA_FILE_ARGSPEC,
    bundle_dir=dict(type="path"),
    bundle_mode=dict(type="str", choices=["export", "import"]),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, supports_check_mode=True, required_together=[["bundle_dir", "bundle_mode"]]
    )
    # passwords also travel URL-quoted and as base64 user:password (HTTP Basic, registry auth files)
    module.no_log_values.update(credential_forms(module.params))
    if module.get_bin_path("git") is None:
        module.fail_json(msg="git is required on the host that runs git_mirror")
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.git import (
        GitMirrorError,
        export_git_repo,
        import_git_repo,
        mirror_git_repo,
    )

    params = module.params
    if params["bundle_mode"] != "export":
        missing = [r["source"] for r in params["repositories"] if not r.get("destination")]
        if missing:
            module.fail_json(
                msg=f"repositories[].destination is required unless bundle_mode=export; missing for {missing}"
            )
    results = []
    try:
        for repo in params["repositories"]:
            if params["bundle_mode"] == "export":
                results.append(export_git_repo(repo, params["ca_file"], params["bundle_dir"], module.check_mode))
            elif params["bundle_mode"] == "import":
                results.append(import_git_repo(repo, params["ca_file"], params["bundle_dir"], module.check_mode))
            else:
                results.append(mirror_git_repo(repo, params["ca_file"], module.check_mode))
    except GitMirrorError as exc:
        module.fail_json(msg=str(exc), repositories=results)
    module.exit_json(changed=any(r["changed"] for r in results), repositories=results)


if __name__ == "__main__":
    main()

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# Paired with oci.registry.REGISTRY_DESTINATION_ARGSPEC. A module sets only the default of O(prefix) in its own
# documentation, which Ansible merges over this one.
class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  destination:
    description:
      - The internal registry, as host[:port] without a scheme or a path (paths go in O(prefix)).
    type: str
  destination_username:
    description:
      - User for O(destination).
    type: str
  destination_password:
    description:
      - Password or token of O(destination_username).
    type: str
  prefix:
    description:
      - Repository path prefix at O(destination).
    type: str
"""

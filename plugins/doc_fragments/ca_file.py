# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# Paired with common.options.CA_FILE_ARGSPEC.
class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ca_file:
    description:
      - CA bundle (PEM, usually the site CA) verifying the TLS certificate of every server the module talks to.
      - TLS is always verified; without O(ca_file), against the system's trusted roots.
    type: path
"""

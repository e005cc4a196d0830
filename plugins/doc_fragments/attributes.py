# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# airgap.renku.attributes.read_only: modules that read or transform and change nothing. A module may still give
# diff_mode its own description; Ansible merges it over this one.
class ModuleDocFragment:
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: The module changes nothing; check mode returns the same result.
  diff_mode:
    support: none
    description: Nothing is changed.
"""

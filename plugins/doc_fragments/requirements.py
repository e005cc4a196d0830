# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


def _requirement(line: str) -> str:
    # Ansible needs an options key in every fragment, hence the empty one.
    return f"options: {{}}\nrequirements:\n  - {line}\n"


# One attribute per dependency, used as airgap.renku.requirements.<name>. The Python lower bounds are those of
# requirements.txt and the programs those of bindep.txt (tests/unit/test_doc_fragments.py keeps them in step).
class ModuleDocFragment:
    PYYAML = _requirement("PyYAML >= 6.0 (Python)")
    CRYPTOGRAPHY = _requirement("cryptography >= 41.0.0 (Python)")
    KUBERNETES = _requirement("kubernetes >= 29.0.0 (Python)")
    HELM = _requirement("helm (program on the host that runs the module)")
    GIT = _requirement("git (program on the host that runs the module)")

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# One attribute per dependency, used as airgap.renku.requirements.<name>. The Python lower bounds are those of
# requirements.txt and the programs those of bindep.txt (tests/unit/test_doc_fragments.py keeps them in step).
# Ansible needs an options key in every fragment, hence the empty one.
class ModuleDocFragment:
    PYYAML = "options: {}\nrequirements: [PyYAML >= 6.0 (Python)]\n"
    CRYPTOGRAPHY = "options: {}\nrequirements: [cryptography >= 41.0.0 (Python)]\n"
    KUBERNETES = "options: {}\nrequirements: [kubernetes >= 29.0.0 (Python)]\n"
    HELM = "options: {}\nrequirements: [helm (program on the host that runs the module)]\n"
    GIT = "options: {}\nrequirements: [git (program on the host that runs the module)]\n"

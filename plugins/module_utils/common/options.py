# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option sets shared by several modules, each paired with the doc fragment of the same name.

The kube_auth set lives beside the client it configures (common.kube.KUBE_AUTH_ARGSPEC) and the registry
destination beside the registry client (oci.registry.REGISTRY_DESTINATION_ARGSPEC).
"""

from __future__ import annotations

from typing import Any, Dict

# doc fragment airgap.renku.ca_file
CA_FILE_ARGSPEC: Dict[str, Dict[str, Any]] = {
    "ca_file": {"type": "path"},
}

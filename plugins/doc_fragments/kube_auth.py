# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file. Used when O(host) is not set.
    type: path
  context:
    description:
      - Context of O(kubeconfig) to use; its current context when omitted.
    type: str
  host:
    description:
      - URL of the API server, for example V(https://api.example.internal:6443).
      - When set, O(kubeconfig) is ignored and O(api_key), O(ca_cert), O(client_cert) apply.
    type: str
  api_key:
    description:
      - Bearer token for O(host).
    type: str
  ca_cert:
    description:
      - CA bundle that signs the API server certificate. TLS is always verified.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Client certificate for O(host).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Key of O(client_cert).
    type: path
    aliases: [key_file]
requirements:
  - kubernetes >= 29.0.0 (Python)
"""

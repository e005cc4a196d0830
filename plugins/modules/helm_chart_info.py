#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: helm_chart_info
short_description: Read a Helm chart package offline - versions of what it vendors and its computed default values
version_added: "0.2.0"
description:
  - Reads a chart directory or package (C(.tgz)) on the controller without running Helm or reaching a network.
  - Returns the chart's name and version, the tree of the subcharts it vendors (unpacked under C(charts/) or as
    nested packages) with the version actually vendored and whether each one's condition enables it, and the
    default values with every subchart's defaults nested under its name or alias, parent values taking precedence.
  - The platform stage uses it to pin every image value of every subchart to the internal registry and to record
    which versions of C(amalthea-sessions) and C(csi-rclone) the deployed Renku chart vendors.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.attributes.read_only
  - airgap.renku.requirements.pyyaml
options:
  chart:
    description:
      - Path to a chart directory or a chart package (C(.tgz)), for example what C(helm pull) wrote.
    type: path
    required: true
  values:
    description:
      - Values laid over the chart's defaults before conditions are evaluated and values are returned, as C(helm -f).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Pull the Renku chart from the internal registry
  ansible.builtin.command:
    argv: [helm, pull, oci://registry.site.example/charts/renku, --version, 2.19.3, --destination, /srv/charts]
    creates: /srv/charts/renku-2.19.3.tgz

- name: Read it
  airgap.renku.helm_chart_info:
    chart: /srv/charts/renku-2.19.3.tgz
    values:
      global:
        renku:
          domain: renku.site.example
  register: renku_chart

- name: The versions the remote session clusters must run
  ansible.builtin.debug:
    msg: "amalthea-sessions {{ renku_chart.versions['amalthea-sessions'] }}, csi-rclone {{ renku_chart.versions['csi-rclone'] }}"
"""

RETURN = r"""
name:
  description: The chart's name.
  returned: always
  type: str
  sample: renku
version:
  description: The chart's version.
  returned: always
  type: str
  sample: 2.19.3
app_version:
  description: The chart's appVersion (empty when it has none).
  returned: always
  type: str
  sample: "1.0"
api_version:
  description: The chart's apiVersion (v1 charts declare dependencies in requirements.yaml).
  returned: always
  type: str
  sample: v1
versions:
  description: Name to vendored version of each direct dependency the package carries.
  returned: always
  type: dict
  sample: {"amalthea-sessions": "0.30.2", "csi-rclone": "0.6.0", "postgresql": "14.2.4"}
dependencies:
  description: The declared dependencies, recursively, with what the package vendors.
  returned: always
  type: list
  elements: dict
  sample:
    - name: amalthea-sessions
      alias: ""
      declared_version: "0.30.2"
      version: "0.30.2"
      vendored: true
      repository: https://swissdatasciencecenter.github.io/helm-charts/
      condition: ""
      enabled: true
      dependencies: []
values:
  description: Default values, subchart defaults nested under each subchart's name or alias, O(values) laid on top.
  returned: always
  type: dict
  sample: {"global": {"renku": {"domain": "renku.site.example"}}, "postgresql": {"image": {"tag": "16.6.0"}}}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common.charts import ChartError, chart_summary, read_chart
from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import HAS_YAML, YAML_IMPORT_ERROR


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "chart": {"type": "path", "required": True},
            "values": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    try:
        summary = chart_summary(read_chart(module.params["chart"]), module.params["values"])
    except ChartError as exc:
        module.fail_json(msg=f"chart: {exc}")
    module.exit_json(changed=False, **summary)


if __name__ == "__main__":
    main()

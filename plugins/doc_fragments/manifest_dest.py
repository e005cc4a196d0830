# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# Paired with common.secrets.MANIFEST_DEST_ARGSPEC.
class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  dest:
    description:
      - Write the resulting documents to this file (mode 0600, replaced atomically) instead of returning them as
        RV(manifest), and mask the values of every Secret among them in all output (result, warnings, errors and
        the invocation shown at C(-vvv)).
      - Set it whenever the documents hold Secrets, for example a chart's generated passwords, and hand the file to
        the next task (O(airgap.renku.release_apply#module:src) of M(airgap.renku.release_apply)). The file is the
        transform's output, so it is written in check mode too and not counted as a change; keep it in a private
        temporary directory.
      - Without O(dest), RV(manifest) is returned usable, Secret values included, and nothing is masked; run such
        a task with C(no_log) when the documents hold Secrets.
    type: path
"""

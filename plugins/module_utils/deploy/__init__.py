# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployers stage (and the remote stage's hand-over): kubeconfigs built from a ServiceAccount token."""

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remote stage: a ServiceAccount on the remote cluster, and its registration with Renku's data service."""

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared by every stage: Kubernetes documents and YAML, chart packages, atomic file writes, the Kubernetes API client."""

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by every part of the collection (YAML as Kubernetes reads it)."""

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI images for the mirror stage: image references, media types and the registry (Distribution) client."""

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The baremetal stage: the validated site model (DNS, DHCP/PXE, HAProxy) and the checks of what it serves."""

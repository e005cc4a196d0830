# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror stage: discover images, copy or bundle them, charts and git, the lock file and what later stages make of it."""

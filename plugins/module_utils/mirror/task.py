# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole `image_mirror` task from validated parameters to its result, shared by the module and by the
action plugin that runs the engine on the controller (to show progress while it copies)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

from ansible_collections.airgap.renku.plugins.module_utils.mirror.bundle import BundleError
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import CopyStats
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import DiscoveryError
from ansible_collections.airgap.renku.plugins.module_utils.mirror.run import run
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import (
    ImageMirrorSettings,
    MirrorParamError,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import ImageRefError
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import RegistryError

TASK_ERRORS = (MirrorParamError, ImageRefError, DiscoveryError, BundleError, RegistryError, ValueError, OSError)


def image_mirror_task(
    params: Mapping[str, Any],
    check_mode: bool,
    diff: bool,
    stats: Optional[CopyStats] = None,
    on_progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """The task result; `failed` and `msg` set when it failed. Warnings stay in `warnings_found`."""
    try:
        result = run(ImageMirrorSettings.from_params(params), check_mode, stats, on_progress)
    except TASK_ERRORS as exc:
        return {"failed": True, "msg": f"{type(exc).__name__}: {exc}"}
    if not diff:
        result.pop("diff", None)
    if result.pop("failed_msg", ""):
        return {**result, "failed": True, "msg": "bundle verification failed"}
    if result.get("errors"):
        return {**result, "failed": True, "msg": f"{len(result['errors'])} image(s) failed: {result['errors'][0]}"}
    return result

# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of airgap.renku.image_mirror: on the controller, run the copy engine here and show its
progress in the ansible-playbook output while it works; anywhere else, run the module as usual."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Optional, Set

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.airgap.renku.plugins.module_utils.common.secrets import credential_forms
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import CopyStats
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import HAS_YAML
from ansible_collections.airgap.renku.plugins.module_utils.mirror.progress import LiveProgress
from ansible_collections.airgap.renku.plugins.module_utils.mirror.task import image_mirror_task
from ansible_collections.airgap.renku.plugins.modules.image_mirror import ARGUMENT_SPEC

display = Display()
MODULE = "airgap.renku.image_mirror"
POLL_SECONDS = 0.25


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        if not self._on_controller() or not HAS_YAML:
            result.update(self._execute_module(module_name=MODULE, module_args=self._task.args, task_vars=task_vars))
            return result
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(self._task.args))
        if validated.error_messages:
            result.update(failed=True, msg="; ".join(validated.error_messages))
            return result
        # plain Python values, as a module receives them over JSON (templated strings are str subclasses that
        # YAML and other writers refuse)
        params = json.loads(json.dumps(validated.validated_parameters))
        secrets = credential_forms(params)
        host = str((task_vars or {}).get("inventory_hostname") or "localhost")
        outcome = self._run_with_progress(params, secrets, host)
        if outcome.get("warnings_found"):
            outcome["warnings"] = list(outcome["warnings_found"])
        result.update(remove_values(outcome, secrets))
        return result

    def _on_controller(self) -> bool:
        """Whether the module would run here anyway, as this user: then the engine may run in this process."""
        return self._connection.transport == "local" and not self._play_context.become

    def _run_with_progress(self, params: Dict[str, Any], secrets: Set[str], host: str) -> Dict[str, Any]:
        stats = CopyStats()
        live = LiveProgress(
            stats, lambda line: display.display(f"image_mirror [{host}]: {line}"), params["progress_interval"], secrets
        )
        outcome: Dict[str, Any] = {}

        def work() -> None:
            try:
                outcome.update(image_mirror_task(params, self._task.check_mode, self._task.diff, stats, live.record))
            except Exception as exc:  # reported as the task's failure, not lost in the thread
                outcome.update(failed=True, msg=f"{type(exc).__name__}: {exc}")

        worker = threading.Thread(target=work, name="image_mirror", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            live.tick()
        if params["mode"] != "verify_bundle":
            live.tick(final=True)
        return outcome

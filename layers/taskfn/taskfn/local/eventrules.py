"""EventBridge rules of the default bus, in the local stack: an event put here reaches every
function whose EventBridgeRule pattern matches it, as EventBridge delivers it to the rule's
target. Only the local back-ends put events here (moto's EventBridge keeps rules but invokes
no Lambda), so the handlers behind rules run on the same events as in AWS. A target that
fails is tried again (EventBridge retries a target for up to 24 h; here a few times, with
back-off) and then logged as dropped."""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any

from taskfn.local.pollers import matches
from taskfn.local.provision import Provisioned
from taskfn.local.template import Template

TRIES = 4


class EventRules:
    def __init__(self, template: Template, provisioned: Provisioned, invoker: Any,
                 *, back_off_s: float = 0.5) -> None:
        self.invoker = invoker
        self.back_off_s = back_off_s
        self.rules = [(rule.function_id, provisioned.resolve_tree(rule.pattern))
                      for rule in template.event_rules]

    def targets(self, event: dict[str, Any]) -> list[str]:
        return [function for function, pattern in self.rules if matches(pattern, event)]

    def put(self, event: dict[str, Any]) -> int:
        """Deliver `event` to each matching target; how many took it."""
        delivered = 0
        for function_id in self.targets(event):
            for attempt in range(TRIES):
                try:
                    self.invoker.invoke(function_id, event)
                    delivered += 1
                    break
                except Exception:
                    if attempt == TRIES - 1:
                        sys.stderr.write(f"taskfn local: {function_id} dropped an event "
                                         f"after {TRIES} tries\n")
                        traceback.print_exc(file=sys.stderr)
                    else:
                        time.sleep(self.back_off_s * 2 ** attempt)
        return delivered

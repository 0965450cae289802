"""Which tasks wait for their paused function to be resumed (GreenCloud's togglePause).

One marker item per held task beside its function's item: "FUNC#<function id>" /
"HELD#<task id>". A resume reads them with a strongly consistent Query of the table itself,
so a hold written before the resume's own write is always found (an index, eventually
consistent, could miss one written a moment earlier and leave that task waiting forever).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taskfn.stores.table import Table

HELD = "HELD#"
PAGE = 500


class HoldMarkers:
    def __init__(self, table: Table):
        self.table = table

    def put(self, function_id: str, task_id: str, at_ns: int) -> None:
        self.table.put({"PK": f"FUNC#{function_id}", "SK": f"{HELD}{task_id}",
                        "task_guid": task_id, "held_at": at_ns})

    def delete(self, function_id: str, task_id: str) -> None:
        self.table.remove(f"FUNC#{function_id}", f"{HELD}{task_id}")

    def held(self, function_id: str) -> Iterator[str]:
        """Every held task id of the function, a page at a time."""
        start: dict[str, Any] | None = None
        while True:
            items, start = self.table.query_items(f"FUNC#{function_id}", prefix=HELD,
                                                  limit=PAGE, start=start)
            yield from (str(item["task_guid"]) for item in items)
            if start is None:
                return

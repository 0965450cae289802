"""BBS's view of a task record, without the HTTP machinery: the Cell API answers with it and
the events Lambda publishes it, and that Lambda should not import a web framework."""

from __future__ import annotations

from typing import Any

from taskfn.models import TaskRecord


def task_view(task: TaskRecord) -> dict[str, Any]:
    """BBS's Task: the definition's fields inlined, then the task's own. Times are
    nanoseconds since the epoch, as BBS keeps them."""
    view: dict[str, Any] = dict(task.task_definition or {})
    view.update(
        placement_tags=task.placement_tags,
        completion_callback_url=task.completion_callback_url,
        annotation=task.annotation,
    )
    if task.function_id:
        view["function_id"] = task.function_id
    if task.retries:  # taskfn's retries: the earlier attempts and when the next may start
        view.update(retries=task.retries, attempts=task.attempts, retry_at=task.retry_at)
    if task.desired and task.input is not None:
        view["input"] = task.input.get("body")
    view.update(
        task_guid=task.task_guid,
        domain=task.domain,
        created_at=task.created_at,
        updated_at=task.updated_at,
        first_completed_at=task.first_completed_at,
        state=task.state.value,
        cell_id=task.cell_id,
        result=task.result,
        failed=task.failed,
        failure_reason=task.failure_reason,
        rejection_count=task.rejection_count,
        rejection_reason=task.rejection_reason,
    )
    return view

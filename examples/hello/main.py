"""taskfn's first function: greets whoever the body names, in steps, reporting its progress.

    taskfn fn deploy examples/hello
    taskfn run hello --wait
    taskfn run hello --data '{"name": "Ada"}' --query steps=5 --wait
    taskfn run hello --query fail=1 --wait     # a failed task: exit status 1

A function is a folder with main.py at its top and `handler(event, context)` in it (other
files beside it are importable). A task may run 10 s unless its capabilities say otherwise.
"""

import time


def handler(event, context):
    """`event` is {body, query, taskId, functionId}: the body parsed as JSON (or its text, or
    None), the query as a dict of strings. What this returns is the task's answer: a dict is
    200 application/json; raising makes the task fail with 500 and the traceback in its
    stderr."""
    body = event["body"]
    name = body.get("name", "world") if isinstance(body, dict) else (body or "world")
    steps = max(1, min(int(event["query"].get("steps", "3")), 20))
    pause = min(float(event["query"].get("pause", "1")), 5.0)  # progress is kept once a second
    for step in range(1, steps + 1):
        print(f"step {step} of {steps}")  # the task's stdout: `taskfn logs TASK`
        time.sleep(pause)
        context.set_progress(100 * step // steps)  # what `taskfn run --wait` draws
    if event["query"].get("fail"):
        raise RuntimeError(f"asked to fail after {steps} steps")
    return {"message": f"hello {name}", "steps": steps, "taskId": context.task_id}

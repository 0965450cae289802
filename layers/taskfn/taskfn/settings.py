"""Settings from the environment, read once per process (the Lambda init phase)."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Every knob of the platform; the names are the environment variables upper-cased."""

    table_name: str = "taskfn"
    bucket_name: str = "taskfn"
    task_queue_url: str = ""
    # Payloads above these sizes live in S3 with a pointer in the record (DynamoDB items stop
    # at 400 KB; keeping records small keeps reads and writes at one capacity unit or few).
    inline_input_bytes: int = 32 * 1024
    inline_result_bytes: int = 32 * 1024
    inline_log_bytes: int = 4 * 1024
    max_task_body_bytes: int = 1024 * 1024
    max_source_bytes: int = 256 * 1024
    list_page_default: int = 100
    list_page_max: int = 1000
    # Where the executor unpacks code; /tmp is the only writable place in Lambda.
    code_cache_dir: str = "/tmp/taskfn-code"
    # The executor leaves this much of the Lambda's time unused as a safety margin.
    executor_margin_s: int = 15
    default_timeout_s: int = Field(10, ge=10, le=120)
    # Cell API (reference/bbs.md): rejections a task survives before it fails (BBS's
    # max_task_retries), and the most tasks one list.r3 answer holds (BBS has no paging).
    max_task_retries: int = Field(3, ge=0)
    cell_list_max: int = Field(1000, ge=1)


@cache
def get_settings() -> Settings:
    """The process's settings, from the environment."""
    fields = Settings.model_fields
    values = {name: os.environ[name.upper()] for name in fields if name.upper() in os.environ}
    return Settings(**values)

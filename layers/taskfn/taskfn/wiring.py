"""Builds stores from the settings and the process's AWS clients (once, at init).

DynamoDB, the hot path of every handler, is built at init; S3 and SQS clients are built on
first use, so a handler that never touches them does not pay for them at cold start."""

from __future__ import annotations

from functools import cache

from taskfn import aws
from taskfn.settings import get_settings
from taskfn.stores.blobs import BlobStore
from taskfn.stores.lambdas import FunctionLambdas
from taskfn.stores.metrics import FunctionMetrics, OwnerMetrics
from taskfn.stores.nodes import NodeStore
from taskfn.stores.queue import TaskQueue
from taskfn.stores.records import BuildStore, FunctionStore, TokenStore
from taskfn.stores.table import Table
from taskfn.stores.tasks import TaskStore


@cache
def table() -> Table:
    return Table(aws.client("dynamodb"), get_settings().table_name)


def tokens() -> TokenStore:
    return TokenStore(table())


def functions() -> FunctionStore:
    return FunctionStore(table())


def builds() -> BuildStore:
    return BuildStore(table())


def function_metrics() -> FunctionMetrics:
    return FunctionMetrics(table())


def owner_metrics() -> OwnerMetrics:
    return OwnerMetrics(table())


def nodes() -> NodeStore:
    return NodeStore(table())


def tasks() -> TaskStore:
    return TaskStore(table(), metrics=function_metrics())


@cache
def blobs() -> BlobStore:
    return BlobStore(aws.LazyClient("s3"), get_settings().bucket_name)


@cache
def task_queue() -> TaskQueue:
    return TaskQueue(aws.LazyClient("sqs"), get_settings().task_queue_url)


@cache
def callback_queue() -> TaskQueue | None:
    """The completion callback queue, or None where none is configured."""
    url = get_settings().callback_queue_url
    return TaskQueue(aws.LazyClient("sqs"), url) if url else None


@cache
def function_lambdas() -> FunctionLambdas | None:
    """The functions' own Lambdas under isolation "lambda"; None under "process"."""
    settings = get_settings()
    if settings.isolation != "lambda":
        return None
    layers = [arn for arn in settings.function_layer_arns.split(",") if arn]
    return FunctionLambdas(aws.LazyClient("lambda"), prefix=settings.function_name_prefix,
                           role_arn=settings.function_role_arn, layers=layers,
                           stack=settings.stack_name, margin_s=settings.function_timeout_margin_s)


def reset() -> None:
    """Forget built stores and clients (tests that start a fresh backend)."""
    for built in (table, blobs, task_queue, callback_queue, function_lambdas):
        built.cache_clear()
    get_settings.cache_clear()
    aws.reset_clients()

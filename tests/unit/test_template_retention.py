"""template.yaml and the code agree on storage: one retention for task records (the table's
TTL attribute, set from Settings) and their outputs (the Bucket's lifecycle rule), and the
indexes the stores' key layout reads."""

from __future__ import annotations

from pathlib import Path

from taskfn.local.template import load_template
from taskfn.models import TaskRecord
from taskfn.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RETENTION = {"Ref": "TaskRetentionDays"}


def test_records_and_outputs_expire_after_the_same_number_of_days():
    # The template cannot read Settings: its parameter's default is the one number both use.
    assert int(TEMPLATE.parameters["TaskRetentionDays"]) == Settings().task_retention_days
    rules = TEMPLATE.resources["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (tasks,) = [rule for rule in rules if rule.get("Prefix") == "tasks/"]
    assert tasks["Status"] == "Enabled" and tasks["ExpirationInDays"] == RETENTION
    # Every function reads the deployed value, not only the default.
    variables = TEMPLATE.globals["Function"]["Environment"]["Variables"]
    assert variables["TASK_RETENTION_DAYS"] == RETENTION


def test_the_table_expires_items_by_the_attribute_records_carry():
    ttl = TEMPLATE.resources["Table"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}
    assert "expires_at" in TaskRecord.model_fields


def test_the_open_and_domain_indexes_are_keyed_as_the_task_store_writes_them():
    indexes = {index["IndexName"]: index for index in
               TEMPLATE.resources["Table"]["Properties"]["GlobalSecondaryIndexes"]}
    for name, projection in (("GSI3", "KEYS_ONLY"), ("GSI4", "ALL")):
        keys = [(k["AttributeName"], k["KeyType"]) for k in indexes[name]["KeySchema"]]
        assert keys == [(f"{name}PK", "HASH"), (f"{name}SK", "RANGE")]
        assert indexes[name]["Projection"] == {"ProjectionType": projection}

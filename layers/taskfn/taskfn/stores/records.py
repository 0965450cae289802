"""Stores for the small records: tokens, functions and builds."""

from __future__ import annotations

from typing import Any

from taskfn.models import BuildRecord, FunctionRecord, TokenRecord
from taskfn.stores.table import Page, Table, time_key

# A function's item counts the changes of its tags (taskfn.stores.tags, memberships).
TAGS_VERSION = "tags_version"


class TokenStore:
    """Tokens are found by the SHA-256 of their secret; the secret itself is never stored."""

    def __init__(self, table: Table):
        self.table = table

    def put(self, token_hash: str, record: TokenRecord) -> bool:
        return self.table.put_new(
            {"PK": f"TOKEN#{token_hash}", "SK": "TOKEN", **record.model_dump(mode="json")}
        )

    def get(self, token_hash: str) -> TokenRecord | None:
        item = self.table.get(f"TOKEN#{token_hash}", "TOKEN")
        return TokenRecord.model_validate(item) if item else None


class FunctionStore:
    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _keys(record: FunctionRecord) -> dict[str, Any]:
        return {
            "PK": f"FUNC#{record.id}",
            "SK": "FUNC",
            "GSI1PK": f"OWNER#{record.owner}#FUNC",
            "GSI1SK": time_key(record.created_at, record.id),
        }

    def put_new(self, record: FunctionRecord) -> bool:
        return self.table.put_new({**self._keys(record), **record.model_dump(mode="json"),
                                   TAGS_VERSION: 0})

    def get(self, function_id: str, *, consistent: bool = False) -> FunctionRecord | None:
        item = self.table.get(f"FUNC#{function_id}", "FUNC", consistent=consistent)
        return FunctionRecord.model_validate(item) if item else None

    def get_versioned(self, function_id: str) -> tuple[FunctionRecord, int] | None:
        """The function, strongly consistent, with the version of its tags (stores.tags)."""
        item = self.table.get(f"FUNC#{function_id}", "FUNC", consistent=True)
        if not item:
            return None
        return FunctionRecord.model_validate(item), int(item.get(TAGS_VERSION, 0))

    def get_many(self, function_ids: list[str]) -> list[FunctionRecord]:
        """The functions of these ids that exist, in the order asked: BatchGetItem."""
        order = {function_id: position for position, function_id in enumerate(function_ids)}
        items = self.table.get_many([(f"FUNC#{function_id}", "FUNC")
                                     for function_id in function_ids])
        records = [FunctionRecord.model_validate(item) for item in items]
        return sorted(records, key=lambda record: order.get(record.id, 0))

    def list_by_owner(self, owner: str, *, limit: int, cursor: str | None) -> tuple[
        list[FunctionRecord], str | None
    ]:
        page: Page = self.table.query("GSI1", f"OWNER#{owner}#FUNC", limit=limit, cursor=cursor)
        return [FunctionRecord.model_validate(i) for i in page.items], page.cursor

    def delete(self, function_id: str, owner: str) -> bool:
        """Deletes only the owner's function: one conditional write, False otherwise."""
        return self.table.delete(
            f"FUNC#{function_id}", "FUNC", condition="#o = :o", names={"#o": "owner"},
            values={":o": owner},
        )

    def set_build(self, function_id: str, owner: str, build_id: str, code_key: str,
                  lambda_version: str = "") -> bool:
        """Point the function at new code, if it still exists and is the owner's."""
        ok, _ = self.table.update(
            f"FUNC#{function_id}",
            "FUNC",
            set_values={"build_id": build_id, "code_key": code_key,
                        "lambda_version": lambda_version},
            condition="attribute_exists(PK) AND #o = :c_o",
            condition_values={"o": owner},
            condition_names={"#o": "owner"},
        )
        return ok

    def update(self, function_id: str, owner: str, changes: dict[str, Any], *,
               tags_version: int | None = None) -> tuple[bool, dict[str, Any] | None]:
        """One conditional write of the owner's function: (True, the item now) or (False, the
        item as it was, None when there is none). With `tags_version` (a change of its tags)
        only if its tags are still of that version, which the write moves on by one."""
        condition = "attribute_exists(PK) AND #o = :c_o"
        values: dict[str, Any] = {"o": owner}
        names = {"#o": "owner"}
        if tags_version is not None:
            changes = {**changes, TAGS_VERSION: tags_version + 1}
            names["#v"] = TAGS_VERSION
            values["v"] = tags_version
            same = "#v = :c_v" + (" OR attribute_not_exists(#v)" if tags_version == 0 else "")
            condition += f" AND ({same})"
        return self.table.update(f"FUNC#{function_id}", "FUNC", set_values=changes,
                                 condition=condition, condition_values=values,
                                 condition_names=names)

    def set_paused(self, function_id: str, owner: str, paused: bool) -> tuple[
        bool, dict[str, Any] | None
    ]:
        """Pause or resume the owner's function, only if it is not so already: a flip by one
        conditional write; (False, the item as it was) otherwise."""
        was = "#p = :c_was" if not paused else "(attribute_not_exists(#p) OR #p = :c_was)"
        return self.table.update(
            f"FUNC#{function_id}", "FUNC", set_values={"paused": paused},
            condition=f"attribute_exists(PK) AND #o = :c_o AND {was}",
            condition_values={"o": owner, "was": not paused},
            condition_names={"#o": "owner", "#p": "paused"})


class BuildStore:
    # What the build list shows (and checks: the owner), fetched by key.
    LIST_ATTRIBUTES = ("id", "owner", "function_id", "status", "arch", "created_at")

    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def owner_partition(owner: str) -> str:
        """An owner's builds on GSI1 (keys and the few list attributes it projects)."""
        return f"OWNER#{owner}#BUILD"

    @staticmethod
    def function_partition(function_id: str) -> str:
        """A function's builds on GSI2 (keys only)."""
        return f"FUNC#{function_id}#BUILD"

    def put(self, record: BuildRecord) -> None:
        self.table.put(
            {
                "PK": f"BUILD#{record.id}",
                "SK": "BUILD",
                "GSI1PK": self.owner_partition(record.owner),
                "GSI1SK": time_key(record.created_at, record.id),
                "GSI2PK": self.function_partition(record.function_id),
                "GSI2SK": time_key(record.created_at, record.id),
                **record.model_dump(mode="json"),
            }
        )

    def get(self, build_id: str) -> BuildRecord | None:
        item = self.table.get(f"BUILD#{build_id}", "BUILD")
        return BuildRecord.model_validate(item) if item else None

    def list_page(
        self, owner: str, *, page: int, limit: int, function_id: str | None = None
    ) -> tuple[list[BuildRecord], int]:
        """Page `page` (from 1) of `limit` builds of an owner's, or of one function's, newest
        first, and how many there are in all: the keys of the first page × limit index
        entries and a count of the rest (Table.head_and_count), then one BatchGetItem of the
        page's builds, in order. A build that is not the owner's is left out (a function's
        builds are its owner's; checked all the same)."""
        if function_id is None:
            index, partition = "GSI1", self.owner_partition(owner)
        else:
            index, partition = "GSI2", self.function_partition(function_id)
        keys, total = self.table.head_and_count(index, partition, first=page * limit)
        wanted = [(key["PK"], key["SK"]) for key in keys[(page - 1) * limit:]]
        order = {pk: position for position, (pk, _) in enumerate(wanted)}
        items = self.table.get_many(wanted, attributes=self.LIST_ATTRIBUTES)
        items.sort(key=lambda item: order.get(f"BUILD#{item.get('id')}", 0))
        builds = [BuildRecord.model_validate(item) for item in items]
        return [build for build in builds if build.owner == owner], total

"""Tags (GreenCloud's, per account) and which functions carry which tag.

A tag lives in its owner's partition of the table itself, "OWNER#<user>#TAG" / "TAG#<id>",
beside one counter item "OWNER#<user>#TAG" / "COUNT" (the cap on tags per owner). One
partition, read strongly consistent, answers the tag list, the check of a function's tag ids
and the names and colors its views show, each with one Query; a tag just created is seen by
all of them at once, and another owner's tag is simply not in the caller's partition.

A function's membership in a tag is an item beside the function, "FUNC#<function id>" /
"TAG#<tag id>", on GSI2 as "TAG#<tag id>#FUNC" / "<function created>#<function id>": the
functions of a tag, newest first, one Query page at a time (keys only; the functions are then
read by key). The function item's own `tags` stay the truth; memberships are its index:

- each carries the `version` of the function's tags it was written for (the function item's
  `tags_version`, which every change of its tags moves on by one, conditionally on the one it
  read), and a write never lowers it, so a slow writer cannot bring back what a later one
  replaced;
- a change of tags writes the new memberships before the function and removes the others
  after, only those of versions up to its own: the tags a function has always have their
  memberships, whatever writers race;
- what a crash or a lost race leaves (a membership whose function is gone or no longer has
  the tag) is skipped by the views, which keep only functions that carry the tag, and removed
  by the function's next change of tags or its delete. A deleted tag's memberships are left to
  the same clean-up: the list by a deleted tag is a 404 and nothing else reads them.
"""

from __future__ import annotations

from typing import Any

from taskfn.models import Record
from taskfn.stores.table import Page, Table, time_key

TAG = "TAG#"
COUNT = "COUNT"
PAGE = 500


class TagRecord(Record):
    id: str
    owner: str
    name: str
    color: str
    created_at: int


def owner_partition(owner: str) -> str:
    return f"OWNER#{owner}#TAG"


def tag_partition(tag_id: str) -> str:
    """The GSI2 partition of a tag's functions."""
    return f"TAG#{tag_id}#FUNC"


class TagStore:
    def __init__(self, table: Table):
        self.table = table

    def reserve(self, owner: str, cap: int) -> bool:
        """One tag more on the owner's count, unless it has `cap` already (one conditional
        ADD). Each create reserves before it writes and each delete gives back after, so a
        writer that dies in between leaves the count one too high, never too low: the cap
        holds."""
        ok, _ = self.table.update(
            owner_partition(owner), COUNT, set_values={}, add_values={"tags": 1},
            condition="attribute_not_exists(#n) OR #n < :c_cap",
            condition_values={"cap": cap}, condition_names={"#n": "tags"})
        return ok

    def give_back(self, owner: str) -> None:
        self.table.update(owner_partition(owner), COUNT, set_values={},
                          add_values={"tags": -1}, condition="attribute_exists(PK)")

    def put_new(self, tag: TagRecord) -> bool:
        return self.table.put_new({"PK": owner_partition(tag.owner), "SK": f"{TAG}{tag.id}",
                                   **tag.model_dump(mode="json")})

    def get(self, owner: str, tag_id: str) -> TagRecord | None:
        item = self.table.get(owner_partition(owner), f"{TAG}{tag_id}")
        return TagRecord.model_validate(item) if item else None

    def of_owner(self, owner: str) -> list[TagRecord]:
        """Every tag of the owner, in the order they were created: one strongly consistent
        Query (the cap keeps it to one page)."""
        found: list[TagRecord] = []
        start: dict[str, Any] | None = None
        while True:
            items, start = self.table.query_items(owner_partition(owner), prefix=TAG,
                                                  limit=PAGE, start=start)
            found += [TagRecord.model_validate(item) for item in items]
            if start is None:
                return sorted(found, key=lambda tag: (tag.created_at, tag.id))

    def update(self, owner: str, tag_id: str, changes: dict[str, str]) -> bool:
        """False when the owner has no such tag."""
        ok, _ = self.table.update(owner_partition(owner), f"{TAG}{tag_id}",
                                  set_values=changes, condition="attribute_exists(PK)")
        return ok

    def delete(self, owner: str, tag_id: str) -> bool:
        """False when the owner has no such tag."""
        return self.table.delete(owner_partition(owner), f"{TAG}{tag_id}", condition="#o = :o",
                                 names={"#o": "owner"}, values={":o": owner})


class TagMemberships:
    """Which functions carry which tag: the index of the list by tag (see the module's
    docstring for why it stays right under races)."""

    def __init__(self, table: Table):
        self.table = table

    def put(self, function_id: str, owner: str, created_at: int, tag_ids: tuple[str, ...],
            version: int) -> None:
        """The function's memberships for its tags of `version`, written before the function
        (an UpdateItem each, which creates it): only over ones of versions up to it."""
        for tag_id in tag_ids:
            self.table.update(
                f"FUNC#{function_id}", f"{TAG}{tag_id}",
                set_values={"GSI2PK": tag_partition(tag_id),
                            "GSI2SK": time_key(created_at, function_id),
                            "function_id": function_id, "tag_id": tag_id, "owner": owner,
                            "version": version},
                condition="attribute_not_exists(PK) OR #v <= :c_v",
                condition_values={"v": version}, condition_names={"#v": "version"})

    def of_function(self, function_id: str) -> list[str]:
        """The tag ids the function has memberships for: one strongly consistent Query."""
        found: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            items, start = self.table.query_items(f"FUNC#{function_id}", prefix=TAG,
                                                  limit=PAGE, start=start)
            found += [str(item["SK"]).removeprefix(TAG) for item in items]
            if start is None:
                return found

    def remove_others(self, function_id: str, keep: tuple[str, ...], version: int) -> int:
        """After the function's tags of `version` were written: every membership of another
        tag, unless a later version wrote it; how many went."""
        removed = 0
        for tag_id in self.of_function(function_id):
            if tag_id not in keep:
                removed += self.table.delete(
                    f"FUNC#{function_id}", f"{TAG}{tag_id}", condition="#v <= :v",
                    names={"#v": "version"}, values={":v": version})
        return removed

    def remove_all(self, function_id: str) -> None:
        """With the function: every membership it has."""
        for tag_id in self.of_function(function_id):
            self.table.remove(f"FUNC#{function_id}", f"{TAG}{tag_id}")

    def functions_page(self, tag_id: str, *, limit: int, cursor: str | None) -> tuple[
        list[str], str | None
    ]:
        """One page of the ids of the functions tagged `tag_id`, newest first: one Query."""
        page: Page = self.table.query("GSI2", tag_partition(tag_id), limit=limit, cursor=cursor)
        return [str(item["PK"]).removeprefix("FUNC#") for item in page.items], page.cursor

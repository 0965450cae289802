"""Tags: create, list, rename or recolor, delete; and the check of the tag ids a function is
given. Per account, at most MAX_TAGS_PER_OWNER of them. Two tags of one owner may share a
name: everything refers to tags by id (GreenCloud says nothing of unique names), and a rename
stays one write."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from taskfn import ids, wiring
from taskfn.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from taskfn.models import Caller, now_ns
from taskfn.stores.tags import TagRecord, TagStore

MAX_TAGS_PER_OWNER = 500
DEFAULT_COLOR = "#808080"


@dataclass(frozen=True)
class NewTag:
    name: str
    color: str = DEFAULT_COLOR


class TagService:
    def __init__(self, store: TagStore, *, cap: int = MAX_TAGS_PER_OWNER):
        self.store = store
        self.cap = cap

    @classmethod
    def from_env(cls) -> TagService:
        return cls(TagStore(wiring.table()))

    def create(self, caller: Caller, new: NewTag) -> TagRecord:
        """A slot on the owner's count first (the cap), then the tag."""
        if not self.store.reserve(caller.user, self.cap):
            raise Conflict("tag limit reached", f"at most {self.cap} tags per account; "
                           "delete one first")
        tag = TagRecord(id=ids.new_id(), owner=caller.user, name=new.name,
                        color=new.color.lower(), created_at=now_ns())
        try:
            written = self.store.put_new(tag)
        except Exception:
            self.store.give_back(caller.user)
            raise
        if not written:  # an id taken: never, with 8 random bytes in it
            self.store.give_back(caller.user)
            raise Conflict("tag id taken; try again")
        return tag

    def list(self, caller: Caller) -> list[TagRecord]:
        return self.store.of_owner(caller.user)

    def known(self, owner: str) -> dict[str, TagRecord]:
        """The owner's tags by id: what function views show of the ids they carry."""
        return {tag.id: tag for tag in self.store.of_owner(owner)}

    @contextmanager
    def owner_first(self, caller: Caller, tag_id: str) -> Iterator[None]:
        """Around parsing and changing a tag: a request refused as bad (400, 413) is a 404
        when the caller has no such tag (read on refusals only)."""
        try:
            yield
        except (InvalidRequest, PayloadTooLarge):
            if not ids.is_id(tag_id) or self.store.get(caller.user, tag_id) is None:
                raise NotFound("tag not found") from None
            raise

    def update(self, caller: Caller, tag_id: str, *, name: str | None = None,
               color: str | None = None) -> None:
        changes = {key: value for key, value in (("name", name), ("color", color and
                                                  color.lower())) if value is not None}
        if not changes:
            raise InvalidRequest("nothing to change", "give name or color")
        if not ids.is_id(tag_id) or not self.store.update(caller.user, tag_id, changes):
            raise NotFound("tag not found")

    def delete(self, caller: Caller, tag_id: str) -> None:
        """The tag; functions that carry it stop showing it at once (their views show only
        tags that exist) and the list by it is a 404 (stores.tags: its memberships)."""
        if not ids.is_id(tag_id) or not self.store.delete(caller.user, tag_id):
            raise NotFound("tag not found")
        self.store.give_back(caller.user)

    def check(self, caller: Caller, tag_ids: Iterable[str]) -> tuple[tuple[str, ...],
                                                                    dict[str, TagRecord]]:
        """The ids, each once in the order given, if every one is a tag of the caller's (400
        naming the first that is not), and the caller's tags by id."""
        wanted = tuple(dict.fromkeys(tag_ids))
        if not wanted:
            return (), {}
        known = self.known(caller.user)
        for tag_id in wanted:
            if tag_id not in known:
                raise InvalidRequest(f"unknown tag {tag_id[:64]}",
                                     "each tag must be one of yours (POST /v1/tag)")
        return wanted, known

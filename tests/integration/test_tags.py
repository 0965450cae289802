"""Tags against moto: create, list, rename, recolor, delete; their bounds, the cap per owner
(under concurrent creates too), and another owner's tags as 404."""

from __future__ import annotations

import threading

import pytest

from taskfn import wiring
from taskfn.adapters import greencloud
from taskfn.errors import Conflict, InvalidRequest, NotFound
from taskfn.services.tags import DEFAULT_COLOR, MAX_TAGS_PER_OWNER, NewTag, TagService
from taskfn.stores.tags import TagStore

from .helpers import ALICE, BOB


def views(caller) -> list[dict]:
    return [greencloud.tag_view(tag) for tag in TagService.from_env().list(caller)]


def test_a_tag_is_created_listed_renamed_recolored_and_deleted(backend):
    tags = TagService.from_env()
    green = tags.create(ALICE, greencloud.parse_new_tag({"name": "prod", "color": "#00FF80"}))
    plain = tags.create(ALICE, greencloud.parse_new_tag({"name": "dev"}))
    assert views(ALICE) == [{"id": green.id, "name": "prod", "color": "#00ff80"},
                            {"id": plain.id, "name": "dev", "color": DEFAULT_COLOR}]
    tags.update(ALICE, green.id, **greencloud.parse_tag_patch({"name": "production"}))
    tags.update(ALICE, plain.id, **greencloud.parse_tag_patch({"color": "#ABCDEF"}))
    assert views(ALICE) == [{"id": green.id, "name": "production", "color": "#00ff80"},
                            {"id": plain.id, "name": "dev", "color": "#abcdef"}]
    tags.delete(ALICE, green.id)
    assert [view["id"] for view in views(ALICE)] == [plain.id]
    with pytest.raises(NotFound):
        tags.delete(ALICE, green.id)
    with pytest.raises(NotFound):
        tags.update(ALICE, green.id, name="back")
    assert [view["id"] for view in views(ALICE)] == [plain.id]  # no item made by the update


def test_two_tags_of_one_owner_may_share_a_name(backend):
    tags = TagService.from_env()
    first, second = (tags.create(ALICE, NewTag("same")) for _ in range(2))
    assert first.id != second.id
    assert [view["name"] for view in views(ALICE)] == ["same", "same"]


@pytest.mark.parametrize("body", [
    {}, {"name": ""}, {"name": "   "}, {"name": "x" * 65}, {"name": "caf\u00e9"},
    {"name": "tab\there"}, {"name": "new\nline"}, {"name": 7}, {"name": None},
    {"name": "ok", "color": "#abc"}, {"name": "ok", "color": "00ff80"},
    {"name": "ok", "color": "#GGGGGG"}, {"name": "ok", "color": "#00ff80 "},
    {"name": "ok", "color": 0x00FF80},
])
def test_a_tag_s_name_and_color_are_bounded(body):
    with pytest.raises(InvalidRequest) as refused:
        greencloud.parse_new_tag(body)
    assert refused.value.message == "invalid tag" and refused.value.detail


def test_the_bounds_themselves_are_accepted(backend):
    tags = TagService.from_env()
    longest = tags.create(ALICE, greencloud.parse_new_tag({"name": "~" * 64, "color": "#FFFFFF"}))
    spaced = tags.create(ALICE, greencloud.parse_new_tag({"name": " a b ", "unknown": 1}))
    assert {(tag.name, tag.color) for tag in tags.list(ALICE)} == {
        ("~" * 64, "#ffffff"), (" a b ", DEFAULT_COLOR)}
    assert longest.id != spaced.id


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "x" * 65}, {"color": "red"},
                                  {"color": None}, {"name": None}])
def test_a_patch_has_the_same_bounds(body):
    with pytest.raises(InvalidRequest):
        greencloud.parse_tag_patch(body)


@pytest.mark.parametrize("body", [{}, {"unknown": "x"}])
def test_a_patch_that_changes_nothing_is_a_400(backend, body):
    tags = TagService.from_env()
    tag = tags.create(ALICE, NewTag("t"))
    with pytest.raises(InvalidRequest, match="nothing to change"):
        tags.update(ALICE, tag.id, **greencloud.parse_tag_patch(body))


def test_another_owner_s_tags_are_not_found_and_not_listed(backend):
    tags = TagService.from_env()
    mine = tags.create(ALICE, NewTag("mine", "#010203"))
    with pytest.raises(NotFound):
        tags.update(BOB, mine.id, name="stolen")
    with pytest.raises(NotFound):
        tags.delete(BOB, mine.id)
    for malformed in ("../TAG#x", "", "6560f1a0" + "g" * 16):
        with pytest.raises(NotFound):
            tags.delete(ALICE, malformed)
    assert tags.list(BOB) == []
    assert views(ALICE) == [{"id": mine.id, "name": "mine", "color": "#010203"}]


def test_the_cap_is_enforced_and_a_delete_gives_a_slot_back(backend):
    tags = TagService(TagStore(wiring.table()), cap=3)
    made = [tags.create(ALICE, NewTag(f"t{n}")) for n in range(3)]
    with pytest.raises(Conflict, match="tag limit reached"):
        tags.create(ALICE, NewTag("one too many"))
    assert len(tags.list(ALICE)) == 3
    tags.create(BOB, NewTag("bob's own count"))  # per owner
    tags.delete(ALICE, made[0].id)
    tags.create(ALICE, NewTag("in the freed slot"))
    with pytest.raises(Conflict):
        tags.create(ALICE, NewTag("full again"))
    assert MAX_TAGS_PER_OWNER == 500


def test_concurrent_creates_never_pass_the_cap(backend):
    """Twelve creates at once against a cap of five: exactly five tags, seven refusals."""
    tags = TagService(TagStore(wiring.table()), cap=5)
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def create(n: int) -> None:
        barrier.wait()
        try:
            tags.create(ALICE, NewTag(f"t{n}"))
            outcomes.append("created")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["created"] * 5 + ["refused"] * 7
    assert len(tags.list(ALICE)) == 5


def test_the_list_is_one_consistent_query_of_the_owner_s_partition(backend, calls):
    tags = TagService.from_env()
    for n in range(3):
        tags.create(ALICE, NewTag(f"t{n}"))
    calls.clear()
    assert len(tags.list(ALICE)) == 3
    ((operation, params),) = calls
    assert operation == "Query" and params["ConsistentRead"] is True
    assert "IndexName" not in params
    assert params["ExpressionAttributeValues"][":pk"] == {"S": "OWNER#alice#TAG"}


def test_a_refused_patch_of_another_owner_s_tag_is_404_not_400(backend):
    tags = TagService.from_env()
    mine = tags.create(ALICE, NewTag("mine"))
    for caller, expected in ((BOB, NotFound), (ALICE, InvalidRequest)):
        for body in ({}, {"color": "red"}):
            with pytest.raises(expected), tags.owner_first(caller, mine.id):
                tags.update(caller, mine.id, **greencloud.parse_tag_patch(body))
    with pytest.raises(NotFound), tags.owner_first(ALICE, "not-an-id"):
        greencloud.parse_tag_patch({"color": "red"})

"""The Mandalart aggregate and user settings: rules, version bumps, stable ids, snapshots."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from goals.domain.errors import InvalidInput, NotFound, PauseNotAllowed, VersionMismatch
from goals.domain.model import (
    Action,
    ActionDraft,
    IfMatch,
    Mandalart,
    MandalartDraft,
    Owner,
    PageCursor,
    SubGoal,
    SubGoalDraft,
    UserSettings,
    check_precondition,
)
from mandaact_common.domain.pauses import Pause
from mandaact_common.domain.schedule import Schedule
from mandaact_contracts.events import GoalChanged

pytestmark = pytest.mark.unit

OWNER = Owner("acme", "alice")
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TODAY = date(2026, 11, 24)
TOMORROW = date(2026, 11, 25)


def id_factory(prefix: str = "id") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


def sub(grid: Mandalart, position: int) -> SubGoal:
    found = grid.sub_goal(position)
    assert found is not None
    return found


def action(grid: Mandalart, position: int, action_position: int) -> Action:
    found = sub(grid, position).action(action_position)
    assert found is not None
    return found


def daily(position: int, title: str = "Do it") -> ActionDraft:
    return ActionDraft(position, title, "routine", Schedule.daily())


def full_draft() -> MandalartDraft:
    return MandalartDraft(
        title="  Design an event-driven system  ",
        description="optional",
        sub_goals=(
            SubGoalDraft(
                2,
                "Event flows",
                (
                    daily(1, "Draw the flow"),
                    ActionDraft(2, "Review", "routine", Schedule.weekly_on("mon", "thu")),
                    ActionDraft(3, "Gym", "routine", Schedule.weekly_times(3)),
                    ActionDraft(4, "Retro", "routine", Schedule.monthly_times(2)),
                    ActionDraft(5, "Install Kafka", "mission", due_date=date(2026, 12, 1)),
                    ActionDraft(6, "Stay curious", "reference"),
                ),
            ),
            SubGoalDraft(1, "Storage", (daily(8),)),
        ),
    )


def create(draft: MandalartDraft | None = None) -> Mandalart:
    return Mandalart.create(
        "m-1",
        OWNER,
        draft or full_draft(),
        today=TODAY,
        now=NOW,
        new_id=id_factory(),
    )


def test_create_builds_version_1_with_sorted_positions_and_stripped_titles() -> None:
    grid = create()
    assert grid.version == 1
    assert grid.title == "Design an event-driven system"
    assert [s.position for s in grid.sub_goals] == [1, 2]
    actions = sub(grid, 2).actions
    assert [a.position for a in actions] == [1, 2, 3, 4, 5, 6]
    assert all(a.added_on == TODAY for _, a in grid.actions())
    ids = [a.id for _, a in grid.actions()]
    assert len(set(ids)) == len(ids) == 7


def test_partial_grid_is_valid() -> None:
    grid = create(MandalartDraft(title="Just a goal"))
    assert grid.sub_goals == ()
    assert grid.description is None


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (MandalartDraft(title="   "), "title"),
        (MandalartDraft(title="x" * 201), "title"),
        (MandalartDraft(title="ok", description="d" * 2001), "description"),
        (
            MandalartDraft(title="ok", sub_goals=(SubGoalDraft(1, "a"), SubGoalDraft(1, "b"))),
            "sub_goals",
        ),
        (
            MandalartDraft(title="ok", sub_goals=tuple(SubGoalDraft(p, "s") for p in range(1, 10))),
            "sub_goals",
        ),
        (MandalartDraft(title="ok", sub_goals=(SubGoalDraft(9, "s"),)), "sub_goals.0.position"),
        (MandalartDraft(title="ok", sub_goals=(SubGoalDraft(1, "\t "),)), "sub_goals.0.title"),
        (
            MandalartDraft(title="ok", sub_goals=(SubGoalDraft(1, "s", (daily(1), daily(1))),)),
            "sub_goals.0.actions",
        ),
        (
            MandalartDraft(
                title="ok",
                sub_goals=(SubGoalDraft(1, "s", (ActionDraft(1, "r", "routine"),)),),
            ),
            "sub_goals.0.actions.0.schedule",
        ),
        (
            MandalartDraft(
                title="ok",
                sub_goals=(
                    SubGoalDraft(1, "s", (ActionDraft(1, "m", "mission", Schedule.daily()),)),
                ),
            ),
            "sub_goals.0.actions.0.schedule",
        ),
        (
            MandalartDraft(
                title="ok",
                sub_goals=(
                    SubGoalDraft(
                        1, "s", (ActionDraft(1, "r", "reference", due_date=date(2026, 1, 1)),)
                    ),
                ),
            ),
            "sub_goals.0.actions.0.due_date",
        ),
        (
            MandalartDraft(title="ok", sub_goals=(SubGoalDraft(1, "s", (daily(0),)),)),
            "sub_goals.0.actions.0.position",
        ),
    ],
)
def test_create_rejects_broken_rules_naming_the_field(draft: MandalartDraft, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        create(draft)
    assert caught.value.field == field


def test_title_of_exactly_200_characters_is_fine() -> None:
    assert len(create(MandalartDraft(title=" " + "x" * 200 + " ")).title) == 200


def test_edit_bumps_version_and_no_op_keeps_it() -> None:
    grid = create()
    edited = grid.edit(title="New", active=False, now=LATER)
    assert (edited.version, edited.title, edited.active, edited.updated_at) == (
        2,
        "New",
        False,
        LATER,
    )
    assert edited.edit(title=" New ", active=False, now=LATER) is edited
    cleared = edited.edit(description=None, now=LATER)
    assert cleared.description is None
    assert cleared.version == 3


def test_put_sub_goal_keeps_action_ids_and_added_on_by_position() -> None:
    grid = create()
    before = {a.position: a for a in sub(grid, 2).actions}
    changed = grid.put_sub_goal(
        SubGoalDraft(2, "Flows v2", (daily(1, "Draw again"), daily(7, "New one"))),
        today=TOMORROW,
        now=LATER,
        new_id=lambda: "fresh",
    )
    after = {a.position: a for a in sub(changed, 2).actions}
    assert changed.version == 2
    assert set(after) == {1, 7}
    assert after[1].id == before[1].id
    assert after[1].added_on == TODAY
    assert after[1].title == "Draw again"
    assert (after[7].id, after[7].added_on) == ("fresh", TOMORROW)


def test_put_sub_goal_without_actions_keeps_them() -> None:
    grid = create()
    changed = grid.put_sub_goal(
        SubGoalDraft(2, "Renamed"), today=TOMORROW, now=LATER, new_id=lambda: "x"
    )
    assert sub(changed, 2).actions == sub(grid, 2).actions
    assert sub(changed, 2).title == "Renamed"


def test_put_new_sub_goal_inserts_it_in_order() -> None:
    grid = create()
    changed = grid.put_sub_goal(
        SubGoalDraft(8, "Last", (daily(1),)), today=TOMORROW, now=LATER, new_id=lambda: "n"
    )
    assert [s.position for s in changed.sub_goals] == [1, 2, 8]


def test_put_action_keeps_id_even_when_its_type_changes() -> None:
    grid = create()
    old = action(grid, 2, 1)
    changed = grid.put_action(
        2, ActionDraft(1, "Now a note", "reference"), today=TOMORROW, now=LATER, new_id=lambda: "n"
    )
    new = action(changed, 2, 1)
    assert (new.id, new.added_on, new.type, new.schedule) == (old.id, TODAY, "reference", None)
    added = changed.put_action(2, daily(8), today=TOMORROW, now=LATER, new_id=lambda: "n8")
    assert action(added, 2, 8).id == "n8"
    assert added.version == 3


def test_put_action_under_missing_sub_goal_is_not_found() -> None:
    with pytest.raises(NotFound):
        create().put_action(5, daily(1), today=TODAY, now=LATER, new_id=lambda: "n")


def test_remove_action() -> None:
    grid = create()
    changed = grid.remove_action(2, 3, now=LATER)
    assert [a.position for a in sub(changed, 2).actions] == [1, 2, 4, 5, 6]
    assert changed.version == 2
    with pytest.raises(NotFound):
        changed.remove_action(2, 3, now=LATER)
    with pytest.raises(NotFound):
        changed.remove_action(7, 1, now=LATER)


def test_archive_marks_deleted_and_snapshot_says_so() -> None:
    archived = create().archive(now=LATER)
    assert archived.deleted
    assert archived.version == 2
    snapshot = archived.snapshot()
    assert snapshot.deleted is True
    assert snapshot.version == 2


def test_changed_event_carries_the_whole_grid_and_the_timezone() -> None:
    grid = create()
    event = grid.changed_event("Europe/Berlin")
    assert isinstance(event, GoalChanged)
    assert (event.tenant_id, event.user_id, event.timezone) == ("acme", "alice", "Europe/Berlin")
    data = event.mandalart.model_dump(mode="json")
    assert data["id"] == "m-1"
    assert data["version"] == 1
    assert data["deleted"] is False
    flows = data["sub_goals"][1]
    assert flows["actions"][1]["schedule"] == {
        "frequency": "weekly",
        "days": ["mon", "thu"],
        "times": None,
    }
    assert flows["actions"][4]["due_date"] == "2026-12-01"
    assert flows["actions"][0]["added_on"] == "2026-11-24"
    assert GoalChanged.model_validate(event.model_dump(mode="json")) == event


def test_if_match() -> None:
    check_precondition(None, 4)
    check_precondition(IfMatch(any_version=True), 4)
    check_precondition(IfMatch(frozenset({3, 4})), 4)
    with pytest.raises(VersionMismatch) as caught:
        check_precondition(IfMatch(frozenset({3})), 4)
    assert caught.value.current == 4


def test_page_cursor_round_trip_and_garbage() -> None:
    cursor = PageCursor(datetime(2026, 11, 24, 1, 2, 3, 456000, tzinfo=UTC), "m-9")
    assert PageCursor.decode(cursor.encode()) == cursor
    for bad in ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyJ4IiwieSJd", "W10"]:
        with pytest.raises(InvalidInput) as caught:
            PageCursor.decode(bad, "query.cursor")
        assert caught.value.field == "query.cursor"


def test_settings_defaults_first_save_and_no_op() -> None:
    defaults = UserSettings(OWNER)
    assert (defaults.timezone, defaults.locale, defaults.version) == ("Asia/Seoul", "ko", 0)
    first = defaults.change(timezone="Asia/Seoul", now=NOW)
    assert first.version == 1  # the first save is announced even when it keeps the defaults
    assert first.change(timezone="Asia/Seoul", locale="ko", now=LATER) is first
    second = first.change(locale="en", display_name="  Alice  ", now=LATER)
    assert (second.version, second.locale, second.display_name) == (2, "en", "Alice")
    event = second.changed_event()
    assert (event.version, event.locale, event.display_name, event.changed_at) == (
        2,
        "en",
        "Alice",
        LATER,
    )
    assert second.change(display_name="   ", now=LATER).display_name is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "posixrules"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"locale": "fr"}, "locale"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"day_starts_at": "12:01"}, "day_starts_at"),
        ({"day_starts_at": "4:00"}, "day_starts_at"),
        ({"reminder_time": "24:00"}, "reminder_time"),
    ],
)
def test_settings_reject_bad_values(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        UserSettings(OWNER).change(now=NOW, **changes)
    assert caught.value.field == field


def test_pauses_that_ended_before_last_year_are_dropped_from_both_lists() -> None:
    today = date(2027, 3, 10)
    old = Pause(date(2025, 12, 1), date(2025, 12, 5))
    last_year = Pause(date(2026, 8, 1), date(2026, 8, 10))
    stored = dataclasses.replace(UserSettings(OWNER), pauses=(old, last_year), version=3)
    # The old pause may be left out or sent again: either way it is no longer kept.
    for sent in ([last_year], [old, last_year]):
        kept = stored.with_pauses(sent, today=today, now=NOW)
        assert kept.pauses == (last_year,)
    with pytest.raises(PauseNotAllowed, match="before yesterday"):
        stored.with_pauses([], today=today, now=NOW)  # last year's pause is still history

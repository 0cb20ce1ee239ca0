"""The pure check-in rules: local dates, the backfill window, DST days, the change limit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkins.domain.errors import (
    DateInFuture,
    DateTooOld,
    GridInactive,
    InvalidInput,
    MissionAlreadyDone,
    NotCheckable,
    TooManyChanges,
)
from checkins.domain.model import (
    MAX_CHANGES_PER_DATE,
    DaySlot,
    Grid,
    GridAction,
    Owner,
    UserProfile,
    checkin_date,
    checkin_range,
    checklist_order,
    day_checklist,
    done_window_start,
    effective_timezone,
    ensure_checkable,
    ensure_mission_open,
    newest_grids,
    newest_profiles,
    toggle,
)
from mandaact_common.domain.calendar import DEFAULT_TIMEZONE
from mandaact_common.domain.schedule import Schedule

pytestmark = pytest.mark.unit

SEOUL = "Asia/Seoul"
NEW_YORK = "America/New_York"
ALICE = Owner("acme", "alice")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(local: str, tz: str, *, fold: int = 0) -> datetime:
    """The UTC instant of a local wall-clock time ("YYYY-MM-DD HH:MM") in `tz`."""
    wall = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz), fold=fold)
    return wall.astimezone(UTC)


def grid_action(
    id: str = "a1",
    type_: str = "routine",
    schedule: Schedule | None = None,
    *,
    sub_goal: int = 1,
    position: int = 1,
    added_on: date = date(2026, 11, 1),
    grid_id: str = "g1",
) -> GridAction:
    if type_ == "routine" and schedule is None:
        schedule = Schedule.daily()
    return GridAction(
        id=id,
        mandalart_id=grid_id,
        sub_goal_position=sub_goal,
        sub_goal_title=f"S{sub_goal}",
        position=position,
        title=f"Action {id}",
        type=type_,  # type: ignore[arg-type]
        schedule=schedule,
        added_on=added_on,
    )


def grid(
    id: str = "g1",
    actions: tuple[GridAction, ...] = (),
    *,
    version: int = 1,
    active: bool = True,
    deleted: bool = False,
    timezone: str = SEOUL,
    created_at: datetime = T0,
) -> Grid:
    return Grid(
        owner=ALICE,
        id=id,
        title="Goal",
        version=version,
        active=active,
        deleted=deleted,
        timezone=timezone,
        created_at=created_at,
        updated_at=created_at + timedelta(minutes=version),
        actions=actions,
    )


# --- the user's day ----------------------------------------------------------------------------


def test_2330_and_0030_in_seoul_are_two_different_dates() -> None:
    late = at("2026-11-20 23:30", SEOUL)
    early = at("2026-11-21 00:30", SEOUL)
    assert early - late == timedelta(hours=1)
    assert checkin_date(None, late, SEOUL, 1) == date(2026, 11, 20)
    assert checkin_date(None, early, SEOUL, 1) == date(2026, 11, 21)
    # 23:30 in Seoul is still 14:30 UTC on the 20th; 00:30 is 15:30 UTC, still the 20th in UTC.
    assert late.date() == early.date() == date(2026, 11, 20)


def test_midnight_starts_the_new_local_day() -> None:
    assert checkin_date(None, at("2026-11-21 00:00", SEOUL), SEOUL, 1) == date(2026, 11, 21)
    just_before = at("2026-11-21 00:00", SEOUL) - timedelta(microseconds=1)
    assert checkin_date(None, just_before, SEOUL, 1) == date(2026, 11, 20)


# --- the backfill window -----------------------------------------------------------------------


@pytest.mark.parametrize("backfill", [0, 1, 3, 30])
def test_the_window_is_today_and_backfill_days_before(backfill: int) -> None:
    now = at("2026-11-20 09:00", SEOUL)
    today = date(2026, 11, 20)
    earliest = today - timedelta(days=backfill)
    assert checkin_date(today, now, SEOUL, backfill) == today
    assert checkin_date(earliest, now, SEOUL, backfill) == earliest
    with pytest.raises(DateTooOld) as too_old:
        checkin_date(earliest - timedelta(days=1), now, SEOUL, backfill)
    assert too_old.value.field == "query.date"
    with pytest.raises(DateInFuture):
        checkin_date(today + timedelta(days=1), now, SEOUL, backfill)


def test_the_window_moves_at_local_midnight_not_utc_midnight() -> None:
    # 23:59 in Seoul on the 20th: yesterday (the 19th) is still allowed, the 21st is the future.
    before = at("2026-11-20 23:59", SEOUL)
    assert checkin_date(date(2026, 11, 19), before, SEOUL, 1) == date(2026, 11, 19)
    with pytest.raises(DateInFuture):
        checkin_date(date(2026, 11, 21), before, SEOUL, 1)
    # One minute later (still the 20th in UTC) the 19th is too old and the 21st is today.
    after = at("2026-11-21 00:00", SEOUL)
    assert after.date() == date(2026, 11, 20)
    with pytest.raises(DateTooOld):
        checkin_date(date(2026, 11, 19), after, SEOUL, 1)
    assert checkin_date(date(2026, 11, 21), after, SEOUL, 1) == date(2026, 11, 21)


def test_the_default_date_is_today_in_the_users_timezone() -> None:
    now = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)  # Seoul: 21st 05:00; New York: 20th 15:00
    assert checkin_date(None, now, SEOUL, 1) == date(2026, 11, 21)
    assert checkin_date(None, now, NEW_YORK, 1) == date(2026, 11, 20)


# --- DST change days in America/New_York -------------------------------------------------------


def test_spring_forward_day_has_23_hours_and_each_instant_its_own_date() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    assert checkin_date(None, at("2026-03-08 00:30", NEW_YORK), NEW_YORK, 1) == date(2026, 3, 8)
    assert checkin_date(None, at("2026-03-08 03:30", NEW_YORK), NEW_YORK, 1) == date(2026, 3, 8)
    late = at("2026-03-08 23:30", NEW_YORK)
    assert late == datetime(2026, 3, 9, 3, 30, tzinfo=UTC)  # UTC−4 after the change
    assert checkin_date(None, late, NEW_YORK, 1) == date(2026, 3, 8)
    # 23:30 the day before is UTC−5: 04:30 UTC on the 8th, still the 7th locally.
    before = at("2026-03-07 23:30", NEW_YORK)
    assert before == datetime(2026, 3, 8, 4, 30, tzinfo=UTC)
    assert checkin_date(None, before, NEW_YORK, 1) == date(2026, 3, 7)


def test_fall_back_day_counts_the_repeated_hour_once_per_date() -> None:
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice, both on the 1st.
    first = at("2026-11-01 01:30", NEW_YORK, fold=0)
    second = at("2026-11-01 01:30", NEW_YORK, fold=1)
    assert second - first == timedelta(hours=1)
    assert checkin_date(None, first, NEW_YORK, 1) == date(2026, 11, 1)
    assert checkin_date(None, second, NEW_YORK, 1) == date(2026, 11, 1)
    late = at("2026-11-01 23:30", NEW_YORK)
    assert late == datetime(2026, 11, 2, 4, 30, tzinfo=UTC)  # UTC−5 after the change
    assert checkin_date(None, late, NEW_YORK, 1) == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("now_local", "yesterday"),
    [("2026-03-09 00:30", date(2026, 3, 8)), ("2026-11-02 00:30", date(2026, 11, 1))],
)
def test_backfill_reaches_back_over_a_dst_day(now_local: str, yesterday: date) -> None:
    now = at(now_local, NEW_YORK)
    assert checkin_date(yesterday, now, NEW_YORK, 1) == yesterday
    with pytest.raises(DateTooOld):
        checkin_date(yesterday - timedelta(days=1), now, NEW_YORK, 1)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2900, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from([SEOUL, NEW_YORK, "UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"]),
    st.integers(min_value=0, max_value=30),
)
def test_today_is_always_allowed_and_tomorrow_never(now: datetime, tz: str, backfill: int) -> None:
    today = now.astimezone(ZoneInfo(tz)).date()
    assert checkin_date(None, now, tz, backfill) == today
    with pytest.raises(DateInFuture):
        checkin_date(today + timedelta(days=1), now, tz, backfill)
    with pytest.raises(DateTooOld):
        checkin_date(today - timedelta(days=backfill + 1), now, tz, backfill)


# --- the change limit and sequence numbers -----------------------------------------------------


def test_three_changes_are_allowed_and_the_fourth_is_refused() -> None:
    slot = DaySlot(ALICE, grid_action(), date(2026, 11, 20))
    now = T0
    checked = toggle(slot, True, new_checkin_id="c1", now=now)
    assert checked is not None
    assert (checked.done, checked.changes, checked.checkin_id) == (True, 1, "c1")
    undone = toggle(checked, False, new_checkin_id="unused", now=now)
    assert undone is not None
    assert (undone.done, undone.changes, undone.checkin_id) == (False, 2, "c1")
    again = toggle(undone, True, new_checkin_id="c2", now=now)
    assert again is not None
    assert (again.done, again.changes, again.checkin_id) == (True, 3, "c2")
    with pytest.raises(TooManyChanges) as refused:
        toggle(again, False, new_checkin_id="unused", now=now)
    assert refused.value.limit == MAX_CHANGES_PER_DATE == 3


def test_a_repeat_is_a_no_op_that_never_counts_or_is_refused() -> None:
    slot = DaySlot(ALICE, grid_action(), date(2026, 11, 20))
    assert toggle(slot, False, new_checkin_id="x", now=T0) is None
    done = DaySlot(ALICE, grid_action(), date(2026, 11, 20), True, 3, "c2", T0)
    # Even at the limit, asking for the state it already has answers "nothing to do".
    assert toggle(done, True, new_checkin_id="x", now=T0) is None


@given(st.lists(st.booleans(), max_size=12))
def test_changes_never_exceed_the_limit_and_number_one_two_three(wanted: list[bool]) -> None:
    slot = DaySlot(ALICE, grid_action(), date(2026, 11, 20))
    seqs: list[int] = []
    for n, done in enumerate(wanted):
        try:
            changed = toggle(slot, done, new_checkin_id=f"c{n}", now=T0)
        except TooManyChanges:
            assert slot.changes == MAX_CHANGES_PER_DATE
            continue
        if changed is not None:
            seqs.append(changed.changes)
            slot = changed
    assert seqs == list(range(1, len(seqs) + 1))
    assert slot.changes <= MAX_CHANGES_PER_DATE


# --- what may be checked -----------------------------------------------------------------------


def test_a_reference_is_never_checkable_nor_undoable() -> None:
    note = grid_action(type_="reference")
    for checking in (True, False):
        with pytest.raises(NotCheckable):
            ensure_checkable(grid(actions=(note,)), note, checking=checking)


def test_an_inactive_grids_action_cannot_be_checked_but_can_be_undone() -> None:
    routine = grid_action()
    paused = grid(actions=(routine,), active=False)
    with pytest.raises(GridInactive):
        ensure_checkable(paused, routine, checking=True)
    ensure_checkable(paused, routine, checking=False)


def test_a_mission_is_done_on_one_date_only() -> None:
    mission = grid_action(type_="mission")
    day = date(2026, 11, 20)
    ensure_mission_open(mission, day, set())
    ensure_mission_open(mission, day, {day})
    with pytest.raises(MissionAlreadyDone):
        ensure_mission_open(mission, day, {date(2026, 11, 19)})
    ensure_mission_open(grid_action(), day, {date(2026, 11, 19)})  # routines repeat


# --- ranges ------------------------------------------------------------------------------------


def test_a_range_defaults_to_the_last_seven_days() -> None:
    now = at("2026-11-20 09:00", SEOUL)
    assert checkin_range(None, None, now, SEOUL) == (date(2026, 11, 14), date(2026, 11, 20))
    assert checkin_range(None, date(2026, 1, 3), now, SEOUL) == (
        date(2025, 12, 28),
        date(2026, 1, 3),
    )


def test_a_range_may_cover_92_days_but_not_more_and_never_run_backwards() -> None:
    now = at("2026-11-20 09:00", SEOUL)
    first = date(2024, 1, 1)
    assert checkin_range(first, date(2024, 4, 1), now, SEOUL) == (first, date(2024, 4, 1))
    with pytest.raises(InvalidInput) as too_long:
        checkin_range(first, date(2024, 4, 2), now, SEOUL)
    assert "at most 92 days" in too_long.value.message
    assert too_long.value.field == "query.to"
    with pytest.raises(InvalidInput) as backwards:
        checkin_range(date(2026, 1, 2), date(2026, 1, 1), now, SEOUL)
    assert backwards.value.field == "query.from"


# --- the read model ----------------------------------------------------------------------------


def test_the_newest_version_of_each_grid_wins_in_any_order() -> None:
    v1, v3, v2 = grid(version=1), grid(version=3), grid(version=2)
    other = grid("g2", version=1)
    assert set(newest_grids([v1, v3, v2, other, v3])) == {v3, other}


def test_the_newest_user_settings_win_in_any_order() -> None:
    old = UserProfile(ALICE, SEOUL, "ko", 1)
    new = UserProfile(ALICE, NEW_YORK, "en", 2)
    assert newest_profiles([new, old, new]) == [new]


def test_timezone_comes_from_user_changed_else_the_latest_grid_else_seoul() -> None:
    assert effective_timezone(UserProfile(ALICE, NEW_YORK, "en", 1), "Europe/Paris") == NEW_YORK
    assert effective_timezone(None, "Europe/Paris") == "Europe/Paris"
    assert effective_timezone(None, None) == DEFAULT_TIMEZONE == SEOUL


def test_only_active_live_grids_are_on_the_checklist_in_a_stable_order() -> None:
    older = grid(
        "g-old",
        (grid_action("b", sub_goal=2, position=1), grid_action("a", sub_goal=1, position=2)),
        created_at=T0,
    )
    newer = grid("g-new", (grid_action("c"),), created_at=T0 + timedelta(days=1))
    paused = grid("g-paused", (grid_action("d"),), active=False)
    gone = grid("g-gone", (grid_action("e"),), deleted=True)
    order = [a.id for a in checklist_order([newer, paused, gone, older])]
    assert order == ["a", "b", "c"]


def test_the_checklist_counts_due_and_done_by_the_shared_rules() -> None:
    monday = date(2026, 11, 16)
    actions = (
        grid_action("daily"),
        grid_action("mon-thu", schedule=Schedule.weekly_on("mon", "thu"), position=2),
        grid_action("twice-week", schedule=Schedule.weekly_times(2), position=3),
        grid_action("mission", "mission", position=4),
        grid_action("note", "reference", position=5),
        grid_action("later", added_on=date(2026, 11, 18), position=6),
    )
    g = grid(actions=actions)
    tuesday = monday + timedelta(days=1)
    done = {"daily": {tuesday}, "twice-week": {monday, tuesday}, "mission": {tuesday}}
    tue = day_checklist([g], tuesday, done)
    assert [(e.action.id, e.done) for e in tue.entries] == [
        ("daily", True),
        ("twice-week", True),
        ("mission", True),
    ]
    assert (tue.due_count, tue.done_count, tue.perfect) == (3, 3, True)
    wed = day_checklist([g], tuesday + timedelta(days=1), done)
    assert [e.action.id for e in wed.entries] == ["daily", "later"]
    assert (wed.due_count, wed.done_count, wed.perfect) == (2, 0, False)


def test_the_done_window_covers_the_whole_week_and_month() -> None:
    # Monday 2026-06-29's week reaches back into June; 2026-07-01's month starts that day.
    assert done_window_start(date(2026, 7, 1)) == date(2026, 6, 29)
    assert done_window_start(date(2026, 7, 20)) == date(2026, 7, 1)

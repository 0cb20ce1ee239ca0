"""The XP fold, rule by rule, with worked examples on real dates.

November 2026: Monday the 2nd, 9th, 16th and 23rd start ISO weeks W45, W46, W47 and W48.
Local times are taken as UTC, so a check-in's `local_time` is its `occurred_at` clock time.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest

from gamification.domain.badges import badge
from gamification.domain.model import (
    BadgeUnlock,
    CheckinChange,
    DerivedState,
    LedgerLine,
    LevelUp,
    canonical_order,
    derive,
)
from mandaact_common.domain.schedule import Action, Schedule

pytestmark = pytest.mark.unit

NOV = {n: date(2026, 11, n) for n in range(1, 31)}
LONG_AGO = date(2026, 1, 1)


def daily(action_id: str, added_on: date = LONG_AGO) -> Action:
    return Action(action_id, "routine", Schedule.daily(), added_on)


class Diary:
    """Writes a user's check-in changes the way the checkins service numbers them."""

    def __init__(self) -> None:
        self.changes: list[CheckinChange] = []
        self._seq: Counter[tuple[str, date]] = Counter()

    def _change(self, action_id: str, day: date, done: bool, at: datetime | None) -> None:
        self._seq[(action_id, day)] += 1
        seq = self._seq[(action_id, day)]
        moment = at or datetime.combine(day, time(12), UTC) + timedelta(seconds=len(self.changes))
        self.changes.append(
            CheckinChange(
                event_id=f"ev-{len(self.changes)}",
                action_id=action_id,
                local_date=day,
                seq=seq,
                done=done,
                occurred_at=moment,
                local_time=moment.time(),
            )
        )

    def check(self, action_id: str, day: date, at: datetime | None = None) -> None:
        self._change(action_id, day, True, at)

    def undo(self, action_id: str, day: date, at: datetime | None = None) -> None:
        self._change(action_id, day, False, at)

    def derive(
        self, actions: list[Action], has_grid: bool = False, today: date | None = None
    ) -> DerivedState:
        return derive(self.changes, actions, has_grid, today)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), UTC)


def line(state: DerivedState, key: str) -> LedgerLine:
    (found,) = [ln for ln in state.lines if ln.key == key]
    return found


def keys(state: DerivedState, prefix: str) -> list[str]:
    return [ln.key for ln in state.lines if ln.key.startswith(prefix)]


def codes(state: DerivedState) -> list[str]:
    return [b.code for b in state.badges]


# --- per check-in XP ---------------------------------------------------------------------------


def test_a_weekday_check_in_earns_10() -> None:
    diary = Diary()
    diary.check("a", NOV[17])
    state = diary.derive([daily("a"), daily("b")])
    award = line(state, "checkin:a:2026-11-17:1")
    assert (award.amount, award.multiplier, award.reason) == (10, 1.0, "checkin")
    assert award.action_id == "a"
    assert award.source_event_id == "ev-0"


def test_the_very_first_check_in_is_not_a_comeback() -> None:
    diary = Diary()
    diary.check("a", NOV[18])
    assert line(diary.derive([daily("a"), daily("b")]), "checkin:a:2026-11-18:1").amount == 10


def test_a_weekend_check_in_earns_one_and_a_half() -> None:
    diary = Diary()
    diary.check("a", NOV[21])
    award = line(diary.derive([daily("a"), daily("b")]), "checkin:a:2026-11-21:1")
    assert (award.amount, award.multiplier) == (15, 1.5)


def test_a_comeback_after_exactly_three_days_away_lasts_three_days() -> None:
    diary = Diary()
    diary.check("a", NOV[16])  # Monday, then nothing on Tuesday, Wednesday, Thursday
    for n in (20, 21, 22, 23):
        diary.check("a", NOV[n])
    state = diary.derive([daily("a"), daily("b")])
    assert line(state, "checkin:a:2026-11-20:1").multiplier == 1.5  # Friday: comeback
    assert line(state, "checkin:a:2026-11-21:1").multiplier == 3.0  # Saturday: + weekend
    assert line(state, "checkin:a:2026-11-22:1").amount == 30  # Sunday: third day back
    assert line(state, "checkin:a:2026-11-23:1").amount == 10  # Monday: the fourth is not


def test_two_days_away_is_not_a_comeback() -> None:
    diary = Diary()
    diary.check("a", NOV[16])  # Monday, then nothing on Tuesday and Wednesday
    diary.check("a", NOV[19])
    assert line(diary.derive([daily("a"), daily("b")]), "checkin:a:2026-11-19:1").amount == 10


def test_the_streak_bonus_starts_on_the_seventh_day_in_a_row() -> None:
    diary = Diary()
    for n in range(4, 11):  # Wednesday 4th to Tuesday 10th; only one of two actions each day
        diary.check("a", NOV[n])
    state = diary.derive([daily("a", NOV[4]), daily("b", NOV[4])])
    assert line(state, "checkin:a:2026-11-09:1").amount == 10  # day 6
    assert line(state, "checkin:a:2026-11-10:1").amount == 15  # day 7: (10 + 5) × 1


def test_a_weekend_during_the_perfect_week_bonus_is_three_and_a_half() -> None:
    diary = Diary()
    for n in (12, 13, 14, 15):  # W46 from the day the action was added: 4 of 4 done
        diary.check("a", NOV[n])
    for n in (18, 19, 20, 21):  # W47: back after two empty days, so no comeback
        diary.check("a", NOV[n])
    state = diary.derive([daily("a", NOV[12])])
    wednesday = line(state, "checkin:a:2026-11-18:1")
    saturday = line(state, "checkin:a:2026-11-21:1")
    assert (wednesday.amount, wednesday.multiplier) == (20, 2.0)
    assert (saturday.amount, saturday.multiplier) == (35, 3.5)


def test_a_week_just_under_80_percent_is_not_perfect() -> None:
    diary = Diary()
    for n in (9, 10, 11, 12, 13):  # W46: 5 of 7 days of a daily action is 71 %
        diary.check("a", NOV[n])
    diary.check("a", NOV[16])
    assert line(diary.derive([daily("a", NOV[9])]), "checkin:a:2026-11-16:1").multiplier == 1.0


def test_a_week_with_nothing_due_is_never_perfect() -> None:
    diary = Diary()
    for n in range(9, 16):  # W46 checked every day, but no current action was due
        diary.check("gone", NOV[n])
    diary.check("gone", NOV[17])
    award = line(diary.derive([daily("a", NOV[20])]), "checkin:gone:2026-11-17:1")
    assert (award.amount, award.multiplier) == (10, 1.0)


def test_the_level_milestone_doubles_for_seven_days_from_the_day_it_was_reached() -> None:
    diary = Diary()
    for i in range(70):  # 70 check-ins of actions no longer on the grid, on Monday 16th
        diary.check(f"x{i}", NOV[16])
    for n in range(17, 24):
        diary.check("x0", NOV[n])
    state = diary.derive([])
    (reached,) = [lv for lv in state.levels_reached if lv.level == 5]
    crossing = state.lines.index(line(state, reached.key))
    monday = [ln for ln in state.lines if ln.local_date == NOV[16] and ln.reason == "checkin"]
    before = [ln for ln in monday if state.lines.index(ln) <= crossing]
    after = [ln for ln in monday if state.lines.index(ln) > crossing]
    assert before
    assert after
    assert {ln.multiplier for ln in before} == {1.0}
    assert {(ln.amount, ln.multiplier) for ln in after} == {(20, 2.0)}
    assert line(state, "checkin:x0:2026-11-20:1").multiplier == 2.0  # Friday, day 5
    assert line(state, "checkin:x0:2026-11-22:1").multiplier == 3.5  # Sunday, day 7: + weekend
    assert line(state, "checkin:x0:2026-11-22:1").amount == 52  # and a 7-day streak: 15 × 3.5
    assert line(state, "checkin:x0:2026-11-23:1").multiplier == 1.0  # Monday, day 8: over


# --- undo and perfect days ---------------------------------------------------------------------


def test_a_perfect_day_is_awarded_then_taken_back_by_an_undo() -> None:
    diary = Diary()
    diary.check("a", NOV[17])
    diary.check("b", NOV[17])
    diary.undo("b", NOV[17])
    diary.check("b", NOV[17])
    state = diary.derive([daily("a"), daily("b")])
    day_lines = [(ln.key, ln.amount) for ln in state.lines if ln.reason != "badge"]
    assert day_lines == [
        ("checkin:a:2026-11-17:1", 10),
        ("checkin:b:2026-11-17:1", 10),
        ("perfect:2026-11-17:1", 50),
        ("undo:b:2026-11-17:2", -10),
        ("perfect-undo:2026-11-17:1", -50),
        ("checkin:b:2026-11-17:3", 10),
        ("perfect:2026-11-17:2", 50),
    ]
    assert state.perfect_days == 1


def test_a_perfect_line_is_a_perfect_day_entry_for_its_date() -> None:
    diary = Diary()
    diary.check("a", NOV[17])
    perfect = line(diary.derive([daily("a")]), "perfect:2026-11-17:1")
    assert (perfect.reason, perfect.local_date, perfect.action_id) == (
        "perfect_day",
        NOV[17],
        None,
    )


def test_check_undo_check_never_farms_xp() -> None:
    once, farmed = Diary(), Diary()
    once.check("a", NOV[17])
    farmed.check("a", NOV[17])
    farmed.undo("a", NOV[17])
    farmed.check("a", NOV[17])
    actions = [daily("a"), daily("b")]
    assert farmed.derive(actions).xp_total == once.derive(actions).xp_total


def test_an_undo_takes_back_what_was_awarded_not_a_recomputed_amount() -> None:
    diary = Diary()
    diary.check("a", NOV[14])  # W46 Saturday; the action was added that day
    diary.check("a", NOV[16], at=at(NOV[16], 9))  # Monday: W46 is 1 of 2, not perfect: 10
    diary.check("a", NOV[15], at=at(NOV[16], 10))  # Sunday backfilled: W46 is now perfect
    diary.undo("a", NOV[16], at=at(NOV[16], 11))
    diary.check("a", NOV[16], at=at(NOV[16], 12))
    state = diary.derive([daily("a", NOV[14])])
    assert line(state, "checkin:a:2026-11-16:1").amount == 10
    assert line(state, "undo:a:2026-11-16:2").amount == -10
    assert line(state, "checkin:a:2026-11-16:3").amount == 20


def test_a_backfilled_mission_can_make_a_later_date_perfect() -> None:
    diary = Diary()
    diary.check("a", NOV[17], at=at(NOV[17], 9))  # the mission is still due on Tuesday
    diary.check("m", NOV[16], at=at(NOV[17], 10))  # the mission done on Monday after all
    mission = Action("m", "mission", None, NOV[16])
    state = diary.derive([daily("a", NOV[16]), mission])
    perfect = line(state, "perfect:2026-11-17:1")
    assert perfect.source_event_id == "ev-1"
    assert keys(state, "perfect:2026-11-16") == []  # Monday: "a" was due and not done


def test_an_undo_that_leaves_a_date_empty_breaks_the_streak() -> None:
    diary = Diary()
    for n in (16, 17, 18):
        diary.check("a", NOV[n])
    diary.undo("a", NOV[17])
    state = diary.derive([daily("a"), daily("b")])
    assert (state.streak_current, state.streak_longest) == (1, 1)
    assert state.last_active_date == NOV[18]


def test_the_current_streak_is_zero_once_a_day_is_missed() -> None:
    diary = Diary()
    for n in (16, 17, 18, 20, 21):
        diary.check("a", NOV[n])
    actions = [daily("a"), daily("b")]
    assert diary.derive(actions).streak_current == 2
    assert diary.derive(actions, today=NOV[22]).streak_current == 2  # yesterday still counts
    assert diary.derive(actions, today=NOV[23]).streak_current == 0
    assert diary.derive(actions, today=NOV[23]).streak_longest == 3


# --- badges ------------------------------------------------------------------------------------


def test_the_first_check_in_and_first_grid_unlock_together() -> None:
    diary = Diary()
    diary.check("a", NOV[17])
    state = diary.derive([daily("a"), daily("b")], has_grid=True)
    assert state.badges[:2] == [
        BadgeUnlock("first_checkin", "checkin:a:2026-11-17:1", NOV[17]),
        BadgeUnlock("first_grid", "checkin:a:2026-11-17:1", NOV[17]),
    ]
    assert line(state, "badge:first_checkin").amount == badge("first_checkin").xp_reward
    assert state.xp_total == 10 + badge("first_checkin").xp_reward + badge("first_grid").xp_reward


def test_a_grid_without_check_ins_unlocks_first_grid_on_its_own() -> None:
    state = derive([], [daily("a")], has_grid=True)
    assert state.badges == [BadgeUnlock("first_grid", "badge:first_grid", None)]
    reward = line(state, "badge:first_grid")
    assert (reward.amount, reward.reason, reward.badge, reward.local_date) == (
        badge("first_grid").xp_reward,
        "badge",
        "first_grid",
        None,
    )


def test_no_grid_and_no_check_ins_is_the_empty_state() -> None:
    assert derive([], [], has_grid=False) == DerivedState(
        lines=[],
        xp_total=0,
        level=1,
        levels_reached=[],
        streak_current=0,
        streak_longest=0,
        last_active_date=None,
        perfect_days=0,
        badges=[],
    )


def test_a_volume_badge_unlocks_once_and_is_never_revoked() -> None:
    diary = Diary()
    for i in range(50):
        diary.check(f"x{i}", NOV[17])
    diary.undo("x49", NOV[17])  # back to 49 active check-ins
    diary.check("x49", NOV[17])  # 50 again
    state = diary.derive([])
    assert codes(state).count("volume_50") == 1
    assert state.badges[codes(state).index("volume_50")].key == "checkin:x49:2026-11-17:1"
    assert keys(state, "badge:volume_50") == ["badge:volume_50"]


def test_a_badge_survives_the_undo_that_crossed_back_under_it() -> None:
    diary = Diary()
    for i in range(50):
        diary.check(f"x{i}", NOV[17])
    diary.undo("x0", NOV[17])
    assert "volume_50" in codes(diary.derive([]))


def test_streak_badges_follow_the_run_of_days() -> None:
    diary = Diary()
    for n in range(2, 9):
        diary.check("a", NOV[n])
    state = diary.derive([daily("a"), daily("b")])
    assert [c for c in codes(state) if c.startswith("streak")] == ["streak_3", "streak_7"]
    assert state.badges[codes(state).index("streak_7")].local_date == NOV[8]


def test_monthly_badges_count_active_days_of_one_calendar_month() -> None:
    diary = Diary()
    for day in range(1, 29):
        diary.check("a", date(2026, 2, day))
    state = diary.derive([daily("a"), daily("b")])
    assert {"monthly_10", "monthly_20", "monthly_all"} <= set(codes(state))
    assert state.badges[codes(state).index("monthly_all")].local_date == date(2026, 2, 28)


def test_perfect_day_badges_count_perfect_dates() -> None:
    diary = Diary()
    diary.check("a", NOV[17])
    state = diary.derive([daily("a")])
    assert state.badges[codes(state).index("perfect_days_1")].key == "perfect:2026-11-17:1"


def test_time_of_day_badges_read_the_local_clock() -> None:
    diary = Diary()
    diary.check("a", NOV[16], at=at(NOV[16], 12))
    assert not {"early_bird", "night_owl"} & set(codes(diary.derive([daily("a")])))
    diary.check("a", NOV[17], at=at(NOV[17], 5, 30))
    diary.check("a", NOV[18], at=at(NOV[18], 23, 45))
    unlocked = codes(diary.derive([daily("a")]))
    assert {"early_bird", "night_owl"} <= set(unlocked)


def test_a_check_in_without_a_local_time_is_on_no_clock() -> None:
    change = CheckinChange("e", "a", NOV[17], 1, True, at(NOV[17], 5), local_time=None)
    assert "early_bird" not in codes(derive([change], [daily("a")], has_grid=False))


def test_level_10_unlocks_its_badge_once() -> None:
    diary = Diary()
    for i in range(260):
        diary.check(f"x{i}", NOV[17])
    state = diary.derive([])
    assert state.level >= 10
    assert codes(state).count("level_10") == 1
    (level_10,) = [lv for lv in state.levels_reached if lv.level == 10]
    assert state.badges[codes(state).index("level_10")].key == level_10.key


# --- levels ------------------------------------------------------------------------------------


def test_levels_reached_are_kept_when_a_take_back_drops_the_total() -> None:
    diary = Diary()
    for i in range(8):
        diary.check(f"x{i}", NOV[17])  # 80 + first check-in badge 10 = 90
    diary.check("x8", NOV[17])  # 100: level 2
    diary.undo("x8", NOV[17])  # 90 again
    state = diary.derive([])
    assert state.xp_total == 90
    assert state.level == 1
    assert state.levels_reached == [LevelUp(2, "checkin:x8:2026-11-17:1")]


def test_xp_total_is_the_sum_of_the_lines() -> None:
    diary = Diary()
    for n in range(9, 23):
        diary.check("a", NOV[n])
        diary.check("b", NOV[n])
    diary.undo("b", NOV[20])
    state = diary.derive([daily("a"), daily("b")], has_grid=True)
    assert state.xp_total == sum(ln.amount for ln in state.lines)


# --- order and repetition ----------------------------------------------------------------------


def test_copies_of_a_change_collapse_to_one() -> None:
    diary = Diary()
    diary.check("a", NOV[17])
    diary.undo("a", NOV[17])
    copies = diary.changes * 3
    assert canonical_order(copies) == diary.changes
    assert derive(copies, [daily("a")], True) == diary.derive([daily("a")], True)


def test_replay_is_by_instant_then_action_then_seq() -> None:
    noon = at(NOV[17], 12)
    b1 = CheckinChange("e1", "b", NOV[17], 1, True, noon)
    a1 = CheckinChange("e2", "a", NOV[17], 1, True, noon)
    a2 = CheckinChange("e3", "a", NOV[17], 2, False, noon)
    early = CheckinChange("e4", "c", NOV[16], 1, True, noon - timedelta(hours=1))
    assert canonical_order([a2, b1, early, a1]) == [early, a1, a2, b1]


def test_a_later_seq_never_replays_before_an_earlier_one() -> None:
    check = CheckinChange("e1", "a", NOV[17], 1, True, at(NOV[17], 12))
    undo = CheckinChange("e2", "a", NOV[17], 2, False, at(NOV[17], 11))  # a clock that lagged
    assert canonical_order([undo, check]) == [check, undo]
    state = derive([undo, check], [daily("a")], False)
    assert [(ln.key, ln.amount) for ln in state.lines if ln.reason == "checkin"] == [
        ("checkin:a:2026-11-17:1", 10),
        ("undo:a:2026-11-17:2", -10),
    ]


def test_an_undo_whose_check_has_not_arrived_yet_does_nothing() -> None:
    undo = CheckinChange("e2", "a", NOV[17], 2, False, at(NOV[17], 13))
    assert derive([undo], [daily("a")], False).lines == []


def test_a_naive_instant_is_taken_as_utc() -> None:
    naive = CheckinChange("e", "a", NOV[17], 1, True, datetime(2026, 11, 17, 12))
    assert naive.occurred_at == at(NOV[17], 12)


def test_seq_starts_at_one() -> None:
    with pytest.raises(ValueError, match="seq"):
        CheckinChange("e", "a", NOV[17], 0, True, at(NOV[17], 12))

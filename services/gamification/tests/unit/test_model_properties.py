"""Properties of the XP fold: delivery order and repetition never matter; XP cannot be farmed."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamification.domain import model
from gamification.domain.badges import badge
from gamification.domain.model import PERFECT_DAY_XP, CheckinChange, DerivedState, derive
from mandaact_common.domain.schedule import Action, Schedule, checklist

pytestmark = pytest.mark.unit

FIRST_DAY = date(2026, 11, 2)  # a Monday
ACTIONS = [
    Action("daily", "routine", Schedule.daily(), FIRST_DAY),
    Action("mon-thu", "routine", Schedule.weekly_on("mon", "thu"), FIRST_DAY),
    Action("twice-a-week", "routine", Schedule.weekly_times(2), FIRST_DAY + timedelta(days=3)),
    Action("thrice-a-month", "routine", Schedule.monthly_times(3), FIRST_DAY),
    Action("mission", "mission", None, FIRST_DAY + timedelta(days=5)),
    Action("note", "reference", None, FIRST_DAY),
]
ACTION_IDS = [a.id for a in ACTIONS if a.type != "reference"] + ["deleted-action"]

# The most one check-in can earn: (10 + 5) × (1.5 + 1.5 + 2.0 + 2.0).
MOST_PER_CHECKIN = 105


@dataclass(frozen=True)
class Chain:
    """Up to 3 alternating changes of one action on one date: check, undo, check."""

    action_id: str
    day: date
    length: int
    minute_of_day: int
    backfilled_next_day: bool


chains = st.builds(
    Chain,
    action_id=st.sampled_from(ACTION_IDS),
    day=st.integers(min_value=0, max_value=24).map(lambda n: FIRST_DAY + timedelta(days=n)),
    length=st.integers(min_value=1, max_value=3),
    minute_of_day=st.integers(min_value=0, max_value=24 * 60 - 10),
    backfilled_next_day=st.booleans(),
)


@st.composite
def dense_chains(draw: st.DrawFn) -> list[Chain]:
    """A diligent user: most actions checked on most days, so perfect days and weeks happen."""
    days = draw(st.integers(min_value=7, max_value=24))
    found: list[Chain] = []
    for offset in range(days):
        for action_id in ACTION_IDS:
            length = draw(st.sampled_from([0, 1, 1, 1, 1, 1, 2, 3]))
            if length:
                found.append(
                    Chain(
                        action_id=action_id,
                        day=FIRST_DAY + timedelta(days=offset),
                        length=length,
                        minute_of_day=draw(st.sampled_from([330, 720, 1_410])),
                        backfilled_next_day=draw(st.sampled_from([False] * 5 + [True])),
                    )
                )
    return found


chain_lists = st.one_of(st.lists(chains, max_size=60), dense_chains())


def changes_of(user: str, chain_list: list[Chain]) -> list[CheckinChange]:
    """The changes a user's chains make (one chain per action and date, the first one wins)."""
    seen: set[tuple[str, date]] = set()
    changes: list[CheckinChange] = []
    for chain in chain_list:
        if (chain.action_id, chain.day) in seen:
            continue
        seen.add((chain.action_id, chain.day))
        start_day = chain.day + timedelta(days=1 if chain.backfilled_next_day else 0)
        start = datetime.combine(start_day, time(), UTC) + timedelta(minutes=chain.minute_of_day)
        for seq in range(1, chain.length + 1):
            moment = start + timedelta(minutes=3 * seq)
            changes.append(
                CheckinChange(
                    event_id=f"{user}:{chain.action_id}:{chain.day}:{seq}",
                    action_id=chain.action_id,
                    local_date=chain.day,
                    seq=seq,
                    done=seq % 2 == 1,
                    occurred_at=moment,
                    local_time=moment.time(),
                )
            )
    return changes


def delivered(changes: list[CheckinChange], rnd: random.Random) -> list[CheckinChange]:
    """The changes as a broker may hand them over: some more than once, in any order."""
    copies = [c for c in changes for _ in range(rnd.choice([1, 1, 2, 3]))]
    rnd.shuffle(copies)
    return copies


def in_order(changes: list[CheckinChange]) -> list[CheckinChange]:
    return sorted(changes, key=lambda c: (c.occurred_at, c.action_id, c.seq))


users = st.lists(chain_lists, min_size=1, max_size=4)


@settings(max_examples=100, deadline=None)
@given(users=users, has_grid=st.booleans(), rnd=st.randoms(use_true_random=False))
def test_shuffled_and_repeated_delivery_gives_the_same_state(
    users: list[list[Chain]], has_grid: bool, rnd: random.Random
) -> None:
    for n, chain_list in enumerate(users):
        changes = changes_of(f"user-{n}", chain_list)
        expected = derive(in_order(changes), ACTIONS, has_grid)
        assert derive(delivered(changes, rnd), ACTIONS, has_grid) == expected


def final_done_pairs(changes: list[CheckinChange]) -> set[tuple[str, date]]:
    """The (action, date) pairs whose last change is a check."""
    last: dict[tuple[str, date], CheckinChange] = {}
    for change in changes:
        pair = (change.action_id, change.local_date)
        if pair not in last or change.seq > last[pair].seq:
            last[pair] = change
    return {pair for pair, change in last.items() if change.done}


def assert_cannot_be_farmed(state: DerivedState, changes: list[CheckinChange]) -> None:
    """XP is what the final check-ins earned once each, plus perfect days, plus badges."""
    by_pair: dict[tuple[str, date], list[int]] = defaultdict(list)
    by_date: dict[date, int] = defaultdict(int)
    badge_xp = 0
    for ln in state.lines:
        if ln.reason == "checkin":
            assert ln.action_id is not None
            assert ln.local_date is not None
            by_pair[(ln.action_id, ln.local_date)].append(ln.amount)
        elif ln.reason == "perfect_day":
            assert ln.local_date is not None
            by_date[ln.local_date] += ln.amount
        else:
            assert ln.badge is not None
            assert ln.amount == badge(ln.badge).xp_reward
            badge_xp += ln.amount
    done = final_done_pairs(changes)
    for pair, amounts in by_pair.items():
        # Awards and take-backs alternate, and each take-back is exactly the award before it.
        assert all(0 < award <= MOST_PER_CHECKIN for award in amounts[::2])
        for award, take_back in zip(amounts[::2], amounts[1::2], strict=False):
            assert take_back == -award
        assert (sum(amounts) > 0) == (pair in done)
    assert done <= set(by_pair)
    assert set(by_date.values()) <= {0, PERFECT_DAY_XP}
    assert sum(by_date.values()) == PERFECT_DAY_XP * state.perfect_days
    assert len({b.code for b in state.badges}) == len(state.badges)
    checkin_xp = sum(sum(amounts) for amounts in by_pair.values())
    assert checkin_xp <= MOST_PER_CHECKIN * len(done)
    assert state.xp_total == sum(ln.amount for ln in state.lines)
    assert state.xp_total == checkin_xp + PERFECT_DAY_XP * state.perfect_days + badge_xp


@settings(max_examples=100, deadline=None)
@given(chain_list=chain_lists, has_grid=st.booleans())
def test_xp_is_never_farmable(chain_list: list[Chain], has_grid: bool) -> None:
    changes = changes_of("user", chain_list)
    state = derive(changes, ACTIONS, has_grid)
    assert_cannot_be_farmed(state, changes)
    assert len(state.lines) == len({ln.key for ln in state.lines})  # keys identify lines


@settings(max_examples=50, deadline=None)
@given(chain_list=chain_lists)
def test_levels_are_reached_one_by_one_and_never_lost(chain_list: list[Chain]) -> None:
    state = derive(changes_of("user", chain_list), ACTIONS, True)
    reached = [lv.level for lv in state.levels_reached]
    assert reached == list(range(2, len(reached) + 2))
    assert state.level <= len(reached) + 1


class _FromScratch(model._Fold):
    """The fold with no shortcut and no cache: every date and week judged on the full history."""

    def _done_view(self, day: date) -> dict[str, Collection[date]]:
        return {action_id: list(dates) for action_id, dates in self.done_dates.items()}

    def _is_perfect(self, day: date) -> bool:
        return checklist(self.actions, day, self._done_view(day)).perfect

    def _dates_to_rejudge(self, change: CheckinChange) -> list[date]:
        return sorted({change.local_date, *self.checkins_on, *self.perfect})

    def _week_was_perfect(self, monday: date) -> bool:
        return self._judge_week([monday + timedelta(days=n) for n in range(7)])


def derive_from_scratch(changes: list[CheckinChange], has_grid: bool) -> DerivedState:
    fold = _FromScratch(ACTIONS, has_grid)
    for change in model.canonical_order(changes):
        fold.apply(change)
    return fold.finish(None)


@settings(max_examples=100, deadline=None)
@given(chain_list=chain_lists, has_grid=st.booleans())
def test_the_shortcuts_agree_with_judging_everything_from_scratch(
    chain_list: list[Chain], has_grid: bool
) -> None:
    changes = changes_of("user", chain_list)
    assert derive(changes, ACTIONS, has_grid) == derive_from_scratch(changes, has_grid)

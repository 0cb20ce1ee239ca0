"""The kept fold: extended batch by batch (and rebuilt when a fact comes late), it equals the
fold of every fact from scratch, and its state stays bounded however long the history."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamification.domain.model import CheckinChange, LedgerLine, derive
from gamification.domain.streaks import NO_RULES, DateRange, DayRules, streak
from gamification.domain.user_fold import GridFact, NeedsRebuild, UserFold
from mandaact_common.domain.pauses import Pause
from mandaact_common.domain.schedule import Action, Schedule

pytestmark = pytest.mark.unit

START = date(2026, 1, 5)  # a Monday
ACTIONS = (
    Action("daily", "routine", Schedule.daily(), START),
    Action("mon-thu", "routine", Schedule.weekly_on("mon", "thu"), START),
    Action("twice-a-week", "routine", Schedule.weekly_times(2), START),
    Action("thrice-a-month", "routine", Schedule.monthly_times(3), START),
    Action("mission", "mission", None, START + timedelta(days=40)),
)
IDS = [a.id for a in ACTIONS]


def grid(version: int, day: date, actions: tuple[Action, ...] = ACTIONS) -> GridFact:
    moment = datetime.combine(day, time(0, 30), UTC)
    return GridFact(f"g{version}", "grid", version, True, False, actions, moment, day)


def history(rnd: random.Random, days: int, density: float) -> list[CheckinChange]:
    """Check-ins (some undone, some backfilled the next morning) over `days` days."""
    changes: list[CheckinChange] = []
    for offset in range(days):
        day = START + timedelta(days=offset)
        for action_id in IDS:
            if rnd.random() > density:
                continue
            late = rnd.random() < 0.1
            start = datetime.combine(day + timedelta(days=late), time(6), UTC)
            start += timedelta(minutes=rnd.randrange(0, 600))
            for seq in range(1, rnd.choice([1, 1, 1, 2, 3]) + 1):
                moment = start + timedelta(minutes=2 * seq)
                changes.append(
                    CheckinChange(
                        f"{action_id}:{day}:{seq}",
                        action_id,
                        day,
                        seq,
                        seq % 2 == 1,
                        moment,
                        moment.time(),
                    )
                )
    return changes


def moment_of(fact: GridFact | CheckinChange) -> datetime:
    return fact.updated_at if isinstance(fact, GridFact) else fact.occurred_at


def sums(lines: list[LedgerLine]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for line in lines:
        out[line.key] += line.amount
    return {k: v for k, v in out.items() if v}


def live(
    facts: list[GridFact | CheckinChange], batch: int, rules: DayRules = NO_RULES
) -> tuple[UserFold, dict[str, int]]:
    """Deliver facts in batches as the service does: extend, else rebuild and diff the ledger.

    The user's pauses and repairs (`rules`) are given to every fold read, as the service does.
    """
    fold = UserFold(accept_days=2)
    fold.rules = rules
    ledger: dict[str, int] = defaultdict(int)
    seen: list[GridFact | CheckinChange] = []
    cold_before: tuple[date, str] | None = None
    for i in range(0, len(facts), batch):
        chunk = facts[i : i + batch]
        seen += chunk
        try:
            for line in fold.extend(chunk):
                ledger[line.key] += line.amount
        except NeedsRebuild:
            fold, lines = UserFold.rebuild(seen, accept_days=2, rules=rules)
            cold_before = None  # a rebuilt fold is stored anew, cold part included
            for key, amount in sums(lines).items():
                ledger[key] = amount
            for key in [k for k in ledger if k not in sums(lines)]:
                ledger[key] = 0
        # Stored as the Mongo adapter stores it: the cold check-ins apart, and not encoded
        # again while the split stays — so they must not have changed meanwhile.
        split = fold.cold_split()
        if split is None:
            fold = UserFold.from_state(json.loads(json.dumps(fold.to_state())))
            fold.rules = rules
            continue
        cold = json.dumps(fold.cold_state(split))
        if cold_before is not None and cold_before[0] == split:
            assert cold == cold_before[1], "cold check-ins changed under the same split"
        cold_before = (split, cold)
        fold = UserFold.from_state(json.loads(json.dumps(fold.to_state(split))), json.loads(cold))
        fold.rules = rules
    return fold, {k: v for k, v in ledger.items() if v}


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(20, 100),
    density=st.sampled_from([0.3, 0.8, 1.0]),
    batch=st.integers(5, 60),
    jitter=st.sampled_from([0, 0, 3]),
    late=st.sampled_from([0, 0, 2]),
)
def test_batches_in_arrival_order_give_the_fold_from_scratch(
    seed: int, days: int, density: float, batch: int, jitter: int, late: int
) -> None:
    rnd = random.Random(seed)
    facts: list[GridFact | CheckinChange] = [grid(1, START - timedelta(days=1))]
    facts += sorted(history(rnd, days, density), key=moment_of)
    edit_day = START + timedelta(days=days // 2)
    facts.append(grid(2, edit_day, ACTIONS[:3]))
    facts.sort(key=moment_of)
    for _ in range(jitter * len(facts) // 20):  # a few neighbours swapped: cross-topic delivery
        i = rnd.randrange(len(facts) - 1)
        facts[i], facts[i + 1] = facts[i + 1], facts[i]
    facts += rnd.sample(facts, len(facts) // 10)  # and some delivered twice
    for _ in range(late):  # and a few arrive long after their time (a replay, a redrive)
        facts.append(facts.pop(rnd.randrange(len(facts) // 2)))

    kept, ledger = live(facts, batch)
    scratch, lines = UserFold.rebuild(facts, accept_days=2)
    assert kept.summary() == scratch.summary()
    assert ledger == sums(lines)
    assert kept.summary().xp_total == sum(ledger.values())


def active_dates(changes: list[CheckinChange]) -> set[date]:
    """The dates with a check-in held once every change is in: a pair's last change decides."""
    last: dict[tuple[str, date], CheckinChange] = {}
    for c in changes:
        pair = (c.action_id, c.local_date)
        if pair not in last or c.seq > last[pair].seq:
            last[pair] = c
    return {day for (_, day), c in last.items() if c.done}


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(20, 100),
    density=st.sampled_from([0.15, 0.3, 0.8]),
    batch=st.integers(5, 60),
    late=st.sampled_from([0, 1]),
    pause_at=st.integers(0, 100),
    pause_days=st.integers(0, 14),
    repair_at=st.lists(st.integers(0, 100), max_size=3),
    after=st.integers(0, 4),
)
def test_with_freezes_pauses_and_repairs_shuffled_delivery_equals_in_order_delivery(
    seed: int,
    days: int,
    density: float,
    batch: int,
    late: int,
    pause_at: int,
    pause_days: int,
    repair_at: list[int],
    after: int,
) -> None:
    """Sparse histories use and earn freezes; pauses and repairs keep runs; any delivery order
    with copies gives the kept fold of in-order delivery: ledger, perfect days and the streak
    (current, longest, freezes, frozen dates) of the pure walk over the held dates."""
    rnd = random.Random(seed)
    pauses = (
        (Pause(START + timedelta(days=pause_at), START + timedelta(days=pause_at + pause_days)),)
        if pause_days
        else ()
    )
    repairs = tuple(
        DateRange(START + timedelta(days=d), START + timedelta(days=d + 1)) for d in repair_at
    )
    rules = DayRules(pauses, repairs)
    changes = history(rnd, days, density)
    in_order: list[GridFact | CheckinChange] = [grid(1, START - timedelta(days=1))]
    in_order += sorted(changes, key=moment_of)
    shuffled = list(in_order)
    for _ in range(len(shuffled) // 4):
        i = rnd.randrange(len(shuffled) - 1)
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    shuffled += rnd.sample(shuffled, len(shuffled) // 8)
    for _ in range(late):
        shuffled.append(shuffled.pop(rnd.randrange(len(shuffled) // 2)))

    ordered_fold, ordered_ledger = live(in_order, 10_000, rules)
    kept, ledger = live(shuffled, batch, rules)
    assert kept.summary() == ordered_fold.summary()
    assert ledger == sums(UserFold.rebuild(in_order, 2, rules)[1]) == ordered_ledger
    today = START + timedelta(days=days + after)
    expected = streak(active_dates(changes), rules, today)
    assert kept.streak(today) == ordered_fold.streak(today) == expected
    paused_perfect = [
        k
        for k in ledger
        if k.startswith("perfect:") and any(p.covers(date.fromisoformat(k[8:18])) for p in pauses)
    ]
    assert paused_perfect == []


@settings(max_examples=5, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), batch=st.integers(5, 60))
def test_without_grid_edits_the_kept_fold_equals_the_whole_history_replay(
    seed: int, batch: int
) -> None:
    """With one grid from the start, the kept fold gives what `derive` gives for the history."""
    rnd = random.Random(seed)
    changes = sorted(history(rnd, 75, 0.9), key=lambda c: c.occurred_at)
    facts: list[GridFact | CheckinChange] = [grid(1, START - timedelta(days=1)), *changes]
    kept, ledger = live(facts, batch)
    whole = derive(changes, ACTIONS, has_grid=True)
    summary = kept.summary()
    assert (summary.xp_total, summary.level) == (whole.xp_total, whole.level)
    assert (summary.streak_current, summary.streak_longest) == (
        whole.streak_current,
        whole.streak_longest,
    )
    assert summary.perfect_days == whole.perfect_days
    assert {b.code for b in summary.badges} == {b.code for b in whole.badges}
    without_grid_badge = {k: v for k, v in ledger.items() if k != "badge:first_grid"}
    assert without_grid_badge == {
        k: v for k, v in sums(whole.lines).items() if k != "badge:first_grid"
    }


def test_the_kept_state_does_not_grow_with_the_history() -> None:
    rnd = random.Random(1)
    sizes = []
    for days in (70, 400):
        facts: list[GridFact | CheckinChange] = [grid(1, START - timedelta(days=1))]
        facts += sorted(history(rnd, days, 1.0), key=moment_of)
        fold, _ = live(facts, 500)
        sizes.append(len(json.dumps(fold.to_state())))
    assert sizes[1] < sizes[0] * 1.3, sizes


def test_a_fact_before_the_kept_window_asks_for_a_rebuild() -> None:
    rnd = random.Random(3)
    changes = sorted(history(rnd, 70, 1.0), key=lambda c: c.occurred_at)
    fold, _ = live([grid(1, START - timedelta(days=1)), *changes], 200)
    old = CheckinChange(
        "late", "daily", START + timedelta(days=3), 9, True, changes[-1].occurred_at
    )
    with pytest.raises(NeedsRebuild):
        fold.extend([old])


def test_a_return_after_a_long_gap_is_a_comeback_even_when_the_old_run_was_compacted() -> None:
    def check(offset: int) -> CheckinChange:
        day = START + timedelta(days=offset)
        moment = datetime.combine(day, time(9), UTC)
        return CheckinChange(f"c{offset}", "daily", day, 1, True, moment, moment.time())

    first: list[GridFact | CheckinChange] = [grid(1, START - timedelta(days=1))]
    first += [check(d) for d in range(10)]
    fold = UserFold(accept_days=2)
    fold.extend(first)
    fold.extend([grid(2, START + timedelta(days=60))])  # moves the kept window past the old run
    [back, *_] = fold.extend([check(80)])
    scratch, lines = UserFold.rebuild([*first, grid(2, START + timedelta(days=60)), check(80)])
    assert back.key == f"checkin:daily:{START + timedelta(days=80)}:1"
    assert back.multiplier == next(ln.multiplier for ln in lines if ln.key == back.key) == 1.5
    assert fold.summary() == scratch.summary()

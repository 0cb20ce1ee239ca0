"""A user's fold kept between batches: bounded state, and O(1) work for each new fact.

`derive()` replays a user's whole history. A `UserFold` holds the fold *after* the facts applied
so far, compacted to what later rules can still read (`model._Fold.compact`), and extends it
with new facts as long as they come after it in the canonical order — which is what live
traffic does: a check-in or grid change is ordered by when it happened, and it happens now.
A fact that would have to be replayed before facts already applied (a late delivery across
topics, a replay, a redriven dead letter, a date older than the kept detail) is refused with
`NeedsRebuild`, and the caller rebuilds the fold from the user's archived facts with
`UserFold.rebuild`. Either way the result is the fold of the same set of facts in the same
canonical order, so the ledger, totals, levels, streaks and badges converge.

Grid changes are facts too: from its own local date on, a day is judged by the grid as it was
changed; the days before keep the judgement they had (see `docs/gamification-rules.md`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from gamification.domain.model import (
    CheckinChange,
    DerivedState,
    LedgerLine,
    LevelUp,
    _Cause,
    _Fold,
    canonical_order,
)
from gamification.domain.streaks import NO_RULES, DayRules, StreakState
from mandaact_common import codecs
from mandaact_common.domain.schedule import Action

LOOKBACK: Final = timedelta(days=45)
"""How far back the rules read from a date they judge: the week before it (perfect week) and,
for missions and N-times routines, that week's month. Detail is kept this far before the oldest
date a new fact may still be for."""
COMPACT_STEP: Final = timedelta(days=7)
"""Compaction moves the kept window a week at a time, not on every batch."""
COLD_AFTER: Final = timedelta(days=42)
"""Check-ins held on dates before the kept floor + this are cold: more than `accept_days`
before the oldest date a new fact may be for, so nothing but the next compaction changes them,
and they can be stored apart and not encoded again on every batch (`cold_split`)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class NeedsRebuild(Exception):
    """A fact cannot be appended to the kept fold: rebuild it from the archived facts."""


@dataclass(frozen=True, slots=True)
class GridFact:
    """A version of one of the user's grids, as `goal.changed` announced it."""

    event_id: str
    grid_id: str
    version: int
    active: bool
    deleted: bool
    actions: tuple[Action, ...]
    updated_at: datetime
    local_date: date


Fact = CheckinChange | GridFact
OrderKey = tuple[datetime, int, str, int, str, str]


def _change_key(change: CheckinChange, replay_at: datetime) -> OrderKey:
    return (
        replay_at,
        1,
        change.action_id,
        change.seq,
        change.local_date.isoformat(),
        change.event_id,
    )


def _grid_key(grid: GridFact) -> OrderKey:
    return (codecs.utc(grid.updated_at), 0, grid.grid_id, grid.version, "", grid.event_id)


def digest(change: CheckinChange) -> str:
    """What tells two copies of one (action, date, seq) apart when they differ at all."""
    text = f"{change.event_id}|{change.occurred_at.isoformat()}|{change.done}|{change.local_time}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def _ordered(facts: Iterable[Fact]) -> list[tuple[OrderKey, Fact]]:
    """Facts once each in the canonical order (check-ins as `canonical_order` puts them)."""
    changes = [f for f in facts if isinstance(f, CheckinChange)]
    grids = {(g.grid_id, g.version): g for g in facts if isinstance(g, GridFact)}
    keyed: list[tuple[OrderKey, Fact]] = [(_grid_key(g), g) for g in grids.values()]
    replay_at: dict[tuple[str, date], datetime] = {}
    for change in canonical_order(changes):
        pair = (change.action_id, change.local_date)
        moment = max(replay_at.get(pair, change.occurred_at), change.occurred_at)
        replay_at[pair] = moment
        keyed.append((_change_key(change, moment), change))
    keyed.sort(key=lambda kf: kf[0])
    return keyed


class UserFold:
    """One user's fold with what is needed to extend it by new facts in order."""

    def __init__(self, accept_days: int = 2) -> None:
        self._fold = _Fold((), has_grid=False)
        self._grids: dict[str, GridFact] = {}
        self._last: OrderKey | None = None
        self._pairs: dict[tuple[str, date], tuple[int, datetime, str]] = {}
        self._newest = date.min
        self._floor = date.min
        self._accept_from = date.min
        self._accept_days = max(accept_days, 1)

    # -- facts in --

    @property
    def rules(self) -> DayRules:
        """The user's paused and repaired dates the fold judges by (given, never stored)."""
        return self._fold.rules

    @rules.setter
    def rules(self, rules: DayRules) -> None:
        self._fold.rules = rules

    @classmethod
    def rebuild(
        cls, facts: Iterable[Fact], accept_days: int = 2, rules: DayRules = NO_RULES
    ) -> tuple[UserFold, list[LedgerLine]]:
        """The fold of every fact from scratch, and every line it produces."""
        fold = cls(accept_days)
        fold.rules = rules
        lines = fold._apply_ordered(_ordered(facts))
        fold._compact()
        return fold, lines

    def extend(self, facts: Sequence[Fact]) -> list[LedgerLine]:
        """Apply new facts after the kept ones; NeedsRebuild if one belongs before them.

        Nothing is changed when it raises. A fact already applied is skipped.
        """
        ordered = self._plan(facts)
        lines = self._apply_ordered(ordered)
        self._compact()
        return lines

    def _plan(self, facts: Sequence[Fact]) -> list[tuple[OrderKey, Fact]]:
        planned: list[tuple[OrderKey, Fact]] = []
        pairs = dict(self._pairs)
        seen_grids: set[tuple[str, int]] = set()
        for fact in sorted(facts, key=_rough_key):
            if isinstance(fact, GridFact):
                known = self._grids.get(fact.grid_id)
                if (known is not None and known.version >= fact.version) or (
                    fact.grid_id,
                    fact.version,
                ) in seen_grids:
                    if known is not None and known.version == fact.version:
                        continue  # the same version again
                    raise NeedsRebuild(f"grid {fact.grid_id} v{fact.version} arrived late")
                if fact.local_date < self._accept_from:
                    raise NeedsRebuild(f"grid change of {fact.local_date} is before the window")
                seen_grids.add((fact.grid_id, fact.version))
                planned.append((_grid_key(fact), fact))
                continue
            if fact.local_date < self._accept_from:
                raise NeedsRebuild(f"check-in of {fact.local_date} is before the kept window")
            pair = (fact.action_id, fact.local_date)
            held = pairs.get(pair)
            if held is not None and fact.seq <= held[0]:
                if fact.seq == held[0] and digest(fact) == held[2]:
                    continue  # the same change again
                raise NeedsRebuild(f"change {fact.seq} of {pair} arrived after a later one")
            moment = codecs.utc(fact.occurred_at)
            if held is not None:
                moment = max(moment, held[1])
            pairs[pair] = (fact.seq, moment, digest(fact))
            planned.append((_change_key(fact, moment), fact))
        planned.sort(key=lambda kf: kf[0])
        if planned and self._last is not None and planned[0][0] <= self._last:
            raise NeedsRebuild("a fact belongs before facts already applied")
        return planned

    def _apply_ordered(self, ordered: Sequence[tuple[OrderKey, Fact]]) -> list[LedgerLine]:
        fold = self._fold
        fold.lines = []
        for key, fact in ordered:
            if isinstance(fact, GridFact):
                self._apply_grid(fact)
            else:
                fold.apply(fact)
                replay_at = key[0]
                self._pairs[(fact.action_id, fact.local_date)] = (
                    fact.seq,
                    replay_at,
                    digest(fact),
                )
                self._newest = max(self._newest, fact.local_date)
            self._last = key
        return fold.lines

    def _apply_grid(self, grid: GridFact) -> None:
        known = self._grids.get(grid.grid_id)
        if known is not None and known.version >= grid.version:
            return
        self._grids[grid.grid_id] = grid
        actions = [
            action
            for g in sorted(self._grids.values(), key=lambda g: g.grid_id)
            if g.active and not g.deleted
            for action in g.actions
        ]
        cause = _Cause(
            f"grid:{grid.grid_id}:{grid.version}",
            grid.local_date,
            grid.event_id,
            codecs.utc(grid.updated_at),
        )
        self._fold.change_grid(actions, True, grid.local_date, cause)
        # The first grid is rewarded when it is made, dated the day it was made.
        self._fold.unlock_first_grid(cause)
        self._newest = max(self._newest, grid.local_date)

    def _compact(self) -> None:
        """Move the accepted window on with the newest date, and the kept detail a week at a time.

        The detail kept always reaches `LOOKBACK` before the oldest accepted date: the floor is
        only ever set that far behind the accepted window, and the window only moves forward.
        """
        if self._newest == date.min:
            return
        accept_from = self._newest - timedelta(days=self._accept_days)
        if accept_from > self._accept_from:
            self._accept_from = accept_from
            self._pairs = {p: v for p, v in self._pairs.items() if p[1] >= accept_from}
        floor = self._accept_from - LOOKBACK
        if floor >= self._floor + COMPACT_STEP:
            self._fold.compact(floor)
            self._floor = floor

    # -- what it says --

    def summary(self) -> DerivedState:
        """Totals, level, levels reached, streaks, perfect days and badges (no lines).

        Levels reached are told by number only: the kept state does not keep which line crossed
        into each.
        """
        lines, self._fold.lines = self._fold.lines, []
        try:
            state = self._fold.finish(None)
        finally:
            self._fold.lines = lines
        levels = [LevelUp(up.level, "") for up in state.levels_reached]
        return dataclasses.replace(state, levels_reached=levels)

    def streak(self, today: date) -> StreakState:
        """The streak with freezes as of `today` (the user's date), from the facts applied."""
        return self._fold.streak(today)

    def last_active(self) -> date | None:
        """The latest date with a check-in held."""
        last = self._fold.active.last()
        return date.fromordinal(last) if last is not None else None

    def weight(self) -> int:
        """How much detail the fold keeps (about one per check-in still held in detail)."""
        return self._fold.weight() + len(self._pairs) + 1

    @property
    def accept_from(self) -> date:
        """The oldest local date a new fact may be for without a rebuild."""
        return self._accept_from

    # -- as plain data --

    def cold_split(self) -> date | None:
        """The date before which the check-ins held are cold (None: none are yet).

        What `cold_state` gives for it changes only when the split itself moves (a week at a
        time): LOOKBACK > COLD_AFTER + accept_days, so it is always before `accept_from`.
        """
        return None if self._floor == date.min else self._floor + COLD_AFTER

    def cold_state(self, split: date) -> dict[str, Any]:
        """The check-ins held before `split`, as plain data: what `to_state(split)` leaves out."""
        return self._fold.cold_state(split)

    def to_state(self, split: date | None = None) -> dict[str, Any]:
        """The kept fold as plain data (bounded by the window, not by the history); with
        `split`, without the check-ins before it (see `cold_state`)."""
        return {
            "fold": self._fold.to_state(split),
            "grids": [_grid_state(g) for g in self._grids.values()],
            "last": _key_state(self._last),
            "pairs": [
                [a, d.isoformat(), seq, _ms(at), dg]
                for (a, d), (seq, at, dg) in self._pairs.items()
            ],
            "newest": self._newest.isoformat(),
            "floor": self._floor.isoformat(),
            "accept_from": self._accept_from.isoformat(),
            "accept_days": self._accept_days,
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], cold: Mapping[str, Any] | None = None
    ) -> UserFold:
        """A fold from `to_state` (and the `cold_state` it left out, if split)."""
        fold = cls(int(state["accept_days"]))
        fold._fold = _Fold.from_state(state["fold"], cold)
        fold._grids = {g.grid_id: g for g in (_grid_from(d) for d in state["grids"])}
        fold._last = _key_from(state["last"])
        fold._pairs = {
            (a, date.fromisoformat(d)): (int(seq), _from_ms(at), dg)
            for a, d, seq, at, dg in state["pairs"]
        }
        fold._newest = date.fromisoformat(state["newest"])
        fold._floor = date.fromisoformat(state["floor"])
        fold._accept_from = date.fromisoformat(state["accept_from"])
        return fold


def _rough_key(fact: Fact) -> tuple[datetime, int, int]:
    if isinstance(fact, GridFact):
        return codecs.utc(fact.updated_at), 0, fact.version
    return codecs.utc(fact.occurred_at), 1, fact.seq


def _ms(moment: datetime) -> int:
    return (codecs.utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _key_state(key: OrderKey | None) -> list[Any] | None:
    if key is None:
        return None
    moment, rank, name, seq, day, event_id = key
    return [_ms(moment), moment.microsecond % 1000, rank, name, seq, day, event_id]


def _key_from(state: list[Any] | None) -> OrderKey | None:
    if state is None:
        return None
    ms, micros, rank, name, seq, day, event_id = state
    moment = _from_ms(int(ms)) + timedelta(microseconds=int(micros))
    return (moment, int(rank), str(name), int(seq), str(day), str(event_id))


def _grid_state(grid: GridFact) -> dict[str, Any]:
    return {
        "event_id": grid.event_id,
        "grid_id": grid.grid_id,
        "version": grid.version,
        "active": grid.active,
        "deleted": grid.deleted,
        "actions": [codecs.action_doc(a) for a in grid.actions],
        "updated_at": grid.updated_at.isoformat(),
        "local_date": grid.local_date.isoformat(),
    }


def _grid_from(state: Mapping[str, Any]) -> GridFact:
    return GridFact(
        event_id=state["event_id"],
        grid_id=state["grid_id"],
        version=int(state["version"]),
        active=bool(state["active"]),
        deleted=bool(state["deleted"]),
        actions=tuple(codecs.action_from(a) for a in state["actions"]),
        updated_at=datetime.fromisoformat(state["updated_at"]),
        local_date=date.fromisoformat(state["local_date"]),
    )

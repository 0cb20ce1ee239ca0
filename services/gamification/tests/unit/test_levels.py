"""Levels: 25n² + 25n − 50 XP to reach level n ≥ 2, level 1 at 0 XP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamification.domain.levels import (
    MILESTONE_LEVELS,
    is_milestone,
    level_for_xp,
    progress,
    xp_for_level,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("level", "xp"), [(1, 0), (2, 100), (3, 250), (4, 450), (5, 700), (10, 2_700), (30, 23_200)]
)
def test_xp_needed_to_reach_a_level(level: int, xp: int) -> None:
    assert xp_for_level(level) == xp


def test_there_is_no_level_zero() -> None:
    with pytest.raises(ValueError, match="levels start at 1"):
        xp_for_level(0)


@pytest.mark.parametrize(
    ("xp", "level"),
    [
        (-30, 1),
        (0, 1),
        (99, 1),
        (100, 2),
        (249, 2),
        (250, 3),
        (699, 4),
        (700, 5),
        (2_699, 9),
        (2_700, 10),
        (23_199, 29),
        (23_200, 30),
    ],
)
def test_level_at_the_boundaries(xp: int, level: int) -> None:
    assert level_for_xp(xp) == level


@given(st.integers(min_value=0, max_value=10_000_000))
def test_a_level_spans_from_its_threshold_to_the_next(xp: int) -> None:
    level = level_for_xp(xp)
    assert xp_for_level(level) <= xp < xp_for_level(level + 1)


def test_progress_reads_xp_into_the_level_and_the_level_span() -> None:
    assert progress(0) == (1, 0, 100)
    assert progress(150) == (2, 50, 150)
    assert progress(700) == (5, 0, 300)
    assert progress(2_699) == (9, 499, 500)


def test_milestones_are_every_fifth_level_up_to_30() -> None:
    assert sorted(MILESTONE_LEVELS) == [5, 10, 15, 20, 25, 30]
    assert is_milestone(10)
    assert not is_milestone(11)
    assert not is_milestone(35)

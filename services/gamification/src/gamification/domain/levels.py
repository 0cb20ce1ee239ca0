"""Levels: the XP needed to reach level n (n ≥ 2) is 25n² + 25n − 50; level 1 starts at 0 XP."""

from __future__ import annotations

from math import isqrt
from typing import Final

__all__ = [
    "MILESTONE_LEVELS",
    "is_milestone",
    "level_for_xp",
    "progress",
    "xp_for_level",
]

MILESTONE_LEVELS: Final[frozenset[int]] = frozenset({5, 10, 15, 20, 25, 30})
"""Reaching one of these levels starts the 2.0× level-milestone bonus."""


def xp_for_level(n: int) -> int:
    """Return the total XP at which level `n` is reached (level 2 = 100, 5 = 700, 10 = 2,700)."""
    if n < 1:
        raise ValueError(f"levels start at 1, got {n}")
    if n == 1:
        return 0
    return 25 * n * n + 25 * n - 50


def level_for_xp(xp: int) -> int:
    """Return the level a total of `xp` XP is at (1 for anything below 100, negative included)."""
    if xp < xp_for_level(2):
        return 1
    # 25n² + 25n − 50 ≤ xp  ⇔  (2n + 1)² ≤ 9 + 4·xp/25 = (225 + 4·xp) / 25
    level = (isqrt((225 + 4 * xp) // 25) - 1) // 2
    while xp_for_level(level + 1) <= xp:  # guard against the integer square root rounding down
        level += 1
    while level > 1 and xp_for_level(level) > xp:
        level -= 1
    return level


def progress(xp: int) -> tuple[int, int, int]:
    """Return (level, XP earned into that level, XP the whole level spans up to the next one)."""
    level = level_for_xp(xp)
    floor = xp_for_level(level)
    return level, max(xp, 0) - floor, xp_for_level(level + 1) - floor


def is_milestone(level: int) -> bool:
    """A milestone level (5, 10, …, 30) starts the level-milestone bonus when reached."""
    return level in MILESTONE_LEVELS

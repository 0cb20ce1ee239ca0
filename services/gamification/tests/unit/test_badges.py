"""The badge catalogue: packaged data, checked when it is loaded."""

from __future__ import annotations

import json
from datetime import date, time

import pytest

from gamification.domain.badges import (
    BadgeFamily,
    InvalidCatalogue,
    badge,
    by_family,
    catalogue,
    monthly_target,
    parse_catalogue,
)

pytestmark = pytest.mark.unit


def test_the_catalogue_has_at_least_25_badges_with_unique_codes() -> None:
    codes = [b.code for b in catalogue()]
    assert len(codes) >= 25
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    ("family", "thresholds"),
    [
        ("first_checkin", [1]),
        ("first_grid", [1]),
        ("streak", [3, 7, 14, 30, 60, 100, 150]),
        ("volume", [50, 100, 250, 500, 1_000, 2_500, 5_000]),
        ("monthly", [10, 20, 31]),
        ("perfect_days", [1, 7, 30, 100]),
        ("level", [10]),
    ],
)
def test_each_family_climbs_its_thresholds(family: BadgeFamily, thresholds: list[int]) -> None:
    assert [b.threshold for b in by_family(family)] == thresholds


def test_every_badge_is_titled_in_both_locales_and_pays_xp() -> None:
    for b in catalogue():
        assert all((b.title_en, b.title_ko, b.description_en, b.description_ko))
        assert b.xp_reward > 0


def test_time_of_day_badges_are_secret_and_only_they_are() -> None:
    assert {b.code for b in catalogue() if b.secret} == {"early_bird", "night_owl"}
    assert all(b.secret for b in by_family("time_of_day"))


def test_early_bird_is_from_four_to_six_in_the_morning() -> None:
    early = badge("early_bird")
    assert early.in_window(time(4, 0))
    assert early.in_window(time(5, 59))
    assert not early.in_window(time(6, 0))
    assert not early.in_window(time(3, 59))


def test_night_owl_wraps_midnight() -> None:
    owl = badge("night_owl")
    assert owl.in_window(time(23, 0))
    assert owl.in_window(time(0, 30))
    assert owl.in_window(time(3, 59))
    assert not owl.in_window(time(4, 0))
    assert not owl.in_window(time(22, 59))


def test_every_day_of_a_month_means_the_days_that_month_has() -> None:
    assert monthly_target(31, date(2026, 2, 10)) == 28
    assert monthly_target(31, date(2028, 2, 10)) == 29
    assert monthly_target(31, date(2026, 11, 1)) == 30
    assert monthly_target(20, date(2026, 2, 10)) == 20


def test_an_unknown_code_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        badge("no_such_badge")


def _document(**overrides: object) -> str:
    raw = {
        "code": "x",
        "family": "volume",
        "title_en": "X",
        "title_ko": "엑스",
        "description_en": "x",
        "description_ko": "엑스",
        "threshold": 1,
        "xp_reward": 5,
        "secret": False,
    }
    raw.update(overrides)
    return json.dumps({"badges": [raw]})


def test_a_catalogue_is_checked_when_parsed() -> None:
    assert parse_catalogue(_document())[0].code == "x"
    with pytest.raises(InvalidCatalogue, match="unknown family"):
        parse_catalogue(_document(family="karma"))
    with pytest.raises(InvalidCatalogue, match="title_ko"):
        parse_catalogue(_document(title_ko=""))
    with pytest.raises(InvalidCatalogue, match="threshold"):
        parse_catalogue(_document(threshold=0))
    with pytest.raises(InvalidCatalogue, match="window"):
        parse_catalogue(_document(family="time_of_day"))
    with pytest.raises(InvalidCatalogue, match="badges"):
        parse_catalogue("[]")


def test_repeated_codes_are_refused() -> None:
    twice = json.loads(_document())["badges"] * 2
    with pytest.raises(InvalidCatalogue, match="unique"):
        parse_catalogue(json.dumps({"badges": twice}))

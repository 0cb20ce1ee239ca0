"""The deterministic summary, written from the fold alone (Korean and English).

Used when there is no LLM key, or the LLM call fails, times out, refuses, answers malformed
output or states a number the fold does not hold. It only states numbers of the fold, so it passes
the same number check as an LLM answer (a property test holds it to that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from reports.domain.facts import Locale
from reports.domain.stats import SubGoalStat, WeeklyStats
from reports.domain.summary import ActionPlan, Improvements, Summary

TITLE_CHARS = 40
MAX_BADGES = 3

_DAY_NAMES = {
    "en": {
        "mon": "Monday",
        "tue": "Tuesday",
        "wed": "Wednesday",
        "thu": "Thursday",
        "fri": "Friday",
        "sat": "Saturday",
        "sun": "Sunday",
    },
    "ko": {
        "mon": "월요일",
        "tue": "화요일",
        "wed": "수요일",
        "thu": "목요일",
        "fri": "금요일",
        "sat": "토요일",
        "sun": "일요일",
    },
}
_PERIODS = {
    "en": {
        "morning": "in the morning",
        "afternoon": "in the afternoon",
        "evening": "in the evening",
        "night": "at night",
    },
    "ko": {"morning": "아침", "afternoon": "오후", "evening": "저녁", "night": "밤"},
}


def short_title(title: str, limit: int = TITLE_CHARS) -> str:
    """A title cut to `limit` characters without leaving a number cut in half."""
    clean = " ".join(title.split())
    if len(clean) <= limit:
        return clean
    cut = re.sub(r"[0-9][0-9.,]*$", "", clean[:limit]).rstrip()
    return cut + "…"


def _pct(value: float) -> int:
    # Rounded in decimal, half up, exactly as the number check rounds (floats would drift).
    return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _badges(codes: list[str]) -> str:
    shown = ", ".join(short_title(code) for code in codes[:MAX_BADGES])
    return shown + (", …" if len(codes) > MAX_BADGES else "")


@dataclass(frozen=True, slots=True)
class _Facts:
    """The few readings of the fold the templates use."""

    stats: WeeklyStats
    locale: Locale

    def day(self, code: str | None) -> str:
        return _DAY_NAMES[self.locale][code] if code else ""

    @property
    def favourite_period(self) -> str | None:
        spread = self.stats.time_of_day.model_dump()
        period, count = max(spread.items(), key=lambda kv: kv[1])
        return _PERIODS[self.locale][period] if count else None

    @property
    def missed(self) -> int:
        return self.stats.due_total - self.stats.done_total


def _sub_goal_line_en(s: SubGoalStat) -> str:
    pct = f" ({_pct(s.rate)}%)" if s.rate is not None else ""
    return f"“{short_title(s.title)}”: {s.done} of {s.due} done{pct}"


def _sub_goal_line_ko(s: SubGoalStat) -> str:
    pct = f" ({_pct(s.rate)}%)" if s.rate is not None else ""
    return f"“{short_title(s.title)}”: {s.due}개 중 {s.done}개 완료{pct}"


def _english(f: _Facts) -> Summary:
    s = f.stats
    rate = s.completion_rate
    headline = f"{s.checkins_total} check-ins on {s.days_active} of 7 days"
    if rate is not None:
        headline += f", {_pct(rate)}% of due actions done"
    completion = (
        f"Completion: {_pct(rate)}% ({s.done_total} of {s.due_total} due actions)"
        if rate is not None
        else "No actions were due this week"
    )
    xp = f"XP gained: {s.xp_gained}"
    if s.levels_gained:
        xp += f", {s.levels_gained} new level(s)"
    streak = f"Streak: {s.streak_current} days (best {s.streak_best})"

    strengths = [f"You checked in {s.checkins_total} times on {s.days_active} days."]
    if s.best_sub_goal is not None:
        strengths.append(f"Strongest sub-goal: {_sub_goal_line_en(s.best_sub_goal)}.")
    if s.best_day is not None:
        count = getattr(s.checkins_by_weekday, s.best_day)
        strengths.append(f"Your most active day was {f.day(s.best_day)} ({count} check-ins).")
    if s.badges_unlocked:
        n = len(s.badges_unlocked)
        strengths.append(f"New badges ({n}): {_badges(s.badges_unlocked)}.")

    if s.worst_sub_goal is not None:
        problem = f"The weakest sub-goal was {_sub_goal_line_en(s.worst_sub_goal)}."
    elif f.missed > 0:
        problem = f"{f.missed} due actions were left undone."
    elif s.worst_day is not None:
        count = getattr(s.checkins_by_weekday, s.worst_day)
        problem = f"{f.day(s.worst_day)} had the fewest check-ins ({count})."
    else:
        problem = "No gaps this week: everything due was done."
    vs = s.vs_previous_week
    if vs.completion_rate is not None and vs.completion_rate < 0:
        insight = f"Completion fell {_pct(-vs.completion_rate)} points from last week."
    elif vs.checkins_total < 0:
        insight = f"That is {-vs.checkins_total} check-ins fewer than last week."
    elif vs.checkins_total > 0:
        insight = f"That is {vs.checkins_total} check-ins more than last week: keep the rhythm."
    else:
        insight = "Small, regular check-ins keep a streak alive more than big days do."

    steps: list[str] = []
    if s.worst_sub_goal is not None:
        target = short_title(s.worst_sub_goal.title)
        goal = f"Give “{target}” more attention next week"
        when = f" on {f.day(s.worst_day)}" if s.worst_day else ""
        steps.append(f"Plan one action of “{target}” first thing{when}")
    else:
        goal = f"Check in on at least {s.days_active} days again next week"
    if f.favourite_period is not None:
        steps.append(f"Keep your check-ins {f.favourite_period}, when you are most regular")
    steps.append(f"Beat this week's {s.checkins_total} check-ins")
    return Summary(
        headline=headline,
        key_metrics=[completion, xp, streak],
        strengths=" ".join(strengths),
        improvements=Improvements(problem=problem, insight=insight),
        action_plan=ActionPlan(goal=goal, steps=steps),
    )


def _korean(f: _Facts) -> Summary:
    s = f.stats
    rate = s.completion_rate
    headline = f"7일 중 {s.days_active}일, 체크인 {s.checkins_total}회"
    if rate is not None:
        headline += f" · 달성률 {_pct(rate)}%"
    completion = (
        f"달성률: {_pct(rate)}% (해야 할 {s.due_total}개 중 {s.done_total}개)"
        if rate is not None
        else "이번 주에는 해야 할 실천이 없었어요"
    )
    xp = f"획득 XP: {s.xp_gained}"
    if s.levels_gained:
        xp += f", 레벨 {s.levels_gained}단계 상승"
    streak = f"연속 기록: {s.streak_current}일 (최고 {s.streak_best}일)"

    strengths = [f"{s.days_active}일 동안 {s.checkins_total}번 체크인했어요."]
    if s.best_sub_goal is not None:
        strengths.append(f"가장 잘한 세부 목표는 {_sub_goal_line_ko(s.best_sub_goal)}예요.")
    if s.best_day is not None:
        count = getattr(s.checkins_by_weekday, s.best_day)
        strengths.append(f"가장 활발한 요일은 {f.day(s.best_day)}이에요 (체크인 {count}회).")
    if s.badges_unlocked:
        n = len(s.badges_unlocked)
        strengths.append(f"새 배지 {n}개: {_badges(s.badges_unlocked)}.")

    if s.worst_sub_goal is not None:
        problem = f"가장 아쉬운 세부 목표는 {_sub_goal_line_ko(s.worst_sub_goal)}예요."
    elif f.missed > 0:
        problem = f"해야 할 실천 {f.missed}개를 하지 못했어요."
    elif s.worst_day is not None:
        count = getattr(s.checkins_by_weekday, s.worst_day)
        problem = f"{f.day(s.worst_day)}에 체크인이 가장 적었어요 ({count}회)."
    else:
        problem = "이번 주에는 해야 할 일을 모두 해냈어요."
    vs = s.vs_previous_week
    if vs.completion_rate is not None and vs.completion_rate < 0:
        insight = f"지난주보다 달성률이 {_pct(-vs.completion_rate)}%p 낮아졌어요."
    elif vs.checkins_total < 0:
        insight = f"지난주보다 체크인이 {-vs.checkins_total}회 줄었어요."
    elif vs.checkins_total > 0:
        insight = f"지난주보다 체크인이 {vs.checkins_total}회 늘었어요. 이 흐름을 이어가세요."
    else:
        insight = "큰 하루보다 작고 꾸준한 체크인이 연속 기록을 지켜줘요."

    steps: list[str] = []
    if s.worst_sub_goal is not None:
        target = short_title(s.worst_sub_goal.title)
        goal = f"다음 주에는 “{target}”에 더 집중하기"
        when = f"{f.day(s.worst_day)} " if s.worst_day else ""
        steps.append(f"{when}하루를 “{target}”의 실천 하나로 시작하기")
    else:
        goal = f"다음 주에도 {s.days_active}일 이상 체크인하기"
    if f.favourite_period is not None:
        steps.append(f"가장 꾸준했던 {f.favourite_period} 시간대에 체크인 이어가기")
    steps.append(f"이번 주 체크인 {s.checkins_total}회 넘기기")
    return Summary(
        headline=headline,
        key_metrics=[completion, xp, streak],
        strengths=" ".join(strengths),
        improvements=Improvements(problem=problem, insight=insight),
        action_plan=ActionPlan(goal=goal, steps=steps),
    )


def fallback_summary(stats: WeeklyStats, locale: Locale) -> Summary:
    """The deterministic summary of a fold in the user's locale."""
    facts = _Facts(stats, locale)
    return _korean(facts) if locale == "ko" else _english(facts)

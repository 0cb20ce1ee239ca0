"""The words of each notification kind, in Korean and English, and where it leads in the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from notifications.domain.model import Decision, Kind, Locale


@dataclass(frozen=True, slots=True)
class Text:
    """A notification's title, body and deep link."""

    title: str
    body: str
    deep_link: str


_TEMPLATES: Final[dict[Kind, dict[Locale, tuple[str, str]]]] = {
    "daily_reminder": {
        "ko": ("오늘의 실천", "오늘 할 일이 {left}개 남았어요. 지금 체크해 보세요."),
        "en": ("Today's actions", "{left} action(s) left for today. Tick them off now."),
    },
    "streak_at_risk": {
        "ko": (
            "연속 기록이 끊기기 직전이에요",
            "{streak}일 연속 기록! 오늘 하나만 체크해도 이어져요.",
        ),
        "en": ("Keep your streak", "You're on a {streak}-day streak. One check-in today keeps it."),
    },
    "comeback": {
        "ko": (
            "다시 시작해 볼까요?",
            "마지막 체크 후 {days}일이 지났어요. 오늘 하나부터 시작해요.",
        ),
        "en": (
            "Ready to come back?",
            "It's been {days} days since your last check-in. Start small.",
        ),
    },
    "report_ready": {
        "ko": ("주간 리포트 도착", "{week} 리포트가 준비됐어요. 한 주를 돌아보세요."),
        "en": ("Your weekly report", "Your report for {week} is ready. See how your week went."),
    },
    "badge_unlocked": {
        "ko": ("새 배지 획득!", "'{badge}' 배지를 얻었어요."),
        "en": ("New badge!", "You unlocked the '{badge}' badge."),
    },
    "level_reached": {
        "ko": ("레벨 업!", "레벨 {level}에 도달했어요."),
        "en": ("Level up!", "You reached level {level}."),
    },
}


def deep_link(decision: Decision) -> str:
    """Where the notification opens the app."""
    if decision.kind == "report_ready":
        return f"mandaact://reports/{decision.week}"
    if decision.kind == "badge_unlocked":
        return f"mandaact://badges/{decision.badge}"
    if decision.kind == "level_reached":
        return "mandaact://progress"
    return "mandaact://checklist"


def text_of(decision: Decision, locale: Locale) -> Text:
    """The notification's words in the user's locale."""
    title, body = _TEMPLATES[decision.kind][locale]
    values = {
        "left": decision.left,
        "streak": decision.streak,
        "days": decision.days,
        "week": decision.week,
        "badge": decision.badge,
        "level": decision.level,
    }
    return Text(title.format(**values), body.format(**values), deep_link(decision))

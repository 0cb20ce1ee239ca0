"""The gamification service: the single authority for XP, levels, streaks and badges."""

"""The goals service: users' settings and their mandalart grids."""

"""The goals service's pure domain: the Mandalart aggregate, user settings, the grid layout."""

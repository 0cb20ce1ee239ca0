"""The `mandaact` developer CLI (`mandaact token|seed|tail`); see `mandaact_cli.cli`."""

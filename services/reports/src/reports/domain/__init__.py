"""Pure rules of the weekly report: facts, the fold's fields, the summary and its checks."""

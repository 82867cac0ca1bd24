"""Sales Agent engine: the pure async core (no Slack, no SQL)."""

"""Verdict delivery: the durable outbox, the safety guards and the firewall backends (the
runtime's edge: this package talks to nft, HTTP APIs and SQLite)."""

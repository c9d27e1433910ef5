"""Checks: pure functions turning two snapshots into findings (no severity, no I/O)."""

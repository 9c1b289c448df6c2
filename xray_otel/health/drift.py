"""Pure statistics for change detection: window against baseline, runs as the unit (no I/O)."""

"""Pipeline health over time (issue 20): what changed in a pipeline's steps, and the statistics that say
how sure. ``drift.py`` is pure statistics (no I/O); ``changes.py`` gathers the figures through the
store's reads and hands them to it. Imports store and pure modules only: never receiver, queries or
aiohttp, so the alert evaluator and the REST queries can both call it."""

"""The map stage, pure: decoded spans and legacy events in, run and step rows out. No I/O, no
protocol, no auth: rows.py is what it hands the store, spans.py maps OTLP spans (semconv.py reads
other instrumentations' attributes, values.py makes values PostgreSQL takes), legacy.py maps the
original X-Ray SDK's events."""

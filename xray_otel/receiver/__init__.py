"""OTLP receiver: protocol edges (HTTP now) over one decode → map → store path."""

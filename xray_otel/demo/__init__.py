"""The competitor-selection example pipeline and the ``xray-otel demo`` command behind it."""

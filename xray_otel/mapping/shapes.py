"""The shape of what the span mapper reads: an OTLP ExportTraceServiceRequest.

Both the protobuf messages (opentelemetry-proto) and the OTLP/JSON decoder's structs
(receiver/otlp_json.py) satisfy these protocols, field for field, so the mapper has one input type
and no protocol knowledge. Ids are bytes, times integer nanoseconds, enums integers; attribute
values are read by values.any_value, which takes either kind of AnyValue.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class KeyValue(Protocol):
    key: str
    value: Any  # an AnyValue: its WhichOneof("value") names the field set


class Status(Protocol):
    code: int
    message: str


class Event(Protocol):
    time_unix_nano: int
    name: str
    attributes: Sequence[KeyValue]


class Link(Protocol):
    trace_id: bytes
    span_id: bytes
    attributes: Sequence[KeyValue]


class Span(Protocol):
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    trace_state: str
    flags: int
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: Sequence[KeyValue]
    events: Sequence[Event]
    links: Sequence[Link]
    status: Status


class Scope(Protocol):
    name: str
    version: str


class ScopeSpans(Protocol):
    scope: Scope
    spans: Sequence[Span]


class Resource(Protocol):
    attributes: Sequence[KeyValue]


class ResourceSpans(Protocol):
    resource: Resource
    scope_spans: Sequence[ScopeSpans]


class ExportRequest(Protocol):
    resource_spans: Sequence[ResourceSpans]

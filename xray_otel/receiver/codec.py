"""OTLP request and response encodings, one codec per content type.

Protobuf uses the generated messages (C/upb backend). OTLP JSON differs from
protobuf's canonical JSON mapping in one way that matters: trace and span ids are
hex strings, not base64. The JSON codec turns them into bytes itself and lets
json_format do the rest (camelCase and snake_case names, enum names or numbers,
64-bit integers as strings or numbers, unknown fields ignored).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .errors import BadRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class ProtobufCodec:
    content_type = PROTOBUF

    def decode(self, body: bytes) -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"body is not a valid protobuf ExportTraceServiceRequest: {exc}") from None
        return request

    def encode_response(self, rejected: int, message: str) -> bytes:
        return export_response(rejected, message).SerializeToString()

    def encode_status(self, code: int, message: str) -> bytes:
        return status_pb2.Status(code=code, message=message).SerializeToString()


class JsonCodec:
    content_type = JSON

    def decode(self, body: bytes) -> ExportTraceServiceRequest:
        try:
            document = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise BadRequest("OTLP JSON body must be an object with a resourceSpans array")
        try:
            _ids_to_base64(document)
            return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
            raise BadRequest(f"body is not a valid OTLP JSON ExportTraceServiceRequest: {exc}") from None

    def encode_response(self, rejected: int, message: str) -> bytes:
        return json_format.MessageToJson(export_response(rejected, message), indent=None).encode()

    def encode_status(self, code: int, message: str) -> bytes:
        return json.dumps({"code": code, "message": message}).encode()


CODECS: dict[str, ProtobufCodec | JsonCodec] = {
    PROTOBUF: ProtobufCodec(),
    "application/protobuf": ProtobufCodec(),
    JSON: JsonCodec(),
}


def codec_for(content_type: str) -> ProtobufCodec | JsonCodec | None:
    """The codec for a MIME type (parameters such as charset already stripped), or None."""
    return CODECS.get(content_type.lower())


def export_response(rejected: int, message: str) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response


_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite hex ids in place to the base64 json_format expects (spans and their links)."""
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _fix_ids(span)
                for link in _list(span, "links"):
                    _fix_ids(link)


def _list(obj: Any, *keys: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"expected an object, got {type(obj).__name__}")
    present = [key for key in keys if key in obj]
    if len(present) > 1:  # json_format would keep one and silently drop the other
        raise BadRequest(f"field given twice, as {present[0]!r} and {present[1]!r}")
    for key in keys:
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise BadRequest(f"field {key!r} must be an array")
            return value
    return []


def _fix_ids(obj: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = _hex_to_base64(value)


def _hex_to_base64(value: str) -> str:
    """Hex per the OTLP spec; a value that is not hex is taken as base64 (some exporters send that),
    standard or URL-safe, with or without padding, as proto3 JSON allows."""
    if len(value) % 2 == 0:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            pass
    standard = value.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"id {value[:40]!r} is neither hex nor base64") from None
    return base64.b64encode(raw).decode()

"""OTLP request and response encodings, one codec per content type.

Protobuf uses the generated messages (C/upb backend). OTLP JSON differs from protobuf's canonical
JSON mapping in one way that matters: trace and span ids are hex strings, not base64. json_format
cannot read that, so the JSON codec decodes with otlp_json, into structs the mapping reads as it
reads the messages; otlp_json's errors name the field.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from . import otlp_json
from .errors import BadRequest
from .otlp_json import parse_json  # noqa: F401 - legacy.py reads its JSON bodies by the same rule

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

    def decode(self, body: bytes) -> otlp_json.ExportTraceServiceRequest:
        return otlp_json.decode(body)

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


def json_decoder(request: Any) -> str:
    """How otlp_json read a JSON request, for /metrics: "typed" (msgspec straight into the structs, the common
    case) or "messages" (parsed, then walked field by field: a snake_case body, or one the typed pass stopped at;
    the label keeps the name it had when that walk built protobuf messages)."""
    return "typed" if request.typed_pass else "messages"


def export_response(rejected: int, message: str) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if rejected or message:  # a message alone is a warning: everything was stored
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response

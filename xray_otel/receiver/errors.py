"""Receiver errors: each carries its gRPC code and HTTP status, mapped in one place.

Retryable errors (503, 429) tell OTLP exporters to back off and send again;
everything a client got wrong is a 4xx that it must not retry.
"""

from __future__ import annotations

# google.rpc.Code values used by OTLP.
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class ReceiverError(Exception):
    """An error with the status an exporter should see."""

    http_status = 500
    grpc_code = 13  # INTERNAL
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ReceiverError):
    http_status, grpc_code = 400, INVALID_ARGUMENT


class Unauthenticated(ReceiverError):
    http_status, grpc_code = 401, UNAUTHENTICATED


class PermissionDenied(ReceiverError):
    http_status, grpc_code = 403, PERMISSION_DENIED


AUTH_ERRORS = {401: Unauthenticated, 403: PermissionDenied}
"""auth.AuthError.status → the ReceiverError an exporter sees."""


class MethodNotAllowed(ReceiverError):
    http_status, grpc_code = 405, UNIMPLEMENTED


class RequestTimeout(ReceiverError):
    http_status, grpc_code = 408, DEADLINE_EXCEEDED


class PayloadTooLarge(ReceiverError):
    http_status, grpc_code = 413, RESOURCE_EXHAUSTED


class UnsupportedMediaType(ReceiverError):
    http_status, grpc_code = 415, UNIMPLEMENTED


class Unavailable(ReceiverError):
    """The database cannot take the write now; the exporter should retry."""

    http_status, grpc_code = 503, UNAVAILABLE

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after

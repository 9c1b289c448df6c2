"""OTLP/gRPC: TraceService/Export on grpcio's asyncio server, in the HTTP side's event loop.

It feeds the same Ingester as POST /v1/traces. The request arrives as bytes and is
decoded by the same protobuf codec, so a malformed message is INVALID_ARGUMENT (not
grpcio's generic INTERNAL), and every ReceiverError maps to its gRPC code (errors.py):
UNAVAILABLE tells exporters to retry, INVALID_ARGUMENT not to. gzip and the message
size limit (on the decompressed message, RESOURCE_EXHAUSTED beyond) are grpcio's own.
"""

from __future__ import annotations

import grpc

from ..auth import INGEST, AuthError, KeyRing, presented_key
from ..metrics import outcome_of
from .codec import ProtobufCodec, export_response
from .errors import AUTH_ERRORS, ReceiverError
from .ingest import Ingester

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_CODEC = ProtobufCodec()


def trace_service(ingester: Ingester, keys: KeyRing) -> grpc.GenericRpcHandler:
    """The Export method, bytes in and bytes out; with keys configured, an ``ingest`` key in the metadata."""

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        with ingester.metrics.request("grpc") as set_outcome:
            try:
                project = _authorize(keys, context)
                async with ingester.slot():
                    rejected, message = await ingester.export(_CODEC.decode(body), project)
            except ReceiverError as exc:
                set_outcome(outcome_of(exc))
                await context.abort(_CODES.get(exc.grpc_code, grpc.StatusCode.INTERNAL), exc.message)
            if rejected:
                set_outcome("partial")
        return export_response(rejected, message).SerializeToString()

    return grpc.method_handlers_generic_handler(SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)})


# OTLP signals this receiver does not store: answered success (an empty response), counted in /metrics.
IGNORED_SERVICES = {"opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
                    "opentelemetry.proto.collector.logs.v1.LogsService": "logs"}


def ignored_service(service: str, ingester: Ingester, keys: KeyRing) -> grpc.GenericRpcHandler:
    signal = IGNORED_SERVICES[service]

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            _authorize(keys, context)
        except ReceiverError as exc:
            await context.abort(_CODES.get(exc.grpc_code, grpc.StatusCode.INTERNAL), exc.message)
        ingester.metrics.ignored.labels(signal, "grpc").inc()
        ingester.metrics.ignored_bytes.labels(signal, "grpc").inc(len(body))
        return b""

    return grpc.method_handlers_generic_handler(service, {"Export": grpc.unary_unary_rpc_method_handler(export)})


def _authorize(keys: KeyRing, context: grpc.aio.ServicerContext) -> str | None:
    """The key's project (None: any); an auth ReceiverError when the metadata carries no usable key."""
    if not keys.enabled:
        return None
    metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
    try:
        return keys.check(presented_key(metadata.get("authorization"), metadata.get("x-api-key")), INGEST)
    except AuthError as exc:
        raise AUTH_ERRORS[exc.status](exc.message) from None


async def start_grpc(ingester: Ingester, keys: KeyRing, host: str, port: int, max_message_bytes: int, *,
                     reuse_port: bool = False) -> grpc.aio.Server:
    """Listen on host:port; the caller stops it with ``await server.stop(grace)``.

    Without ``reuse_port`` a port already taken is an error, not a silent second listener.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", int(reuse_port)),
    ])
    server.add_generic_rpc_handlers((trace_service(ingester, keys),
                                     *(ignored_service(name, ingester, keys) for name in IGNORED_SERVICES)))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # newer grpcio raises instead of returning 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}: port in use? (set --grpc-port, or 0 to disable)")
    await server.start()
    return server

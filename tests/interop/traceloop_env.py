"""traceloop-sdk's own venv, built on first use from traceloop-requirements.txt (why it is not in the
project's venv is said there) and reused while that file is unchanged.

Where: ``$XRAY_INTEROP_VENVS`` else ``~/.cache/xray-otel-interop``, one directory per hash of the
requirements. Building it takes about half a minute (pip, from the package index); later runs only
start the app.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("traceloop-requirements.txt")


def venv_root() -> Path:
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    base = Path(os.environ.get("XRAY_INTEROP_VENVS") or Path.home() / ".cache" / "xray-otel-interop")
    return base / f"traceloop-{key}"


def traceloop_python() -> Path:
    """The venv's python, building the venv first if needed (one builder at a time)."""
    root = venv_root()
    python = root / "bin" / "python"
    done = root / ".complete"
    if done.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return python
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        built = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                "-r", str(REQUIREMENTS)], capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"could not build traceloop's venv at {root}:\n{built.stderr[-3000:]}")
        done.write_text("ok\n")
    return python

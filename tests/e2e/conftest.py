"""The whole local runtime (`python -m chalicelib.local run`), started once for the e2e tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chalicelib.local.processes import ROOT, free_port
from tests.helpers import wait_for

OPERATOR = "op_e2e_operator_key_abcdefghijklmnop"


def start_service(local_dir: Path) -> tuple[dict, subprocess.Popen]:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTS_")}
    env.update(SEGMENTS_PORT=str(free_port()), SEGMENTS_LOCAL_DIR=str(local_dir),
               SEGMENTS_OPERATOR_KEY=OPERATOR)
    process = subprocess.Popen([sys.executable, "-m", "chalicelib.local", "run"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    runtime_file = local_dir / "runtime.json"
    started = time.monotonic()
    wait_for(lambda: runtime_file.exists() or process.poll() is not None, 90, "runtime.json")
    if process.poll() is not None:
        raise AssertionError(process.stdout.read().decode())  # type: ignore[union-attr]
    runtime = json.loads(runtime_file.read_text())
    runtime["startup_seconds"] = time.monotonic() - started
    return runtime, process


def kill(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    runtime, process = start_service(Path(tmp_path_factory.mktemp("local")))
    yield runtime, process
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)

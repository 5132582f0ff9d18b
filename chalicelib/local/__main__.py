"""The local runtime.

    python -m chalicelib.local run            DynamoDB Local + S3/SQS endpoint + tables and
                                              bucket + demo + HTTP API + event runtime
    python -m chalicelib.local dead-letters   list records that failed past the retry bound
    python -m chalicelib.local redrive [ID]   deliver them (or one) again; handled ones go

Environment: SEGMENTS_PORT (8000), SEGMENTS_OPERATOR_KEY (random), SEGMENTS_DATA_DIR (keep the
database there; in memory when unset), SEGMENTS_DEMO=0 (no demo workspace), SEGMENTS_LOCAL_DIR
(.local: runtime.json and logs), SEGMENTS_SCHEDULE_SECONDS (shorten every schedule).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from chalicelib.local.processes import (
    ROOT,
    LocalRuntimeError,
    free_port,
    spawn,
    start_dynamodb_local,
    start_moto_server,
    stop,
    wait_for_http,
)
from chalicelib.settings import get_settings, reset_settings


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # as the HTTP server binds: connections lingering in TIME_WAIT do not hold the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _demo(data_dir: str | None) -> dict[str, str] | None:
    if os.environ.get("SEGMENTS_DEMO", "1") == "0":
        return None
    from chalicelib.local.demo import seed_demo

    saved = Path(data_dir) / "demo.json" if data_dir else None
    if saved and saved.exists():
        return dict(json.loads(saved.read_text()))
    demo = seed_demo()
    if saved:
        saved.write_text(json.dumps(demo))
    return demo


def run() -> int:
    local_dir = Path(os.environ.get("SEGMENTS_LOCAL_DIR", ROOT / ".local"))
    logs = local_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    api_port = int(os.environ.get("SEGMENTS_PORT", "8000"))
    if not _port_free(api_port):
        print(f"port {api_port} is in use: stop what runs there or set SEGMENTS_PORT",
              file=sys.stderr)
        return 2
    data_dir = os.environ.get("SEGMENTS_DATA_DIR") or None
    started = time.monotonic()
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)  # even where a shell started us with it ignored
    try:
        dynamodb_port, moto_port = free_port(), free_port()
        children.append(start_dynamodb_local(dynamodb_port, data_dir=data_dir,
                                             log=logs / "dynamodb.log"))
        children.append(start_moto_server(moto_port, log=logs / "s3.log"))
        os.environ.update({
            "SEGMENTS_STAGE": "local",
            "SEGMENTS_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{dynamodb_port}",
            "SEGMENTS_S3_ENDPOINT": f"http://127.0.0.1:{moto_port}",
            "SEGMENTS_SQS_ENDPOINT": f"http://127.0.0.1:{moto_port}",
            "SEGMENTS_OPERATOR_KEY": os.environ.get("SEGMENTS_OPERATOR_KEY")
            or f"op_{secrets.token_urlsafe(24)}",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "POWERTOOLS_SERVICE_NAME": "segments",
            "POWERTOOLS_TRACE_DISABLED": "true",
        })
        reset_settings()
        settings = get_settings()
        from chalicelib.local.bootstrap import bootstrap

        bootstrap(settings)
        demo = _demo(data_dir)
        api_url = f"http://127.0.0.1:{api_port}"
        api = spawn([sys.executable, "-m", "chalicelib.local.http_server", str(api_port)],
                    log=logs / "api.log", env=dict(os.environ), cwd=ROOT)
        children.append(api)
        children.append(spawn([sys.executable, "-m", "chalicelib.local.events"],
                              log=logs / "events.log", env=dict(os.environ), cwd=ROOT))
        wait_for_http(f"{api_url}/health", api)
        runtime = {
            "api_url": api_url,
            "operator_key": settings.operator_key,
            "s3_endpoint": settings.s3_endpoint,
            "imports_bucket": settings.imports_bucket,
            "dynamodb_endpoint": settings.dynamodb_endpoint,
            "data_dir": data_dir,
            "logs": str(logs),
            "demo_workspace_id": demo["workspace_id"] if demo else None,
            "demo_admin_key": demo["admin_key"] if demo else None,
        }
        (local_dir / "runtime.json").write_text(json.dumps(runtime, indent=2))
        print(f"Segments is running ({time.monotonic() - started:.1f}s). Ctrl-C stops it.")
        for name, value in runtime.items():
            print(f"  {name:18} {value}")
        print(f"  written to         {local_dir / 'runtime.json'}", flush=True)
        while True:
            for child in children:
                if child.poll() is not None:
                    raise LocalRuntimeError(
                        f"a child process exited ({child.args!r:.120}, "
                        f"code {child.returncode}); see the logs in {logs}")
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        print("\nstopping ...", flush=True)
        return 0
    except LocalRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            stop(child)


def dead_letters() -> int:
    """Print the dead letters of the running local runtime (found through runtime.json)."""
    from chalicelib.adapters import deps
    from chalicelib.domain.identity import OPERATOR

    if not _bind_running_runtime():
        return 1
    service, cursor, count = deps.dead_letters({}), None, 0
    while True:
        page = service.page(OPERATOR, 200, cursor)
        for letter in page.items:
            print(json.dumps(letter))
        count += len(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    print(f"{count} dead letter(s)", file=sys.stderr)
    return 0


def redrive() -> int:
    """`redrive [ID]`: deliver dead letters again to their function; handled ones go."""
    import importlib

    from chalicelib.adapters import deps
    from chalicelib.domain.errors import NotFound
    from chalicelib.domain.identity import OPERATOR

    if not _bind_running_runtime():
        return 1
    sys.path.insert(0, str(ROOT))
    app = importlib.import_module(os.environ.get("SEGMENTS_APP_MODULE", "app")).app
    service = deps.dead_letters(app.handler_map)
    if len(sys.argv) > 2:
        try:
            results = [service.redrive(OPERATOR, sys.argv[2])]
        except NotFound:
            print(f"no dead letter {sys.argv[2]!r}: `make dead-letters` lists them",
                  file=sys.stderr)
            return 1
    else:
        results = service.redrive_all(OPERATOR)
    for result in results:
        if not result.handled:
            print(f"{result.id}: still failing: {result.error}", file=sys.stderr)
    handled = sum(1 for result in results if result.handled)
    print(f"re-driven: {handled} handled, {len(results) - handled} still failing")
    return 0 if handled == len(results) else 1


def _bind_running_runtime() -> bool:
    from chalicelib.persistence import tables

    runtime_file = Path(os.environ.get("SEGMENTS_LOCAL_DIR", ROOT / ".local")) / "runtime.json"
    if not os.environ.get("SEGMENTS_DYNAMODB_ENDPOINT"):
        if not runtime_file.exists():
            print(f"no {runtime_file}: start the service with `make run` first", file=sys.stderr)
            return False
        os.environ["SEGMENTS_DYNAMODB_ENDPOINT"] = json.loads(runtime_file.read_text())[
            "dynamodb_endpoint"]
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        reset_settings()
    tables.bind()
    return True


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    commands = {"run": run, "dead-letters": dead_letters, "redrive": redrive}
    if command not in commands:
        print(__doc__)
        return 2
    return commands[command]()


if __name__ == "__main__":
    sys.exit(main())

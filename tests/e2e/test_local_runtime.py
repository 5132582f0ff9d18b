"""`python -m chalicelib.local run` (what `make run` starts), driven over HTTP as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from chalicelib.local.processes import ROOT
from tests.e2e.conftest import OPERATOR, kill, start_service
from tests.helpers import wait_for as _wait

pytestmark = pytest.mark.e2e


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def test_runtime_json_and_health(service):
    runtime, _ = service
    assert set(runtime) >= {"api_url", "operator_key", "s3_endpoint", "imports_bucket",
                            "dynamodb_endpoint"}
    assert runtime["operator_key"] == OPERATOR
    assert requests.get(f"{runtime['api_url']}/health", timeout=5).json()["status"] == "ok"
    # the demo workspace is seeded, its admin key printed next to the operator key
    demo = requests.get(f"{runtime['api_url']}/workspace", timeout=5,
                        headers={"Authorization": f"Bearer {runtime['demo_admin_key']}"})
    assert demo.status_code == 200
    assert _wait(lambda: requests.get(
        f"{runtime['api_url']}/workspace", timeout=5,
        headers={"Authorization": f"Bearer {runtime['demo_admin_key']}"}).json()["counts"][
        "contacts"] == 6, what="demo counts")


def test_a_user_session_and_the_streams_really_pump(service):
    runtime, _ = service
    api = runtime["api_url"]

    def call(method: str, path: str, key: str, body=None):  # type: ignore[no-untyped-def]
        return requests.request(method, f"{api}{path}", json=body, timeout=10,
                                headers={"Authorization": f"Bearer {key}"})

    made = call("POST", "/workspaces", OPERATOR, {"name": "E2E"})
    assert made.status_code == 201
    admin = made.json()["admin_key"]
    member = call("POST", "/api-keys", admin, {"user_id": "m@x.io", "role": "member"})
    assert member.status_code == 201
    member_key = member.json()["key"]
    assert call("POST", "/api-keys", member_key, {"user_id": "x", "role": "admin"}
                ).status_code == 403

    org = call("POST", "/organizations", member_key, {"name": "Acme", "domain": "acme.io"})
    assert org.status_code == 201
    contacts = [call("POST", "/contacts", member_key,
                     {"email": f"p{i}@acme.io", "org_id": org.json()["id"],
                      "tags": ["Economic buyer"]}).json() for i in range(3)]
    activity = call("POST", "/activities", member_key,
                    {"contact_id": contacts[0]["id"], "type": "github.star",
                     "occurred_at": "2026-12-01T00:00:00Z"})
    assert activity.status_code == 201

    # the records stream consumer ran for those writes: counts and last_active_at follow
    def counted():  # type: ignore[no-untyped-def]
        counts = call("GET", "/workspace", member_key).json()["counts"]
        return counts == {"contacts": 3, "organizations": 1, "activities": 1}

    _wait(counted, what="stream consumer to count the writes")
    profile = _wait(lambda: (p := call("GET", f"/contacts/{contacts[0]['id']}",
                                       member_key).json())["last_active_at"] and p,
                    what="last_active_at")
    assert profile["last_active_at"] == "2026-12-01T00:00:00Z"
    assert profile["organization"]["domain"] == "acme.io"

    assert call("DELETE", f"/contacts/{contacts[2]['id']}", member_key).status_code == 204
    _wait(lambda: call("GET", "/workspace", member_key).json()["counts"]["contacts"] == 2,
          what="delete counted")
    bad = call("POST", "/contacts", member_key, {"email": "p0@ACME.io"})
    assert bad.status_code == 409 and bad.json()["error"]["details"]["existing_id"] == \
        contacts[0]["id"]


def test_the_readme_tour_runs_as_written(service):
    runtime, _ = service
    readme = (ROOT / "README.md").read_text()
    # the tour, then every later shell example (filters, segments), in one shell session
    after = readme.split("In another terminal:\n\n", 1)[1]
    tour = "\n".join(block.split("```", 1)[0] for block in after.split("```sh\n")[1:])
    script = "set -euo pipefail\n" + tour.replace("http://127.0.0.1:8000", runtime["api_url"]) \
        .replace("op_tour_key", OPERATOR)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"code": "email_taken"' in done.stdout
    assert '"last_active_at": "2026-12-01T09:00:00Z"' in done.stdout
    assert '"path": "$.tags[1]"' in done.stdout
    assert '"count": 1' in done.stdout  # the filters example's preview
    assert '"name": "Economic buyers who fit the persona"' in done.stdout


def test_operator_lists_dead_letters_of_the_running_runtime(service):
    runtime, _ = service
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTS_")}
    env["SEGMENTS_LOCAL_DIR"] = str(Path(runtime["logs"]).parent)
    done = subprocess.run([sys.executable, "-m", "chalicelib.local", "dead-letters"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 dead letter(s)" in done.stderr
    # the same list over the API, for the operator key only
    url = f"{runtime['api_url']}/admin/dead-letters"
    listed = requests.get(url, timeout=5, headers={"Authorization": f"Bearer {OPERATOR}"})
    assert listed.status_code == 200 and listed.json() == {"items": [], "next_cursor": None}
    demo = requests.get(url, timeout=5,
                        headers={"Authorization": f"Bearer {runtime['demo_admin_key']}"})
    assert demo.status_code == 403


def test_sigterm_stops_every_child(tmp_path):
    runtime, process = start_service(tmp_path)
    try:
        _stop_and_check(runtime, process)
    finally:
        kill(process)


def _stop_and_check(runtime, process):  # type: ignore[no-untyped-def]
    assert _port_open(runtime["dynamodb_endpoint"]) and _port_open(runtime["api_url"])
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == 0
    for url in (runtime["api_url"], runtime["dynamodb_endpoint"], runtime["s3_endpoint"]):
        assert not _port_open(url), f"{url} still answers after the runtime stopped"

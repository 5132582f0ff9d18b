"""SIGKILL the event runtime in the middle of a load while the database lives on: a new
runtime resumes from its stream checkpoints and converges to the full recompute."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

from chalicelib.local.processes import ROOT
from tests.helpers import every_page, wait_for


def event_runtime() -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, "SEGMENTS_APP_MODULE": "app"}
    return subprocess.Popen([sys.executable, "-m", "chalicelib.local.events"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_a_killed_runtime_resumes_and_converges(http, workspace, settings):
    from app import app
    from chalicelib.adapters import deps
    from chalicelib.domain.identity import Principal, Role
    from chalicelib.local.events import EventRuntime

    key = workspace.admin_key
    here = EventRuntime(app, settings)
    here.skip_to_latest(save=True)  # the runtime processes start at this point of the stream
    seg = http("POST", "/segments", key, {"kind": "contact", "name": "Buyers", "rules": {
        "add": {"field": "tags", "op": "has_any", "value": ["buyer"]}}}).body["id"]
    here.drain()
    admin = Principal(workspace_id=workspace.id, user_id="admin", role=Role.ADMIN)
    service = deps.segments()
    rng = random.Random(5)
    contacts: list[str] = []

    def load(steps: int) -> None:
        for _ in range(steps):
            if not contacts or rng.random() < 0.5:
                contacts.append(http("POST", "/contacts", key, {
                    "name": "x", "tags": rng.choice([["buyer"], []])}).body["id"])
            else:
                http("PATCH", f"/contacts/{rng.choice(contacts)}", key,
                     {"tags": rng.choice([["buyer"], ["other"]])})

    first = event_runtime()
    try:
        load(60)
        wait_for(lambda: service.get(admin, seg).member_count > 0, 60, "the runtime at work")
        load(60)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    load(60)  # changes keep coming while no runtime runs
    second = event_runtime()
    try:
        def converged() -> bool:
            current = service.get(admin, seg)
            diff = service.diff(current, current.rules)
            return (diff.would_add, diff.would_remove) == (0, 0)

        wait_for(converged, 120, "convergence after the restart", every=0.5)
    finally:
        os.killpg(second.pid, signal.SIGKILL)
        second.wait()
    members = service.get(admin, seg).member_count
    listed = http("GET", f"/segments/{seg}/members?limit=200", key).body["items"]
    assert members == len(listed) > 0
    events = every_page(lambda cursor: service.history(admin, seg, 200, cursor))
    assert sum(1 if e["action"] == "added" else -1 for e in events) == members

"""Freshness: from a contact PATCH answered to the membership visible over the API, on the
running local runtime (`python -m chalicelib.local run`), p50/p95 over 200 changes.

The evaluator's cost per change with 1,000 segments (field index vs evaluating all of them)
is measured by bench/filters.py ("1,000 segment filters, one changed field"): the live
evaluator re-checks exactly the segments that FieldIndex.affected() names.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import report
from chalicelib.local.processes import ROOT, free_port, wait_for

OPERATOR = "op_bench_freshness_operator_key"


def run() -> dict[str, float]:
    changes = int(os.environ.get("BENCH_FRESHNESS_CHANGES", "200"))
    local = Path(tempfile.mkdtemp(prefix="segments-freshness-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTS_")}
    env.update(SEGMENTS_PORT=str(free_port()), SEGMENTS_LOCAL_DIR=str(local), SEGMENTS_DEMO="0",
               SEGMENTS_OPERATOR_KEY=OPERATOR)
    service = subprocess.Popen([sys.executable, "-m", "chalicelib.local", "run"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for(lambda: (local / "runtime.json").exists(), 120, "runtime.json", every=0.2)
        api = json.loads((local / "runtime.json").read_text())["api_url"]
        http = requests.Session()

        def call(method: str, path: str, key: str, body: Any = None) -> Any:
            answer = http.request(method, f"{api}{path}", json=body, timeout=30,
                                  headers={"Authorization": f"Bearer {key}"})
            answer.raise_for_status()
            return answer.json() if answer.content else None

        key = call("POST", "/workspaces", OPERATOR, {"name": "freshness"})["admin_key"]
        contacts = [call("POST", "/contacts", key, {"name": f"p{i}", "tags": []})["id"]
                    for i in range(50)]
        segment = call("POST", "/segments", key, {"kind": "contact", "name": "Buyers",
                                                  "rules": {"add": {"field": "tags",
                                                                    "op": "has_any",
                                                                    "value": ["buyer"]}}})
        wait_for(lambda: call("GET", f"/segments/{segment['id']}", key)["status"] == "ready",
                 60, "the segment's backfill")
        latencies = []
        for i in range(changes):
            contact = contacts[i % len(contacts)]
            joining = (i // len(contacts)) % 2 == 0
            call("PATCH", f"/contacts/{contact}", key, {"tags": ["buyer"] if joining else []})
            answered = time.perf_counter()
            def visible(contact: str = contact, joining: bool = joining) -> bool:
                explained = call("GET", f"/segments/{segment['id']}/explain/{contact}", key)
                return bool(explained["member"] == joining)

            wait_for(visible, 30, "the change in the segment", every=0.01)
            latencies.append(time.perf_counter() - answered)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=30)
    ordered = sorted(latencies)
    result = {"changes": float(changes), "p50_s": statistics.median(ordered),
              "p95_s": ordered[int(len(ordered) * 0.95) - 1], "max_s": ordered[-1]}
    report(f"freshness on the local runtime ({changes} contact changes)", [
        ("PATCH answered -> membership visible, p50", f"{result['p50_s'] * 1000:.0f} ms"),
        ("p95", f"{result['p95_s'] * 1000:.0f} ms (goal <= 1000 ms)"),
        ("max", f"{result['max_s'] * 1000:.0f} ms"),
    ])
    return result


if __name__ == "__main__":
    run()

"""Records API write throughput vs raw PynamoDB writes to the same DynamoDB Local.

Three ways to store N contacts, interleaved in rounds so drift on a noisy machine hits all:
- api: POST /contacts through the Chalice handler (auth lookup, validation, a transaction
  of the contact and its email claim), via chalice.test.Client;
- raw_put: one PynamoDB save() per contact (no uniqueness, no auth);
- raw_same_ops: the same DynamoDB operations the API must do, in raw PynamoDB (GetItem of
  the key + TransactWrite of contact and claim): what our code adds on top of the database.
"""

from __future__ import annotations

import json
import os
import statistics
import uuid

from bench.common import fresh_dynamodb, report, timed


def run() -> dict[str, float]:
    n = int(os.environ.get("BENCH_RECORDS_N", "300"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "6"))
    with fresh_dynamodb():
        from chalice.test import Client
        from pynamodb.transactions import TransactWrite

        from app import app
        from chalicelib.persistence.models import ApiKeyItem, ContactItem, UniqueClaimItem
        from chalicelib.persistence.repositories import contact_pk
        from chalicelib.persistence.tables import connection

        with Client(app, stage_name="local") as client:
            made = client.http.post("/workspaces", body=json.dumps({"name": "bench"}), headers={
                "Authorization": "Bearer op_bench_operator_key_0123456789",
                "Content-Type": "application/json"})
            body = json.loads(made.body)
            admin, workspace_id = body["admin_key"], body["workspace_id"]
            headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
            prefix = admin.split("_")[1]

            def api() -> None:
                tag = uuid.uuid4().hex[:8]
                for i in range(n):
                    answer = client.http.post("/contacts", headers=headers, body=json.dumps({
                        "email": f"{tag}{i}@bench.io", "name": f"P{i}", "tags": ["Bench"],
                        "attributes": {"i": i}}))
                    assert answer.status_code == 201, answer.body

            def item(i: int, tag: str) -> ContactItem:
                contact_id = f"c_{tag}{i}"
                return ContactItem(contact_pk(workspace_id, contact_id), contact_id,
                                   workspace_id=workspace_id, id=contact_id,
                                   email=f"{tag}{i}@raw.io", name=f"P{i}", tags=["Bench"],
                                   attributes={"i": i}, created_at="2026-12-04T00:00:00Z",
                                   updated_at="2026-12-04T00:00:00Z")

            def raw_put() -> None:
                tag = uuid.uuid4().hex[:8]
                for i in range(n):
                    item(i, tag).save()

            def raw_same_ops() -> None:
                tag = uuid.uuid4().hex[:8]
                for i in range(n):
                    ApiKeyItem.get(f"KEY#{prefix}", "#key")
                    contact = item(i, tag)
                    with TransactWrite(connection=connection()) as transaction:
                        transaction.save(contact, condition=ContactItem.pk.does_not_exist())
                        transaction.save(UniqueClaimItem(
                            f"W#{workspace_id}#EMAIL#{contact.email}", "#",
                            workspace_id=workspace_id, record_id=contact.id),
                            condition=UniqueClaimItem.pk.does_not_exist())

            for warm_up in (api, raw_put, raw_same_ops):  # connections, caches, the JVM's JIT
                warm_up()
            ways = {"api": api, "raw_put": raw_put, "raw_same_ops": raw_same_ops}
            times: dict[str, list[float]] = {name: [] for name in ways}
            order = list(ways)
            for round_number in range(rounds):  # rotate the order: no way always goes first
                for name in order[round_number % 3:] + order[:round_number % 3]:
                    times[name].append(timed(ways[name]))
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "api_per_s": n / median["api"],
        "raw_put_per_s": n / median["raw_put"],
        "raw_same_ops_per_s": n / median["raw_same_ops"],
        "api_vs_raw_put": median["api"] / median["raw_put"],
        "api_vs_same_ops": median["api"] / median["raw_same_ops"],
    }
    report(f"records API writes ({n} contacts x {rounds} rounds, median)", [
        ("POST /contacts (handler)", f"{result['api_per_s']:.0f} contacts/s"),
        ("raw PynamoDB save()", f"{result['raw_put_per_s']:.0f} items/s"),
        ("raw same DynamoDB ops", f"{result['raw_same_ops_per_s']:.0f} contacts/s"),
        ("time ratio api / raw save()", f"{result['api_vs_raw_put']:.2f}x"),
        ("time ratio api / raw same ops", f"{result['api_vs_same_ops']:.2f}x"),
    ])
    return result


if __name__ == "__main__":
    run()

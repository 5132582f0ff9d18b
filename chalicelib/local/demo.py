"""The demo workspace: the segment-creation guide's example, through the real services."""

from __future__ import annotations

from chalicelib.adapters import deps
from chalicelib.domain.identity import OPERATOR

DEMO_ORGANIZATIONS = [
    {"name": "Acme Corp", "domain": "acme.example", "tags": ["Customer"],
     "attributes": {"employee_count": 1200, "industry": "Manufacturing"}},
    {"name": "Globex", "domain": "globex.example", "tags": ["Prospect"],
     "attributes": {"employee_count": 85, "industry": "Software"}},
    {"name": "Initech", "domain": "initech.example", "tags": [],
     "attributes": {"employee_count": 40, "industry": "Software"}},
]

# (name, email, title, tags, organization index): buyers who fit the persona, and near misses
DEMO_CONTACTS = [
    ("Ada Byers", "ada@acme.example", "VP Engineering", ["Economic buyer", "Ideal persona"], 0),
    ("Ben Ortiz", "ben@globex.example", "CTO", ["economic BUYER", "ideal persona"], 1),
    ("Cleo Park", "cleo@acme.example", "Director of Ops", ["Economic buyer"], 0),
    ("Dev Rana", "dev@initech.example", "Staff Engineer", ["Ideal persona"], 2),
    ("Eve Moss", "eve@globex.example", "Head of Data", ["Economic buyers", "Ideal"], 1),
    ("Finn Lowe", "finn@example.org", "Community member", [], None),
]


def seed_demo() -> dict[str, str]:
    """Create the demo workspace; answers its id and admin key."""
    operator = OPERATOR
    made = deps.identity().create_workspace(operator, "Demo: Segment Creation Guide")
    workspace_id = made.workspace.id
    records = deps.records()
    orgs = [records.create_organization(workspace_id, org) for org in DEMO_ORGANIZATIONS]
    for name, email, title, tags, org_index in DEMO_CONTACTS:
        contact = records.create_contact(workspace_id, {
            "name": name, "email": email, "title": title, "tags": tags,
            "org_id": orgs[org_index].id if org_index is not None else None,
            "country": "US", "attributes": {"seniority": "exec" if "buyer" in " ".join(tags).lower()
                                            else "ic"}})
        records.add_activities(workspace_id, [{"contact_id": contact.id, "type": "slack.message",
                                               "properties": {"channel": "#general"}}])
    return {"workspace_id": workspace_id, "admin_key": made.admin_key}

"""``/api/v1/keys`` over a real server on SQLite and PostgreSQL: dash keys list (keyset pages, no secret),
create (the secret once) and revoke (idempotent, scoped to the project); other keys are refused."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ServerHandle, run_async


def dash(server: ServerHandle, key: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {key or server.dash_key}"}


def create(server: ServerHandle, **body: object) -> httpx.Response:
    return httpx.post(f"{server.base_url}/api/v1/keys", json=body, headers=dash(server))


def test_create_list_revoke(module_server: ServerHandle) -> None:
    base = module_server.base_url
    made = create(module_server, name="rotation", role="live", expiresIn=3600)
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body["key"]
    assert secret.startswith("scrn_live_") and body["display"] == secret[:14] + "…"
    assert body["role"] == "live" and body["name"] == "rotation" and body["revokedAt"] is None
    assert body["expiresAt"] > body["createdAt"]
    as_new = {"authorization": f"Bearer {secret}"}
    assert httpx.get(f"{base}/api/v1/keys", headers=as_new).status_code == 403  # known, but not a dash key
    listed = httpx.get(f"{base}/api/v1/keys", headers=dash(module_server)).json()
    mine = [k for k in listed["keys"] if k["id"] == body["id"]]
    assert len(mine) == 1 and "key" not in mine[0]
    assert secret not in httpx.get(f"{base}/api/v1/keys", headers=dash(module_server)).text

    revoked = httpx.post(f"{base}/api/v1/keys/{body['id']}/revoke", headers=dash(module_server))
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    again = httpx.post(f"{base}/api/v1/keys/{body['id']}/revoke", headers=dash(module_server))
    assert again.status_code == 200 and again.json()["revokedAt"] == revoked.json()["revokedAt"]
    time.sleep(1.1)  # revocation reaches every process within 1 s
    refused = httpx.get(f"{base}/api/v1/keys", headers=as_new)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_keyset_pages(module_server: ServerHandle) -> None:
    for i in range(5):
        assert create(module_server, name=f"page-{i}", role="test").status_code == 201
    seen: list[str] = []
    token = ""
    while True:
        answer = httpx.get(
            f"{module_server.base_url}/api/v1/keys",
            params={"limit": "2", "pageToken": token},
            headers=dash(module_server),
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["keys"]) <= 2
        seen += [k["id"] for k in page["keys"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 8  # the bootstrap keys and these five, each once
    bad = httpx.get(
        f"{module_server.base_url}/api/v1/keys", params={"pageToken": "nope"}, headers=dash(module_server)
    )
    assert bad.status_code == 400 and bad.json()["field"] == "pageToken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "live"}, "name"),
        ({"name": "x", "role": "admin"}, "role"),
        ({"name": "x", "role": "live", "expiresIn": 5}, "expiresIn"),
        ({"name": "x", "role": "live", "expiresIn": "3600"}, "expiresIn"),
        ({"name": " ", "role": "live"}, "name"),
        ({"name": "a\x00b", "role": "live"}, "name"),  # PostgreSQL text cannot hold NUL: refused, not a 500
        ({"name": "line\nbreak", "role": "live"}, "name"),
    ],
)
def test_create_names_the_bad_field(module_server: ServerHandle, body: dict[str, object], field: str) -> None:
    answer = create(module_server, **body)
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text


def test_only_dash_keys(module_server: ServerHandle) -> None:
    for key, role in ((module_server.live_key, "Live"), (module_server.test_key, "Test")):
        for method, path in (
            ("GET", "/api/v1/keys"),
            ("POST", "/api/v1/keys"),
            ("POST", "/api/v1/keys/x/revoke"),
        ):
            answer = httpx.request(
                method, f"{module_server.base_url}{path}", json={}, headers={"authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 403, answer.text
            assert answer.json()["message"] == f"{role} keys cannot manage API keys"


def test_another_projects_key_is_not_found(module_server: ServerHandle) -> None:
    other_key_id = run_async(_other_project_key(module_server))
    answer = httpx.post(
        f"{module_server.base_url}/api/v1/keys/{other_key_id}/revoke", headers=dash(module_server)
    )
    assert answer.status_code == 404 and answer.json()["field"] == "id"
    listed = httpx.get(
        f"{module_server.base_url}/api/v1/keys", params={"limit": "500"}, headers=dash(module_server)
    )
    assert other_key_id not in listed.text


async def _other_project_key(server: ServerHandle) -> str:
    from scrawn.server.keys.service import KeyService
    from scrawn.server.projects.service import create_project
    from tests.conftest import SECRET

    db = server.db()
    try:
        async with db.write() as conn:
            project = await create_project(conn, "other")
            record, _ = await KeyService(db, SECRET).create_key(conn, project, "dash", "theirs")
        return record.id
    finally:
        await db.dispose()

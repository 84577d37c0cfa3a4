"""The browser's side of the bridge's consent and PIN page, for tests: a site's
page opens it (a form POST carrying the site's Origin), the professional answers
on it (a form POST from the bridge's own origin), the site's page collects the
outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.bridge_kit import BRIDGE, BridgeScene, get, request_id

_TOKEN = re.compile(r'name="token" value="([^"]+)"')


@dataclass
class Page:
    """The bridge's page for one login, as the professional's browser holds it."""

    url: str  # path of the page
    token: str | None  # None when the page has no form (no card, card blocked)
    request_id: str
    html: str


def open_page(scene: BridgeScene, origin: str, challenge: str, *, vitale: bool = False) -> Page:
    """What a site's page does: a form POST to /interaction in a new window."""
    rid = request_id()
    site = scene.client(origin)
    started = site.post(
        "/interaction",
        data={"challenge": challenge, "vitale": "true" if vitale else "false", "request_id": rid},
        base_url=BRIDGE,
    )
    assert started.status_code == 303, started.get_data(as_text=True)
    location = started.headers["Location"]
    path = location.removeprefix(BRIDGE)
    page = Page(path, None, rid, "")
    reload(scene, page)
    return page


def reload(scene: BridgeScene, page: Page) -> None:
    """The professional reloads the page (after inserting a card, say)."""
    page.html = get(scene.client(None), page.url).get_data(as_text=True)
    match = _TOKEN.search(page.html)
    page.token = match.group(1) if match else None


def answer(scene: BridgeScene, page: Page, *, action: str = "allow", **fields: str) -> TestResponse:
    """The professional's answer on the bridge's page (posted from its own origin)."""
    assert page.token is not None, page.html
    own = scene.client(BRIDGE)
    response = own.post(
        page.url, data={"token": page.token, "action": action, **fields}, base_url=BRIDGE
    )
    page.html = response.get_data(as_text=True)
    return response


def outcome(client: FlaskClient, page: Page, *, wait: float = 0) -> dict[str, Any]:
    response = get(client, f"/v1/interactions/{page.request_id}?wait={wait:g}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body

"""The browser's side of the bridge's consent and PIN page, for tests: a site's
page opens a login or a signing request (``POST /v1/interactions``, a CORS request
carrying the site's Origin) and shows the bridge's page for it, the professional
answers on that page (a form POST from the bridge's own origin, then the page
shown again by GET), the site's page collects the outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.bridge_kit import BRIDGE, BridgeScene, get, post_json, request_id

_TOKEN = re.compile(r'name="token" value="([^"]+)"')


@dataclass
class Page:
    """The bridge's page for one login, as the professional's browser holds it."""

    url: str  # path of the page
    token: str | None  # None when the page has no form (the login is over)
    request_id: str
    html: str
    sent: dict[str, str] = field(default_factory=dict)  # the last form posted


def start(scene: BridgeScene, origin: str, body: dict[str, Any]) -> tuple[Page, TestResponse]:
    """What a site's page does first: open an interaction (``body``: what it asks
    for), with two identifiers of its own."""
    rid, pid = request_id(), request_id()
    started = post_json(
        scene.client(origin), "/v1/interactions", {"request_id": rid, "page_id": pid, **body}
    )
    return Page(f"/interaction/{pid}", None, rid, ""), started


def start_login(
    scene: BridgeScene, origin: str, challenge: str, *, vitale: bool = False
) -> tuple[Page, TestResponse]:
    """A site's page opens a login."""
    return start(scene, origin, {"challenge": challenge, "vitale": vitale})


def open_interaction(scene: BridgeScene, origin: str, body: dict[str, Any]) -> Page:
    """A site's page opens an interaction, then shows the bridge's page in its window."""
    page, started = start(scene, origin, body)
    assert started.status_code == 201, started.get_data(as_text=True)
    reload(scene, page)
    return page


def open_page(scene: BridgeScene, origin: str, challenge: str, *, vitale: bool = False) -> Page:
    """A site's page opens a login, then shows the bridge's page in its window."""
    return open_interaction(scene, origin, {"challenge": challenge, "vitale": vitale})


def reload(scene: BridgeScene, page: Page) -> TestResponse:
    """The professional reloads the page (after inserting a card, say)."""
    response = get(scene.client(None), page.url)
    page.html = response.get_data(as_text=True)
    match = _TOKEN.search(page.html)
    page.token = match.group(1) if match else None
    return response


def answer(scene: BridgeScene, page: Page, *, action: str = "allow", **fields: str) -> TestResponse:
    """The professional's answer on the bridge's page (posted from its own origin);
    the browser follows the redirect to the page shown again, whose answer this is."""
    assert page.token is not None, page.html
    page.sent = {"token": page.token, "action": action, **fields}
    return resend(scene, page)


def resend(scene: BridgeScene, page: Page) -> TestResponse:
    """The browser posts the last form again (a reload of its answer, the back
    button), then follows the redirect."""
    own = scene.client(BRIDGE)
    posted = own.post(page.url, data=page.sent, base_url=BRIDGE)
    assert posted.status_code == 303, posted.get_data(as_text=True)
    assert posted.headers["Location"].endswith(page.url)
    return reload(scene, page)


def outcome(client: FlaskClient, page: Page, *, wait: float = 0) -> dict[str, Any]:
    response = get(client, f"/v1/interactions/{page.request_id}?wait={wait:g}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body

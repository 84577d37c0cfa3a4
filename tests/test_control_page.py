"""The simulator's control page: its moves change what the virtual readers hold,
and it refuses requests that do not come from itself."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from simulator.card import VirtualCard
from simulator.control_page import (
    CONTENT_SECURITY_POLICY,
    DEFAULT_PORT,
    PageNotLoopback,
    create_control_app,
    require_loopback,
    serve_control_page,
)
from simulator.personas import PERSONA_DIRECTORY, bundled
from simulator.readers import VirtualReaders
from simulator.workstation import Workstation, virtual_workstation

BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
OWN_ORIGIN = BASE_URL
JSON = {"Content-Type": "application/json"}


class PageClient(FlaskClient):
    """A test client that addresses the page by its own loopback host and port."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("base_url", BASE_URL)
        return super().open(*args, **kwargs)


def client_of(app: Flask) -> FlaskClient:
    app.test_client_class = PageClient
    return app.test_client()


@dataclass
class Bench:
    workstation: Workstation
    readers: VirtualReaders
    client: FlaskClient

    def card_of(self, persona: str) -> VirtualCard:
        return self.workstation.card_for(bundled()[persona])

    def holds(self, slot: int) -> VirtualCard | None:
        """What the virtual reader itself holds (not what the page says)."""
        return self.readers.card_in(slot)

    def token(self) -> str:
        found = re.search(r'name="token" value="([^"]+)"', self.client.get("/").text)
        assert found is not None
        return found.group(1)

    def post_form(
        self, path: str, data: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, str]:
        form = {"token": self.token(), **(data or {})}
        answer = self.client.post(path, data=form, headers={"Origin": OWN_ORIGIN, **headers})
        return answer.status_code, answer.text


@pytest.fixture
def bench() -> Iterator[Bench]:
    workstation, readers = virtual_workstation()
    app = create_control_app(workstation, slot_names=readers.slot_names)
    made = Bench(workstation, readers, client_of(app))
    yield made
    workstation.close()
    readers.close()


def error_code(page: str) -> str | None:
    found = re.search(r'id="error"[^>]*data-code="([^"]+)"', page)
    return found.group(1) if found else None


# -- the moves, seen in the readers ------------------------------------------------


def test_insert_form_puts_the_persona_card_in_the_reader(bench: Bench) -> None:
    status, _ = bench.post_form("/slots/0/insert", {"persona": "pharmacist"})
    assert status == 303
    assert bench.holds(0) is bench.card_of("pharmacist")
    assert bench.readers.slot_states()[bench.readers.slot_names[0]].card_present


def test_insert_redirects_to_the_page_in_the_same_language(bench: Bench) -> None:
    answer = bench.client.post(
        "/slots/1/insert?lang=en",
        data={"token": bench.token(), "persona": "patient"},
        headers={"Origin": OWN_ORIGIN},
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/?lang=en"


def test_remove_form_takes_the_card_out_of_the_reader(bench: Bench) -> None:
    bench.workstation.insert(0, "doctor")
    status, _ = bench.post_form("/slots/0/remove")
    assert status == 303
    assert bench.holds(0) is None


def test_swap_form_exchanges_the_readers_cards(bench: Bench) -> None:
    bench.workstation.insert(0, "doctor")
    bench.workstation.insert(1, "patient")
    status, _ = bench.post_form("/swap")
    assert status == 303
    assert bench.holds(0) is bench.card_of("patient")
    assert bench.holds(1) is bench.card_of("doctor")


def test_a_card_keeps_its_state_when_taken_out_and_put_back(bench: Bench) -> None:
    bench.post_form("/slots/0/insert", {"persona": "doctor"})
    first = bench.holds(0)
    bench.post_form("/slots/0/remove")
    bench.post_form("/slots/0/insert", {"persona": "doctor"})
    assert bench.holds(0) is first


def test_api_insert_remove_swap(bench: Bench) -> None:
    client = bench.client
    answer = client.post("/api/slots/0/insert", json={"persona": "nurse"})
    assert answer.status_code == 200
    assert bench.holds(0) is bench.card_of("nurse")
    client.post("/api/slots/1/insert", json={"persona": "parent"})
    swapped = client.post("/api/swap", json={})
    assert swapped.status_code == 200
    assert bench.holds(0) is bench.card_of("parent")
    assert bench.holds(1) is bench.card_of("nurse")
    removed = client.post("/api/slots/1/remove", json={})
    assert removed.status_code == 200
    assert bench.holds(1) is None
    assert [s["persona"] for s in removed.json["slots"]] == ["parent", None]  # type: ignore[index]


def test_api_state_names_readers_and_personas(bench: Bench) -> None:
    bench.workstation.insert(1, "patient")
    slots = bench.client.get("/api/slots").json["slots"]  # type: ignore[index]
    assert [s["reader"] for s in slots] == bench.readers.slot_names
    assert slots[0]["persona"] is None
    assert slots[1]["persona"] == "patient"
    assert slots[1]["description"] == bundled()["patient"].description


# -- typed errors ------------------------------------------------------------------


def test_unknown_persona_is_refused_on_the_page(bench: Bench) -> None:
    status, page = bench.post_form("/slots/0/insert", {"persona": "nobody"})
    assert status == 400
    assert error_code(page) == "sim.persona_unknown"
    assert "Profil de carte inconnu" in page
    assert bench.holds(0) is None


def test_persona_files_are_not_loaded_through_the_page(bench: Bench) -> None:
    path = str(PERSONA_DIRECTORY / "doctor.toml")
    answer = bench.client.post("/api/slots/0/insert", json={"persona": path})
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "sim.persona_unknown"  # type: ignore[index]
    assert bench.holds(0) is None


def test_insert_into_a_full_slot_is_refused(bench: Bench) -> None:
    bench.workstation.insert(0, "doctor")
    status, page = bench.post_form("/slots/0/insert", {"persona": "nurse"})
    assert status == 409
    assert error_code(page) == "sim.slot_occupied"
    assert bench.holds(0) is bench.card_of("doctor")


def test_remove_from_an_empty_slot_is_refused(bench: Bench) -> None:
    answer = bench.client.post("/api/slots/1/remove", json={})
    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "sim.slot_empty"  # type: ignore[index]


def test_the_same_card_cannot_be_in_both_slots(bench: Bench) -> None:
    bench.workstation.insert(0, "doctor")
    answer = bench.client.post("/api/slots/1/insert", json={"persona": "doctor"})
    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "sim.card_in_use"  # type: ignore[index]
    assert bench.holds(1) is None


def test_unknown_slot_is_refused(bench: Bench) -> None:
    answer = bench.client.post("/api/slots/2/insert", json={"persona": "doctor"})
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "sim.slot_unknown"  # type: ignore[index]
    status, page = bench.post_form("/slots/5/remove")
    assert status == 404
    assert error_code(page) == "sim.slot_unknown"


def test_api_insert_without_a_persona_is_a_bad_request(bench: Bench) -> None:
    for body in ({}, {"persona": 3}, [1, 2]):
        answer = bench.client.post("/api/slots/0/insert", json=body)
        assert answer.status_code == 400
        assert answer.json["error"]["code"] == "sim.page.bad_request"  # type: ignore[index]
    answer = bench.client.post("/api/slots/0/insert", data="{not json", headers=JSON)
    assert answer.status_code == 400
    deep = "[" * 5_000 + "]" * 5_000  # too deep for the parser: refused, not a 500
    answer = bench.client.post("/api/slots/0/insert", data=deep, headers=JSON)
    assert answer.status_code == 400


def test_unknown_paths_get_a_typed_error_not_a_traceback(bench: Bench) -> None:
    answer = bench.client.get("/api/nothing")
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "sim.page.not_found"  # type: ignore[index]
    answer = bench.client.get("/api/swap")
    assert answer.status_code == 405
    assert answer.json["error"]["code"] == "sim.page.method"  # type: ignore[index]
    assert "Traceback" not in answer.text


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example:8460", "127.0.0.1:9999", "127.0.0.1"])
def test_foreign_host_is_refused_even_for_reading(bench: Bench, host: str) -> None:
    answer = bench.client.get("/", headers={"Host": host})
    assert answer.status_code == 403
    assert error_code(answer.text) == "sim.page.host"
    assert 'name="token"' not in answer.text
    api = bench.client.get("/api/slots", headers={"Host": host})
    assert api.status_code == 403
    assert api.json["error"]["code"] == "sim.page.host"  # type: ignore[index]


def test_foreign_host_cannot_insert(bench: Bench) -> None:
    answer = bench.client.post(
        "/api/slots/0/insert", json={"persona": "doctor"}, headers={"Host": "rebound.example"}
    )
    assert answer.status_code == 403
    assert bench.holds(0) is None


def test_localhost_is_the_page_s_own_host_too(bench: Bench) -> None:
    answer = bench.client.get("/", headers={"Host": f"localhost:{DEFAULT_PORT}"})
    assert answer.status_code == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:9999"])
def test_foreign_origin_is_refused(bench: Bench, origin: str) -> None:
    status, page = bench.post_form("/slots/0/insert", {"persona": "doctor"}, Origin=origin)
    assert status == 403
    assert error_code(page) == "sim.page.origin"
    assert 'name="token"' not in page
    api = bench.client.post(
        "/api/slots/0/insert", json={"persona": "doctor"}, headers={"Origin": origin}
    )
    assert api.status_code == 403
    assert bench.holds(0) is None


def test_form_without_origin_header_is_accepted_with_the_token(bench: Bench) -> None:
    answer = bench.client.post(
        "/slots/0/insert", data={"token": bench.token(), "persona": "doctor"}
    )
    assert answer.status_code == 303
    assert bench.holds(0) is bench.card_of("doctor")


@pytest.mark.parametrize("token", [None, "", "wrong", "é" * 43])
def test_form_without_the_right_token_is_refused(bench: Bench, token: str | None) -> None:
    data = {"persona": "doctor"} if token is None else {"persona": "doctor", "token": token}
    answer = bench.client.post("/slots/0/insert", data=data, headers={"Origin": OWN_ORIGIN})
    assert answer.status_code == 403
    assert error_code(answer.text) == "sim.page.token"
    assert bench.holds(0) is None


def test_token_differs_between_pages(bench: Bench) -> None:
    other, other_readers = virtual_workstation()
    app = create_control_app(other, slot_names=["a", "b"])
    other_token = re.search(  # type: ignore[union-attr]
        r'name="token" value="([^"]+)"', client_of(app).get("/").text
    ).group(1)
    assert other_token != bench.token()
    other_readers.close()


def test_api_requires_json(bench: Bench) -> None:
    answer = bench.client.post(
        "/api/slots/0/insert", data={"persona": "doctor"}, headers={"Origin": OWN_ORIGIN}
    )
    assert answer.status_code == 415
    assert answer.json["error"]["code"] == "sim.page.content_type"  # type: ignore[index]
    text = bench.client.post("/api/swap", data="{}", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert bench.holds(0) is None


def test_security_headers(bench: Bench) -> None:
    for path in ("/", "/static/control.css", "/api/slots"):
        headers = bench.client.get(path).headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::1", "localhost", "example.org"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(PageNotLoopback) as refused:
        require_loopback(host)
    assert refused.value.code == "sim.page.not_loopback"
    workstation, _readers = virtual_workstation()
    with pytest.raises(PageNotLoopback):
        serve_control_page(workstation, host, 0, slot_names=["a", "b"])


# -- the page, in French and in English --------------------------------------------


def test_page_shows_slots_in_french_by_default(bench: Bench) -> None:
    bench.workstation.insert(0, "doctor")
    page = bench.client.get("/").text
    assert '<html lang="fr">' in page
    for element in ("slot-0", "slot-1", "persona-0", "persona-1", "insert-0", "remove-0", "swap"):
        assert f'id="{element}"' in page
    for word in ("Insérer", "Retirer", "Échanger", "Cartes CPS", "Cartes Vitale", "Autres cartes"):
        assert word in page
    assert bundled()["doctor"].description in page
    assert ">vide<" in page
    assert bench.readers.slot_names[0] in page
    assert 'id="error"' not in page


def test_page_in_english_by_query_or_accept_language(bench: Bench) -> None:
    by_query = bench.client.get("/?lang=en").text
    by_header = bench.client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    for page in (by_query, by_header):
        assert '<html lang="en">' in page
        for word in ("Insert", "Remove", "Swap", "CPS cards", "Other cards"):
            assert word in page
        assert ">empty<" in page
    assert 'action="/slots/0/insert?lang=en"' in by_query


def test_errors_in_english(bench: Bench) -> None:
    answer = bench.client.post("/api/slots/0/insert?lang=en", json={"persona": "nobody"})
    assert answer.json["error"]["message"] == "Unknown card persona: 'nobody'."  # type: ignore[index]
    bench.workstation.insert(0, "doctor")
    status, page = bench.post_form(
        "/slots/0/insert", {"persona": "nurse"}, **{"Accept-Language": "en"}
    )
    assert status == 409
    assert "already holds a card" in page


def test_selector_offers_the_persona_in_the_slot(bench: Bench) -> None:
    bench.workstation.insert(1, "parent")
    page = bench.client.get("/").text
    select = page[page.index('id="persona-1"') :]
    assert re.search(r'<option value="parent" selected', select[: select.index("</select>")])


def test_query_is_never_reflected_into_the_page(bench: Bench) -> None:
    page = bench.client.get("/?lang=<script>").text
    assert "<script>" not in page


# -- the real server ---------------------------------------------------------------


def test_real_server_on_an_ephemeral_loopback_port() -> None:
    workstation, readers = virtual_workstation()
    server = serve_control_page(workstation, "127.0.0.1", 0, slot_names=readers.slot_names)
    assert server.port != 0
    server.start()
    try:
        with urllib.request.urlopen(server.url, timeout=10) as answer:
            page = answer.read().decode()
        token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        form = urllib.parse.urlencode({"token": token, "persona": "doctor"}).encode()
        post = urllib.request.Request(
            f"{server.url}slots/0/insert", data=form, headers={"Origin": server.url[:-1]}
        )
        with urllib.request.urlopen(post, timeout=10) as answer:  # follows the 303
            assert answer.status == 200
            assert 'data-persona="doctor"' in answer.read().decode()
        assert readers.card_in(0) is workstation.card_for(bundled()["doctor"])
        api = urllib.request.Request(
            f"{server.url}api/swap", data=json.dumps({}).encode(), headers=JSON
        )
        with urllib.request.urlopen(api, timeout=10) as answer:
            assert [s["persona"] for s in json.load(answer)["slots"]] == [None, "doctor"]
        assert readers.card_in(1) is workstation.card_for(bundled()["doctor"])
    finally:
        server.close()
        workstation.close()
        readers.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=2)

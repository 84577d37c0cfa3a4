"""Origins have one spelling: the browser's."""

from __future__ import annotations

import pytest

from cardauth.errors import InvalidOrigin
from cardauth.origins import Origin, parse_origins


@pytest.mark.parametrize(
    "text",
    [
        "https://teleservice.example",
        "https://teleservice.example:8443",
        "https://xn--tlservice-b1a.example",
        "https://192.0.2.10",
        "https://[2001:db8::1]",
        "https://a.b-c.example:1",
    ],
)
def test_canonical_origins(text: str) -> None:
    assert Origin.parse(text).value == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "teleservice.example",
        "https://Teleservice.example",
        "HTTPS://teleservice.example",
        "https://teleservice.example.",
        "https://teleservice.example/",
        "https://teleservice.example/path",
        "https://teleservice.example?q",
        "https://teleservice.example#f",
        "https://user@teleservice.example",
        "https://teleservice.example:443",
        "https://teleservice.example:0",
        "https://teleservice.example:65536",
        "https://teleservice.example:0443",
        "https://t\u00e9leservice.example",
        "https://-bad.example",
        "https://bad-.example",
        "https://a..example",
        "https://01.2.3.4",
        "https://[2001:0db8::1]",
        "http://teleservice.example",
        "ftp://teleservice.example",
        "https://" + "a" * 250 + ".example",
        " https://teleservice.example",
    ],
)
def test_other_spellings_are_refused(text: str) -> None:
    with pytest.raises(InvalidOrigin):
        Origin.parse(text)


def test_development_origins_only_when_allowed() -> None:
    with pytest.raises(InvalidOrigin):
        Origin.parse("http://localhost:5000")
    assert Origin.parse("http://localhost:5000", allow_development=True).host == "localhost"
    assert Origin.parse("http://127.0.0.1", allow_development=True).value == "http://127.0.0.1"
    with pytest.raises(InvalidOrigin):
        Origin.parse("http://intranet.example", allow_development=True)
    with pytest.raises(InvalidOrigin):
        Origin.parse("http://localhost:80", allow_development=True)


def test_a_teleservice_needs_at_least_one_origin() -> None:
    with pytest.raises(InvalidOrigin):
        parse_origins([])
    assert parse_origins(["https://a.example", "https://b.example"]) == {
        Origin("https://a.example"),
        Origin("https://b.example"),
    }

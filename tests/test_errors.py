"""Errors: stable codes that context cannot overwrite, and messages in two languages."""

from __future__ import annotations

import importlib

import pytest

from cardauth.errors import (
    CardAuthError,
    CardNotPresent,
    PinBlocked,
    Refusal,
    UnexpectedStatus,
    WrongPin,
)
from cardauth.messages import CORE, describe
from cardauth.oidc.app import TEXTS as OIDC_TEXTS
from cardauth.verifier_service import TEXTS as VERIFIER_SERVICE_TEXTS
from examples.teleservice.messages import CATALOG as TELESERVICE_TEXTS
from simulator.control_page import PAGE as CONTROL_PAGE_TEXTS
from webbridge.messages import CATALOG as BRIDGE_TEXTS

# Each part of the product with refusals of its own has a catalog of messages.
ALL_ERRORS = {
    **CORE.errors,
    **BRIDGE_TEXTS.errors,
    **TELESERVICE_TEXTS.errors,
    **CONTROL_PAGE_TEXTS.errors,
    **VERIFIER_SERVICE_TEXTS.errors,
    **OIDC_TEXTS.errors,
}


def test_code_and_message_cannot_be_overwritten_by_context() -> None:
    with pytest.raises(TypeError):
        CardAuthError("x", code="other")
    error = UnexpectedStatus("refused", sw=0x6985, command="SELECT")
    assert error.to_dict() == {
        "sw": "6985",
        "command": "SELECT",
        "code": "card.unexpected_status",
        "message": "refused",
    }


def test_messages_in_french_and_english_use_the_context() -> None:
    error = WrongPin("wrong PIN", tries_left=2)
    assert "Il reste 2 essai(s)" in describe(error, "fr")
    assert "2 try(ies) left" in describe(error, "en")
    assert "PUK" in describe(PinBlocked("blocked", tries_left=0), "fr")


def test_every_error_code_has_both_languages() -> None:
    for code, texts in ALL_ERRORS.items():
        assert set(texts) == {"fr", "en"}, code


def test_every_error_class_has_a_message() -> None:
    def subclasses(cls: type[CardAuthError]) -> list[type[CardAuthError]]:
        found = []
        for sub in cls.__subclasses__():
            found += [sub, *subclasses(sub)]
        return found

    for module in (
        "simulator.control",
        "simulator.pcscd",
        "examples.teleservice.errors",
        "cardauth.oidc.errors",
    ):
        importlib.import_module(module)  # their error classes too

    missing = [cls.code for cls in subclasses(CardAuthError) if cls.code not in ALL_ERRORS]
    missing += [refusal.value for refusal in Refusal if refusal.value not in ALL_ERRORS]
    assert missing == []


def test_card_kinds_are_named_as_people_write_them() -> None:
    assert "carte Vitale" in describe(CardNotPresent("none", kind="vitale"), "fr")
    assert "No CPS card" in describe(CardNotPresent("none", kind="cps"), "en")

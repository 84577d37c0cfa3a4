"""The cardauth command, on in-process virtual cards (the pcscd path is in
test_pcsc.py): output in French and English, JSON, and errors with their codes."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from cardauth.apdu import Ins
from cardauth.cli import Output, command_readers, main, report_error
from cardauth.errors import NoReader, PcscUnavailable
from simulator.readers import VirtualReaders
from simulator.trust_export import export_trust
from tests.support import card_for


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(args), stream=out)
    return status, out.getvalue()


def test_cards_in_french_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDAUTH_LANG", raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    status, text = run("--simulate", "cards")
    assert status == 0
    assert "Titulaire : DR Élise FONTAINE" in text
    assert "Code porteur : 3 essai(s) restant(s)" in text
    assert "Assuré : Jeanne ROBIN" in text


def test_cards_in_english() -> None:
    status, text = run("--simulate", "--lang", "en", "cards")
    assert status == 0
    assert "Holder: DR Élise FONTAINE" in text
    assert "PIN: 3 try(ies) left" in text


def test_language_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDAUTH_LANG", "en")
    assert "Holder:" in run("--simulate", "cards")[1]


def test_cards_json_for_scripts() -> None:
    status, text = run("--simulate", "--personas", "nurse,parent", "cards", "--json")
    assert status == 0
    first, second = json.loads(text)["readers"]
    assert first["holder"]["identifier_type"] == "ADELI"
    assert first["certificates"]["signature"]["issuer"] == "TEST AC IGC-SANTE FORT PERSONNES"
    assert [b["given_name"] for b in second["holder"]["beneficiaries"]] == ["Léa", "Hugo"]


def test_expired_certificate_is_flagged() -> None:
    status, text = run("--simulate", "--lang", "en", "--personas", "cps-expired", "cards")
    assert status == 0
    assert "(EXPIRED)" in text


def test_unreadable_cards_get_their_error_code_per_slot() -> None:
    status, text = run("--simulate", "--personas", "unknown-card,mute-card", "cards", "--json")
    assert status == 0
    first, second = json.loads(text)["readers"]
    assert first["error"]["code"] == "card.unknown"
    assert second["error"]["code"] == "transport.card_mute"


def test_unreadable_cards_in_text() -> None:
    status, text = run("--simulate", "--personas", "unknown-card", "cards")
    assert status == 0
    assert "[card.unknown]" in text
    assert "ni une carte CPS ni une carte Vitale" in text


def test_empty_slot_is_shown() -> None:
    status, text = run("--simulate", "--personas", "doctor", "--lang", "en", "cards")
    assert status == 0
    assert text.count("Reader:") == 2
    assert "no card" in text


def test_readers_json() -> None:
    status, text = run("--simulate", "readers", "--json")
    assert status == 0
    readers = json.loads(text)["readers"]
    assert [r["card_present"] for r in readers] == [True, True]
    assert readers[0]["atr"] == "3BAC00402A001225006480000310009000"
    assert [r["kind"] for r in readers] == ["cps", "vitale"]


def test_readers_name_the_card_in_each_slot() -> None:
    status, text = run("--simulate", "--personas", "patient,doctor", "readers")
    assert status == 0
    vitale, cps = text.splitlines()
    assert vitale.startswith("cardauth Virtual Dual Reader 00 00 : carte Vitale (assuré) — ATR ")
    assert cps.startswith("cardauth Virtual Dual Reader 00 01 : carte CPS (professionnel de santé)")


def test_readers_say_which_cards_are_neither_or_unreadable() -> None:
    status, text = run("--simulate", "--personas", "unknown-card,mute-card", "readers", "--json")
    assert status == 0
    unknown, mute = json.loads(text)["readers"]
    assert (unknown["kind"], unknown["error"]["code"]) == ("unknown", "card.unknown")
    assert (mute["kind"], mute["error"]["code"]) == ("unreadable", "transport.card_mute")
    status, text = run("--simulate", "--personas", "unknown-card,mute-card", "readers")
    assert "carte inconnue : ni CPS ni Vitale" in text
    assert "carte illisible" in text
    assert "Erreur [transport.card_mute] : La carte ne répond pas." in text


def test_telling_the_cards_apart_does_not_touch_the_pin() -> None:
    cps, vitale = card_for("doctor"), card_for("patient")
    readers = VirtualReaders()
    readers.insert(0, cps)
    readers.insert(1, vitale)
    printed = io.StringIO()
    assert command_readers(readers, Output("en", as_json=True, stream=printed)) == 0
    assert [r["kind"] for r in json.loads(printed.getvalue())["readers"]] == ["cps", "vitale"]
    for card in (cps, vitale):
        assert set(card.commands) == {Ins.SELECT}  # one application SELECT, nothing else
        assert card.pins_presented == 0
    assert cps.pin(0x01).tries_left == 3


def test_unknown_persona_is_a_typed_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run("--simulate", "--personas", "nobody", "cards")
    assert status == 1
    assert "[sim.persona]" in capsys.readouterr().err


def test_usage_errors_exit_with_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2


def test_the_program_options_go_after_the_command_too() -> None:
    status, text = run("cards", "--simulate", "--lang", "en")
    assert status == 0
    assert "Holder: DR Élise FONTAINE" in text
    status, text = run("readers", "--simulate", "--personas", "doctor", "--json")
    assert status == 0
    assert [r["card_present"] for r in json.loads(text)["readers"]] == [True, False]


def test_the_program_options_still_go_before_the_command() -> None:
    status, text = run("--json", "--simulate", "--personas", "doctor", "readers")
    assert status == 0
    assert [r["card_present"] for r in json.loads(text)["readers"]] == [True, False]


def test_an_option_given_on_both_sides_is_the_one_after_the_command() -> None:
    status, text = run("--lang", "fr", "--simulate", "cards", "--lang", "en")
    assert status == 0
    assert "Holder:" in text


def test_each_command_help_lists_the_program_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--lang", "en", "cards", "--help"])
    help_text = capsys.readouterr().out
    for option in ("--simulate", "--personas", "--lang", "--json"):
        assert option in help_text
    with pytest.raises(SystemExit):
        main(["--lang", "en", "--help"])
    assert "go before or after the command" in " ".join(capsys.readouterr().out.split())


def test_development_origins_are_spelled_as_in_every_other_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--allow-development-origins, as cardauth-bridge, cardauth-verifier and the
    settings (allow_development_origins, CARDAUTH_ALLOW_DEVELOPMENT_ORIGINS) say."""
    origin, challenge = "http://127.0.0.1:8450", "D" * 43
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    status, token = run(
        "--simulate", "login", "--origin", origin, "--challenge", challenge, "--pin-stdin",
        "--allow-development-origins",
    )  # fmt: skip
    assert status == 0
    export_trust(tmp_path, now=dt.datetime.now(dt.UTC))
    verify = ("verify", "--origin", origin, "--challenge", challenge, "--trust", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(token))
    status, identity = run(*verify, "--allow-development-origins")
    assert status == 0
    assert json.loads(identity)["professional"]["idnat"] == "899700420013"
    # The singular of the first versions still works (argparse takes a unique prefix).
    monkeypatch.setattr("sys.stdin", io.StringIO(token))
    assert run(*verify, "--allow-development-origin")[0] == 0


@pytest.mark.parametrize("error", [PcscUnavailable("no pcscd"), NoReader("no reader")])
def test_no_reader_nor_pcscd_says_how_to_reach_cards(
    error: PcscUnavailable | NoReader, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_error(error, Output("fr", as_json=False, stream=io.StringIO()), "cards") == 1
    said = capsys.readouterr().err
    assert said.startswith(f"Erreur [{error.code}] : ")
    assert "--simulate donne des cartes virtuelles (cardauth cards --simulate)" in said
    assert "PCSCLITE_CSOCK_NAME=… cardauth cards" in said  # the demo's cards


def test_pcscd_not_running_says_to_start_or_install_it(capsys: pytest.CaptureFixture[str]) -> None:
    report_error(PcscUnavailable("no pcscd"), Output("en", False, io.StringIO()), "readers")
    said = capsys.readouterr().err
    assert (
        "Start it (sudo systemctl start pcscd; if it is missing, install the pcscd package)" in said
    )

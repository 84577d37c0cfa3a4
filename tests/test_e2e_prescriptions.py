"""The e-prescription in a real browser, on the demo (``python -m examples.demo``:
cards in a private pcscd through vpcd, the bridge, the teleservice, the test PKI's
OCSP responder and time-stamping authority), Debian's Chromium driven by
Playwright: the doctor fills the form, allows the signing certificate and types the
PIN on the bridge's page, and downloads the signed PDF; pdfsig (an oracle nobody
here wrote) and pyHanko's validator accept it under the test PKI; the pharmacist,
whose card takes the doctor's place through the control page, uploads it and reads
"valid" with the doctor's name, and a tampered copy is said invalid.

The tests follow one another, as a working day does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from cardauth.signing.levels import Level
from cardauth.signing.trust import SigningTrust
from cardauth.signing.verification import verify_pdf
from tests.browser_kit import announce, chromium
from tests.demo_kit import RunningDemo, open_bridge_page, start_demo, submit, teleservice_page
from tests.signing_kit import nss_trusting_the_test_root, pdfsig_report
from tests.support import stop_process

pytestmark = pytest.mark.pcscd

PIN = "1234"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("e2e-prescriptions")
    announce(pytestconfig, f"prescription artifacts (screenshots, PDFs, demo output): {folder}")
    return folder


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-state")


@pytest.fixture(scope="module")
def demo(state: Path, artifacts: Path) -> Iterator[RunningDemo]:
    running = start_demo(state, artifacts / "demo.log")
    try:
        yield running
    finally:
        stop_process(running.process)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as driver:
        yield from chromium(
            driver, tmp_path_factory.mktemp("chromium-prescriptions"), locale="fr-FR"
        )


@pytest.fixture(scope="module")
def page(browser: BrowserContext, demo: RunningDemo) -> Iterator[Page]:
    yield from teleservice_page(browser, demo)


def log_in(page: Page, browser: BrowserContext, demo: RunningDemo) -> None:
    page.wait_for_selector("#login", state="visible")
    popup = open_bridge_page(page, browser, demo)
    popup.fill("#pin", PIN)
    submit(popup, "#allow")
    page.wait_for_selector("#app-view", state="visible")


def bridge_page(page: Page, browser: BrowserContext, demo: RunningDemo, button: str) -> Page:
    """Click ``button``: the bridge's own page opens, asking to allow."""
    with browser.expect_page() as opened:
        page.click(button)
    popup = opened.value
    popup.wait_for_url(f"{demo.bridge}/interaction/*")
    popup.wait_for_selector("#allow")
    return popup


def fill_prescription(page: Page) -> None:
    """The patient's name from the Vitale card (the PIN of the login is still fresh:
    no window opens), two medication lines typed."""
    page.click("#read-vitale")
    expect(page.locator("#patient-surname")).to_have_value("ROBIN")
    expect(page.locator("#patient-given-name")).to_have_value("Jeanne")
    page.click("#add-medication")
    lines = page.locator("#medications .medication")
    for index, (name, dosage, duration) in enumerate(
        [
            ("Amoxicilline 1 g", "1 comprimé matin et soir", "6 jours"),
            ("Paracétamol 1 g", "1 comprimé jusqu'à 3 fois par jour", "5 jours"),
        ]
    ):
        line = lines.nth(index)
        line.locator(".medication-name").fill(name)
        line.locator(".medication-dosage").fill(dosage)
        line.locator(".medication-duration").fill(duration)


def verdict(page: Page, document: Path | bytes) -> tuple[str, str, str]:
    """Upload ``document`` on the verification page: the verdict, its code, the text."""
    page.evaluate("document.getElementById('verdict').removeAttribute('data-verdict')")
    if isinstance(document, Path):
        page.set_input_files("#document", document)
    else:
        page.set_input_files(
            "#document", {"name": "copie.pdf", "mimeType": "application/pdf", "buffer": document}
        )
    page.click("#check")
    page.wait_for_selector("#verdict[data-verdict]:not([data-verdict=''])")
    box = page.locator("#verdict")
    return (
        box.get_attribute("data-verdict") or "",
        box.get_attribute("data-code") or "",
        box.text_content() or "",
    )


def test_the_doctor_signs_a_prescription_with_the_card_and_downloads_it(
    page: Page, browser: BrowserContext, demo: RunningDemo, state: Path, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    log_in(page, browser, demo)
    page.click("#prescriptions")
    page.wait_for_selector("#prepare")
    fill_prescription(page)
    page.screenshot(path=artifacts / "01-prescription-form.png")

    # Step 1: the signing certificate, allowed on the bridge's page (no PIN).
    popup = bridge_page(page, browser, demo, "#prepare")
    assert demo.teleservice in (popup.text_content("#asks") or "")
    assert popup.query_selector("#pin") is None
    submit(popup, "#allow")
    page.wait_for_selector("#prepared", state="visible")
    shown_hash = page.text_content("#document-hash") or ""
    assert len(shown_hash.replace(" ", "")) == 64

    # Step 2: the bridge's page shows the site, the document and the same hash; the PIN.
    popup = bridge_page(page, browser, demo, "#sign")
    assert demo.teleservice in (popup.text_content("#asks") or "")
    assert popup.text_content("#document-name") == "Ordonnance de Jeanne ROBIN.pdf"
    assert popup.text_content("#document-hash") == shown_hash
    popup.screenshot(path=artifacts / "02-bridge-signature-page.png")
    popup.fill("#pin", PIN)
    submit(popup, "#allow")
    page.wait_for_selector("#signed", state="visible")
    assert "B-LT" in (page.text_content("#signed-text") or "")
    page.screenshot(path=artifacts / "03-prescription-signed.png")

    with page.expect_download() as download:
        page.click("#download")
    signed = artifacts / "ordonnance-signee.pdf"
    download.value.save_as(signed)

    # Oracles: pdfsig (poppler and NSS, the test root trusted), and pyHanko's validator.
    report = pdfsig_report(nss_trusting_the_test_root(artifacts), signed)
    assert "Signature Validation: Signature is Valid." in report, report
    assert "Certificate Validation: Certificate is Trusted." in report, report
    trust = SigningTrust.from_directory(state / "trust")
    # In a thread of its own: Playwright's event loop runs in this one.
    with ThreadPoolExecutor(1) as worker:
        [checked] = worker.submit(
            verify_pdf, signed.read_bytes(), trust, now=dt.datetime.now(dt.UTC)
        ).result()
    assert checked.level is Level.B_LT
    assert checked.surname == "FONTAINE"
    assert checked.idnat == "899700420013"
    assert checked.timestamp is not None


def test_the_pharmacist_checks_the_signed_prescription(
    page: Page, browser: BrowserContext, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards(None, "patient")  # the doctor's card leaves: the page logs out
    page.wait_for_selector("#notice", state="visible")
    demo.cards("pharmacist", "patient")  # returns once the bridge sees it
    log_in(page, browser, demo)
    assert "MOREAU" in (page.text_content("#professional") or "").upper()
    page.click("#verify")
    page.wait_for_selector("#check")

    signed = artifacts / "ordonnance-signee.pdf"
    shown, code, text = verdict(page, signed)
    page.screenshot(path=artifacts / "04-pharmacist-valid.png")
    assert (shown, code) == ("valid", "")
    assert "Signature valide" in text
    assert "Élise FONTAINE" in text
    assert "99700420013" in text  # the RPPS
    assert "horodatage" in text  # the time stamp's time, not the workstation's

    # One character of the document changed (its producer's name): invalid.
    data = signed.read_bytes()
    at = data.index(b"/Producer (") + len(b"/Producer (")
    tampered = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    shown, code, text = verdict(page, tampered)
    page.screenshot(path=artifacts / "05-pharmacist-tampered.png")
    assert (shown, code) == ("invalid", "signature.invalid")
    assert "Signature invalide" in text
    assert "Code pour le support : signature.invalid" in text  # the code, in small print


def test_the_pharmacist_cannot_sign_a_prescription(page: Page) -> None:
    page.click("#prescriptions")
    page.wait_for_selector("#not-prescriber")
    assert page.query_selector("#prepare") is None

"""The audit trail: who logged in, who was refused, and who looked up which patient.

A NIR never appears in it: only a keyed pseudonym, HMAC-SHA-256 under a secret
key of the teleservice. A plain hash would not do: the NIR space is small enough
(about 10^13 values, most of them guessable from sex, birth date and place) to
hash every NIR and reverse the trail. Without the key, the pseudonym reveals
nothing; with it, the teleservice can still find the lookups about one patient.

Entries are JSON lines, appended and flushed one at a time, so that a crash loses
at most the entry being written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardauth.certificates import Patient, Professional
from cardauth.errors import CardAuthError, InvalidOrigin
from cardauth.origins import Origin

MIN_KEY_BYTES = 32
AUDIT_MODE = 0o600  # a new audit file is its owner's only


class AuditConfigError(CardAuthError):
    """The audit trail cannot be kept as configured."""

    code = "audit.invalid"


INVALID_ORIGIN = "invalid"  # what the trail keeps of an Origin header that is no origin


def _shown_origin(origin: str | None) -> str | None:
    """A request's Origin header as the trail keeps it: a web origin in its one
    spelling (RFC 6454 § 6.2, cardauth.origins) as sent, anything else as
    INVALID_ORIGIN. Anyone can send these requests: they must not write text of
    their choosing into the trail (a NIR, a name), nor grow it."""
    if origin is None:
        return None
    try:
        return Origin.parse(origin, allow_development=True).value
    except InvalidOrigin:
        return INVALID_ORIGIN


class AuditLog:
    """Appends audit entries to a file (JSON lines)."""

    def __init__(
        self,
        path: Path,
        *,
        pseudonym_key: bytes,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        if len(pseudonym_key) < MIN_KEY_BYTES:
            raise AuditConfigError("the pseudonym key must be at least 32 random bytes")
        self.path = path
        self._key = pseudonym_key
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def pseudonym(self, nir: str) -> str:
        """The keyed pseudonym of a NIR: the same for the same patient, nothing without
        the key."""
        return hmac.new(
            self._key, b"cardauth nir\x00" + nir.encode("ascii"), hashlib.sha256
        ).hexdigest()

    def login(self, professional: Professional, *, origin: str, card_serial: str) -> None:
        self._append(
            "login",
            professional=professional.idnat,
            card_type=professional.card_type,
            origin=origin,
            card_serial=card_serial,
        )

    def refused(
        self,
        code: str,
        *,
        origin: str | None,
        action: str = "login",
        professional_idnat: str | None = None,
    ) -> None:
        """A refusal; ``professional_idnat`` when someone logged in was refused (a
        lookup signed by another card, say)."""
        fields = {} if professional_idnat is None else {"professional": professional_idnat}
        self._append(f"{action}_refused", code=code, origin=_shown_origin(origin), **fields)

    def logout(self, professional_idnat: str) -> None:
        self._append("logout", professional=professional_idnat)

    def backchannel_logout(
        self,
        professional_idnat: str,
        *,
        client_id: str,
        outcome: str,
        attempts: int,
        status: int | None,
    ) -> None:
        """A relying party told that the professional's session ended (OpenID Connect
        Back-Channel Logout: ``outcome`` delivered, refused, failed or dropped)."""
        self._append(
            "backchannel_logout",
            professional=professional_idnat,
            client_id=client_id,
            outcome=outcome,
            attempts=attempts,
            status=status,
        )

    def document_signed(self, professional_idnat: str, *, document: str, level: str) -> None:
        """A document the professional's card signed through the service: the
        service's identifier of it, and the signature's level (b-b, b-t, b-lt)."""
        self._append(
            "document_signed", professional=professional_idnat, document=document, level=level
        )

    def patient_lookup(
        self,
        professional: Professional,
        patient: Patient,
        *,
        outcome: str,
        answer: str | None = None,
    ) -> None:
        """A lookup that was let through (``outcome``: "verified"), and, when the
        service says, what it answered (``answer``: "declared", "unknown_patient"...).
        Entries written without an answer are as before."""
        fields = {} if answer is None else {"answer": answer}
        self._append(
            "patient_lookup",
            professional=professional.idnat,
            patient=self.pseudonym(patient.nir.value),
            outcome=outcome,
            **fields,
        )

    def lookups_by(self, professional_idnat: str) -> list[dict[str, Any]]:
        """The patient lookups of one professional that were let through, oldest first
        (what they may see)."""
        return self._entries_of(professional_idnat, ("patient_lookup",))

    def lookup_attempts_by(self, professional_idnat: str) -> list[dict[str, Any]]:
        """The patient lookups of one professional, oldest first, those refused
        (``patient_lookup_refused``, with their ``code``) among them."""
        return self._entries_of(professional_idnat, ("patient_lookup", "patient_lookup_refused"))

    def _entries_of(self, professional_idnat: str, events: tuple[str, ...]) -> list[dict[str, Any]]:
        """Read line by line, without holding up the writers: a line being written
        meanwhile is cut, and skipped like one cut by a crash."""
        entries = []
        try:
            with self.path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash: the others still count
                    if (
                        isinstance(entry, dict)
                        and entry.get("event") in events
                        and entry.get("professional") == professional_idnat
                    ):
                        entries.append(entry)
        except FileNotFoundError:
            return []
        return entries

    def _append(self, event: str, **fields: Any) -> None:
        entry = {"at": self._clock().isoformat(timespec="seconds"), "event": event, **fields}
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            # Identifiers of professionals and pseudonyms of patients: the owner's only.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, AUDIT_MODE)
            with os.fdopen(descriptor, "a", encoding="utf-8") as out:
                out.write(line)
                out.flush()

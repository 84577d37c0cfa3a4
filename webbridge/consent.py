"""Which web origins the professional approved, until when.

An approval is given on the bridge's own page, for one origin, for a number of
days; it can be listed and withdrawn (``cardauth-bridge consents``, or the
bridge's page ``/consents``), and is asked again once it expires. Kept in an
SQLite file in the bridge's state folder (only the owner can read it), so that
the command line and the running bridge see the same approvals.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from cardauth.errors import InvalidOrigin
from cardauth.origins import Origin
from webbridge.errors import BridgeConfigError


@dataclass(frozen=True, slots=True)
class Consent:
    origin: Origin
    granted_at: dt.datetime
    expires_at: dt.datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "origin": self.origin.value,
            "granted_at": self.granted_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


class ConsentStore:
    """Approvals in ``directory/consents.db``."""

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BridgeConfigError("state folder unusable", folder=str(directory)) from exc
        self.path = directory / "consents.db"
        self._local = threading.local()
        with self._connection() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS consents ("
                " origin TEXT PRIMARY KEY, granted_at REAL NOT NULL, expires_at REAL NOT NULL)"
            )
        os.chmod(self.path, 0o600)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def grant(self, origin: Origin, *, now: dt.datetime, days: float) -> Consent:
        consent = Consent(origin, now, now + dt.timedelta(days=days))
        self._connection().execute(
            "INSERT OR REPLACE INTO consents (origin, granted_at, expires_at) VALUES (?, ?, ?)",
            (origin.value, now.timestamp(), consent.expires_at.timestamp()),
        )
        return consent

    def revoke(self, origin: Origin) -> bool:
        """Withdraw the approval of ``origin``; False if there was none."""
        cursor = self._connection().execute(
            "DELETE FROM consents WHERE origin = ?", (origin.value,)
        )
        return cursor.rowcount > 0

    def is_approved(self, origin: Origin, *, now: dt.datetime) -> bool:
        row = (
            self._connection()
            .execute("SELECT expires_at FROM consents WHERE origin = ?", (origin.value,))
            .fetchone()
        )
        return row is not None and now.timestamp() < float(row[0])

    def list(self, *, now: dt.datetime) -> list[Consent]:
        """The approvals still valid at ``now``, by origin (expired ones are dropped)."""
        connection = self._connection()
        connection.execute("DELETE FROM consents WHERE expires_at <= ?", (now.timestamp(),))
        rows = connection.execute(
            "SELECT origin, granted_at, expires_at FROM consents ORDER BY origin"
        ).fetchall()
        consents = []
        for origin, granted, expires in rows:
            try:  # the file is ours, but a file is read as untrusted input
                parsed = Origin.parse(str(origin), allow_development=True)
                consents.append(
                    Consent(
                        parsed,
                        dt.datetime.fromtimestamp(float(granted), dt.UTC),
                        dt.datetime.fromtimestamp(float(expires), dt.UTC),
                    )
                )
            except (InvalidOrigin, ValueError, OverflowError, OSError):
                continue
        return consents

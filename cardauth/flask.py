"""Card login for Flask teleservices.

    app.config.update(
        CARDAUTH_ORIGINS=["https://teleservice.example"],
        CARDAUTH_TRUST_DIR="/etc/teleservice/trust",
        CARDAUTH_CHALLENGE_STORE="redis://127.0.0.1:6379/0",  # redis+sentinel://…, sqlite:///…
        CARDAUTH_AUDIT_LOG="/var/log/teleservice/audit.jsonl",
        CARDAUTH_PSEUDONYM_KEY=bytes.fromhex(os.environ["PSEUDONYM_KEY"]),
        CARDAUTH_SESSION_MAX_HOURS=10,  # the default: a working day
    )
    cardauth = CardAuth(app)

    @app.get("/patients")
    @login_required
    def patients(): ...

The extension adds, under ``/cardauth``: ``POST /challenge`` (a challenge bound
to this browser session), ``POST /login`` (``{"assertion": ...}``: verifies,
then starts a fresh session holding the professional's identity) and ``POST
/logout``. Both POSTs take JSON only, so that a cross-site form cannot send them
without a CORS preflight. A patient lookup goes through :meth:`CardAuth.verify_lookup`:
a new assertion, co-signed by the patient's Vitale card, by the professional who is
logged in (:meth:`CardAuth.patient_lookup` does the same and records what the
service answered). The audit trail records logins, refusals and lookups, NIRs
pseudonymised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request, session
from werkzeug.exceptions import RequestEntityTooLarge

from cardauth.audit import AuditLog
from cardauth.certificates import Patient, Professional
from cardauth.challenges import (
    DEFAULT_LIFETIME,
    ChallengeStore,
    issue_challenge,
    store_from_setting,
)
from cardauth.errors import (
    AssertionRefused,
    CardAuthError,
    LoginRequired,
    Refusal,
    RequestMalformed,
    RequestNotJson,
    RequestTooLarge,
)
from cardauth.messages import choose_language, describe
from cardauth.origins import parse_origins
from cardauth.revocation import CrlRefresher, refresh_in_background
from cardauth.trust import TrustConfigError, utc_now
from cardauth.verify import VerifiedLogin, Verifier

P = ParamSpec("P")
R = TypeVar("R")
EXTENSION = "cardauth"
_USER = "cardauth_professional"
_SID = "cardauth_sid"
_CHALLENGE = "cardauth_challenge"
_LOGGED_IN_AT = "cardauth_logged_in_at"  # POSIX seconds
MAX_BODY = 64 * 1024  # an assertion with its co-assertion is some 10 KiB
DEFAULT_SESSION_HOURS = 10.0  # a working day; then the card again
CLOCK_STEP_BACK = 300.0  # seconds a server clock may be set back without a logout


@dataclass
class PatientLookup:
    """A verified patient lookup being answered (:meth:`CardAuth.patient_lookup`):
    ``answer``, a short word the service chooses ("declared", "unknown_patient"...),
    goes to the audit trail with the lookup."""

    patient: Patient
    answer: str | None = None


class CardAuth:
    """The extension (application-factory style: ``CardAuth(app)`` or ``init_app``)."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: Verifier | None = None,
        challenges: ChallengeStore | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._verifier = verifier
        self._challenges = challenges
        self.clock = clock
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = app.config
        self.origins = parse_origins(
            list(config["CARDAUTH_ORIGINS"]),
            allow_development=bool(config.get("CARDAUTH_ALLOW_DEVELOPMENT_ORIGINS", False)),
        )
        self.crl_refresher: CrlRefresher | None = None
        if self._verifier is not None:
            self.verifier = self._verifier
        else:  # the CRLs of the trust directory are read again when they change
            trust_dir = Path(config["CARDAUTH_TRUST_DIR"])
            self.verifier = Verifier.from_directory(trust_dir)
            self.crl_refresher = refresh_in_background(self.verifier.revocation, trust_dir / "crls")
        self.challenges = self._challenges or store_from_setting(
            config.get("CARDAUTH_CHALLENGE_STORE", "memory")
        )
        seconds = config.get(
            "CARDAUTH_CHALLENGE_LIFETIME_SECONDS", DEFAULT_LIFETIME.total_seconds()
        )
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TrustConfigError("CARDAUTH_CHALLENGE_LIFETIME_SECONDS is a number of seconds")
        if not 10 <= seconds <= 3600:  # 0 or less would refuse every login as expired
            raise TrustConfigError("CARDAUTH_CHALLENGE_LIFETIME_SECONDS is 10 to 3600")
        self.challenge_lifetime = dt.timedelta(seconds=seconds)
        hours = config.get("CARDAUTH_SESSION_MAX_HOURS", DEFAULT_SESSION_HOURS)
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 168:
            raise TrustConfigError("CARDAUTH_SESSION_MAX_HOURS is a number of hours, 168 at most")
        self.session_max_age = dt.timedelta(hours=hours)
        key = config.get("CARDAUTH_PSEUDONYM_KEY")
        log = config.get("CARDAUTH_AUDIT_LOG")
        self.audit = (
            AuditLog(Path(log), pseudonym_key=_key_bytes(key), clock=self.clock)
            if (log is not None)
            else None
        )
        app.extensions[EXTENSION] = self
        app.register_blueprint(self._blueprint())
        app.register_error_handler(AssertionRefused, _refusal_response)

    # -- the endpoints ---------------------------------------------------------------

    def _blueprint(self) -> Blueprint:
        blueprint = Blueprint(EXTENSION, __name__, url_prefix="/cardauth")
        blueprint.add_url_rule("/challenge", "challenge", self._challenge, methods=["POST"])
        blueprint.add_url_rule("/login", "login", self._login, methods=["POST"])
        blueprint.add_url_rule("/logout", "logout", self._logout, methods=["POST"])
        return blueprint

    def new_challenge(self) -> str:
        """A challenge for this browser session, remembered in the session."""
        if _SID not in session:
            session[_SID] = secrets.token_urlsafe(32)
        challenge = issue_challenge(
            self.challenges,
            session=session[_SID],
            now=self.clock(),
            lifetime=self.challenge_lifetime,
        )
        session[_CHALLENGE] = challenge
        return challenge

    def _challenge(self) -> Response:
        _require_json()
        try:
            return jsonify({"challenge": self.new_challenge()})
        except CardAuthError as error:
            return _refusal(error, 503)

    def _login(self) -> Response:
        assertion = _require_json().get("assertion")
        try:
            login = self._verify(assertion, require_vitale=False)
        except AssertionRefused as error:
            if self.audit is not None:
                self.audit.refused(error.code, origin=request.headers.get("Origin"))
            return _refusal_response(error)
        self.start_session(login.professional)
        if self.audit is not None:
            self.audit.login(login.professional, origin=login.origin, card_serial=login.card_serial)
        return jsonify({"professional": login.professional.to_dict()})

    def start_session(self, professional: Professional) -> None:
        """A new session holding ``professional``, as after a card login here: what
        :func:`current_professional` and :func:`login_required` read, for the same
        ``CARDAUTH_SESSION_MAX_HOURS``. For a login verified elsewhere too (the ID
        token of an OpenID Connect provider that did the card login,
        ``examples/teleservice`` in OIDC mode)."""
        session.clear()  # a new session for the logged-in professional (no fixation)
        session[_USER] = professional.to_dict()
        session[_LOGGED_IN_AT] = self.clock().timestamp()
        session.permanent = False  # the cookie ends with the browser; the age, below

    def _logout(self) -> Response:
        _require_json()
        user = session.get(_USER)
        session.clear()
        if user is not None and self.audit is not None:
            self.audit.logout(user["idnat"])
        return jsonify({"logged_out": True})

    # -- what views use --------------------------------------------------------------

    def verify_lookup(self, assertion: object) -> Patient:
        """A patient lookup: a fresh assertion by the professional who is logged in,
        co-signed by the patient's Vitale card. The patient comes from the Vitale
        certificate; the lookup is audited with the NIR's pseudonym."""
        with self.patient_lookup(assertion) as lookup:
            return lookup.patient

    @contextlib.contextmanager
    def patient_lookup(self, assertion: object) -> Iterator[PatientLookup]:
        """:meth:`verify_lookup` for a service that also records what it answered:

            with cardauth.patient_lookup(assertion) as lookup:
                found = declarations.find(lookup.patient.nir)
                lookup.answer = "declared" if found else "unknown_patient"

        The lookup is audited when the block ends, with ``answer`` (none if the block
        failed before setting it): the trail says what the professional was told."""
        professional = current_professional()
        if professional is None:
            abort(_refusal(LoginRequired("card login required"), 401))
        try:
            login = self._verify(assertion, require_vitale=True)
            if not hmac.compare_digest(login.professional.idnat, professional["idnat"]):
                raise AssertionRefused(
                    Refusal.OTHER_PROFESSIONAL,
                    "the lookup was signed by another professional's card",
                )
        except AssertionRefused as error:
            if self.audit is not None:
                self.audit.refused(
                    error.code,
                    origin=request.headers.get("Origin"),
                    action="patient_lookup",
                    professional_idnat=professional["idnat"],
                )
            raise
        assert login.patient is not None  # require_vitale
        lookup = PatientLookup(login.patient)
        try:
            yield lookup
        finally:
            if self.audit is not None:
                self.audit.patient_lookup(
                    login.professional, login.patient, outcome="verified", answer=lookup.answer
                )

    def _verify(self, assertion: object, *, require_vitale: bool) -> VerifiedLogin:
        # One try per challenge, whatever happens: out of this cookie here, and out of
        # the store by the verifier (an older copy of the cookie cannot try again).
        challenge = session.pop(_CHALLENGE, None)
        sid = session.get(_SID)
        if not isinstance(assertion, str) or challenge is None or sid is None:
            raise _no_challenge_refusal()
        return self.verifier.verify(
            assertion,
            expected_origins=self.origins,
            expected_challenge=challenge,
            session=sid,
            challenges_store=self.challenges,
            now=self.clock(),
            require_vitale=require_vitale,
        )


def _no_challenge_refusal() -> AssertionRefused:
    return AssertionRefused(
        Refusal.CHALLENGE_UNKNOWN, "ask for a challenge first (POST /cardauth/challenge)"
    )


def extension() -> CardAuth:
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, CardAuth):
        raise RuntimeError("CardAuth is not initialised on this application")
    return found


def current_professional() -> dict[str, Any] | None:
    """The logged-in professional's identity (from their certificate), or None when
    nobody logged in by card in this session, or longer ago than
    ``CARDAUTH_SESSION_MAX_HOURS``."""
    user = session.get(_USER)
    logged_in_at = session.get(_LOGGED_IN_AT)
    if not isinstance(user, dict) or type(logged_in_at) is not float:
        return None
    cardauth = extension()
    age = cardauth.clock().timestamp() - logged_in_at
    if not -CLOCK_STEP_BACK <= age <= cardauth.session_max_age.total_seconds():
        return None
    return user


def login_time() -> float | None:
    """When the professional of this session logged in (POSIX seconds), or None
    when :func:`current_professional` finds nobody (OpenID Connect's ``auth_time``)."""
    if current_professional() is None:
        return None
    return float(session[_LOGGED_IN_AT])


def login_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Refuse the view to a browser whose session has no professional logged in by
    card (or one logged in too long ago): 401 with the code ``login.required``."""

    @functools.wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if current_professional() is None:
            return _refusal(LoginRequired("card login required"), 401)
        return view(*args, **kwargs)

    return guarded


def _require_json() -> dict[str, Any]:
    """JSON bodies only (a cross-site form cannot send one without a preflight), of
    at most MAX_BODY bytes (413 beyond), an object (400 otherwise: not JSON, nested
    too deep for the parser, not an object); each refusal a typed JSON error."""
    if not request.is_json:
        abort(_refusal(RequestNotJson("send JSON"), 415))
    request.max_content_length = MAX_BODY
    try:
        if not request.get_data(cache=True):
            return {}  # an empty body is an empty object
        body = request.get_json(silent=True)
    except RequestEntityTooLarge:
        abort(_refusal(RequestTooLarge("the body is too large", limit=MAX_BODY), 413))
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        abort(_refusal(RequestMalformed("the body is not a JSON object"), 400))
    return body


def _refusal_response(error: AssertionRefused) -> Response:
    """Refusals become JSON answers: 503 when the service cannot check (try again
    later), 401 otherwise."""
    return _refusal(error, _status_for(error))


def _status_for(error: AssertionRefused) -> int:
    return 503 if error.service_unavailable else 401


def _refusal(error: CardAuthError, status: int) -> Response:
    language = choose_language(request.accept_languages.best_match(["fr", "en"]) or "fr")
    response = jsonify({"error": {"code": error.code, "message": describe(error, language)}})
    response.status_code = status
    return response


def _key_bytes(key: object) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return bytes.fromhex(key)
    raise TrustConfigError("CARDAUTH_PSEUDONYM_KEY must be bytes or hexadecimal text")

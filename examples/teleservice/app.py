"""« Médecin traitant en ligne »: tells a health professional, logged in with the
CPS card, whether the patient in front of them has declared a médecin traitant.

What its predecessor got wrong, and what stops it here (docs/teleservice.md):

- password login with a public identifier: the CPS card only (cardauth's Flask
  extension, /cardauth/challenge and /cardauth/login); there is no password;
- a result page open without login: every route but the login page, its script
  and style, and /cardauth/* is behind the card login (``require_login`` below,
  for the whole application, so that a route added later is covered too);
- NIRs reconstructed from birth data: the patient comes from the Vitale card's
  certificate (``CardAuth.verify_lookup``); no route takes a NIR or a birth date;
- lookups of anyone by anyone: the card type and profession decide what is shown
  (roles.py), lookups are rate-limited per professional, and each is in the audit
  trail with the NIR pseudonymised; a professional sees their own lookups only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.resources
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import limits
from flask import Flask, Response, abort, redirect, render_template, request, url_for
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth import web
from cardauth.errors import (
    UNAVAILABLE_REFUSALS,
    CardAuthError,
    LoginRequired,
    Refusal,
    RequestMalformed,
    RequestNotJson,
    RequestTooLarge,
)
from cardauth.flask import CardAuth, current_professional, extension
from cardauth.messages import Language
from cardauth.trust import utc_now
from cardauth.verify import Verifier
from examples.teleservice import messages, oidc, prescriptions, roles
from examples.teleservice.errors import (
    Failed,
    LoginRateLimited,
    LookupFields,
    LookupForbidden,
    LookupRateLimited,
    MethodNotAllowed,
    NotFound,
    SettingsError,
    TeleserviceError,
)
from examples.teleservice.settings import Settings, flask_config
from examples.teleservice.store import Declaration, Declarations

# The only routes open without a card login: the login page, its own script and
# style, cardauth.js, and the extension's challenge, login and logout.
# (In OIDC mode, the way to the identity provider and back too: oidc.ENDPOINTS.)
PUBLIC_ENDPOINTS = frozenset(
    {"index", "static", "cardauth_js", "cardauth.challenge", "cardauth.login", "cardauth.logout"}
)
MAX_BODY = 64 * 1024  # a lookup's assertion with its co-assertion is some 10 KiB
PSEUDONYM_SHOWN = 16  # hex digits of the pseudonym shown to the professional
REFUSALS = web.Refusals(
    bad_request=RequestMalformed,
    too_large=RequestTooLarge,
    content_type=RequestNotJson,
    not_found=NotFound,
    method_not_allowed=MethodNotAllowed,
    internal=Failed,
)
# A lookup's body: anything but the assertion alone is lookup.fields.
LOOKUP_BODY = dataclasses.replace(REFUSALS, bad_request=LookupFields)
TIME_ZONE = ZoneInfo("Europe/Paris")  # times as the professionals read them
# What a lookup answered (see _answer), or that the Vitale card was read for a
# prescription (prescriptions.py).
LOOKUP_ANSWERS = frozenset({"declared", "not_declared", "unknown_patient", "prescription"})


def create_app(
    config: Mapping[str, Any] | Settings,
    *,
    clock: Callable[[], dt.datetime] = utc_now,
    verifier: Verifier | None = None,
) -> Flask:
    """The teleservice. ``clock`` and ``verifier`` are for tests (the verifier is
    otherwise made from ``CARDAUTH_TRUST_DIR``)."""
    settings = flask_config(config)
    if not settings.get("CARDAUTH_AUDIT_LOG"):
        raise SettingsError("CARDAUTH_AUDIT_LOG is required: every lookup is audited")
    app = Flask(__name__)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=all(o.startswith("https://") for o in settings["CARDAUTH_ORIGINS"]),
        MAX_CONTENT_LENGTH=MAX_BODY,
    )
    app.config.update(settings)
    declarations = Declarations(Path(settings["TELESERVICE_DB"]))
    CardAuth(app, verifier=verifier, clock=clock)
    vendor_script = (
        importlib.resources.files("webbridge").joinpath("static/cardauth.js").read_bytes()
    )
    # Before the limiter's own hook: a request without login is refused before it
    # is counted, so nobody can use up a professional's lookups.
    app.before_request(require_login)
    per_professional = _rate_limits(app, settings)
    oidc_mode = bool(settings.get("TELESERVICE_OIDC_ISSUER"))
    if oidc_mode:
        oidc.install_oidc(app, settings)
    # No form posts: cardauth.js navigates the bridge's window, the pages use fetch.
    page_policy = web.bridge_client_policy(settings["TELESERVICE_BRIDGE_URL"])

    @app.after_request
    def security_headers(response: Response) -> Response:
        web.secure(response, policy=page_policy)
        # No address of this service's pages goes to other sites, and its own requests
        # keep their Origin (the audit trail records it). cardauth.js needs nothing
        # here: it opens logins by CORS requests, whose Origin the browser always sends.
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    web.install_refusals(app, REFUSALS, _error_response, request)

    def page(template: str, *, who: str | None = None, **values: Any) -> str:
        """A page: the header names the service, and ``who`` is logged in."""
        language = _language()
        return render_template(
            f"{template}.html",
            page=template,
            lang=language,
            other=_other(language),
            bridge_url=settings["TELESERVICE_BRIDGE_URL"],
            who=who,
            oidc=oidc_mode,
            t=lambda key, **texts: messages.label(key, language, **texts),
            **values,
        )

    @app.get("/")
    def index() -> str:
        return page("index")  # holds no data: the script asks /api/me who is logged in

    @app.get("/vendor/cardauth.js")
    def cardauth_js() -> Response:
        # Served from this origin (CSP script-src 'self'), read from the installed
        # webbridge package: the page and the bridge always speak the same version.
        return Response(vendor_script, mimetype="text/javascript")

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        professional = _professional()
        level = roles.disclosure_for(professional["card_type"], professional["profession_code"])
        language = _language()
        return {
            "professional": {
                key: professional[key]
                for key in ("idnat", "surname", "given_name", "card_type", "profession")
            },
            "who": _who(professional),
            "access": level.name,
            "access_text": messages.label(
                "access", language, level=messages.label(f"level_{level.value}", language)
            ),
            "may_look_up": level > roles.Disclosure.NONE,
        }

    @app.post("/api/lookup")
    @per_professional
    def lookup() -> dict[str, Any]:
        assertion = _lookup_body()
        professional = _professional()
        level = roles.disclosure_for(professional["card_type"], professional["profession_code"])
        if level is roles.Disclosure.NONE:
            cardauth = extension()
            if cardauth.audit is not None:
                cardauth.audit.refused(
                    LookupForbidden.code,
                    origin=request.headers.get("Origin"),
                    action="lookup",
                    professional_idnat=professional["idnat"],
                )
            raise LookupForbidden(
                "this card gives no access to declarations", card_type=professional["card_type"]
            )
        # The NIR: from the Vitale certificate. The trail records what was answered.
        with extension().patient_lookup(assertion) as verified:
            found = declarations.find(verified.patient.nir)
            verified.answer = _answer(found)
        patient = verified.patient
        return _result(level, {"surname": patient.surname, "given_name": patient.given_name}, found)

    prescriptions.install(
        app,
        settings,
        page=page,
        professional=_professional,
        who=_who,
        language=_language,
        clock=clock,
    )

    @app.get("/api/lookups")
    def my_lookups() -> dict[str, Any]:
        return {"lookups": _own_lookups()}

    @app.get("/journal")
    def journal() -> str:
        return page("journal", who=_who(_professional()), lookups=_own_lookups())

    return app


def _rate_limits(app: Flask, settings: Mapping[str, Any]) -> Callable[[Any], Any]:
    """Lookups limited per professional (the decorator returned); the login
    endpoints, open to anyone, per address: a flood of challenges or of refused
    logins (each one audited) stops there. Both counts live in
    ``TELESERVICE_RATE_LIMIT_STORAGE`` (memory, or Redis for several processes)."""
    limiter = Limiter(
        key_func=_professional_key,
        app=app,
        storage_uri=settings["TELESERVICE_RATE_LIMIT_STORAGE"],
        default_limits=[],
    )
    try:
        per_address = limits.parse_many(settings["TELESERVICE_LOGIN_LIMIT"])
    except ValueError:
        raise SettingsError("TELESERVICE_LOGIN_LIMIT is a limit such as 30/minute") from None

    @app.before_request
    def limit_card_login() -> Response | None:
        """One count for challenges, logins and logouts, per address, through
        flask-limiter's own strategy and storage. Not its blueprint decorator: that
        parses and resolves the limit on every request, the most expensive part of
        a login after waitress (bench/README.md, login.py)."""
        if request.blueprint != "cardauth" or not limiter.enabled:
            return None
        address = get_remote_address()
        for limit in per_address:  # each one counts, until one is exceeded
            if not limiter.limiter.hit(limit, "card-login", address):
                return _rate_limited(LoginRateLimited(f"login limit reached ({limit})"))
        return None

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded) -> Response:
        return _rate_limited(LookupRateLimited(f"lookup limit reached ({error.limit})"))

    return limiter.limit(settings["TELESERVICE_LOOKUP_LIMIT"])


def _rate_limited(refusal: TeleserviceError) -> Response:
    response = _error_response(refusal)
    response.headers["Retry-After"] = "60"
    return response


def require_login() -> Response | WerkzeugResponse | None:
    """Every route but PUBLIC_ENDPOINTS needs a card login: a page sends the browser
    to the login page, anything else gets 401 with ``login.required``."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_professional() is not None:
        return None
    if request.endpoint in oidc.ENDPOINTS:  # OIDC mode: to the identity provider and back
        return None
    if request.method == "GET" and not request.path.startswith("/api/"):
        return redirect(url_for("index", lang=_language()))
    return _error_response(LoginRequired("card login required"), 401)


def _professional() -> dict[str, Any]:
    professional = current_professional()
    if professional is None:  # require_login let nobody through: defence in depth
        abort(_error_response(LoginRequired("card login required"), 401))
    return professional


def _who(professional: Mapping[str, Any]) -> str:
    """The professional as the header names them (from the card's certificate)."""
    return messages.label(
        "who",
        _language(),
        given_name=professional["given_name"],
        surname=professional["surname"],
        profession=professional["profession"] or professional["card_type"],
        card_type=professional["card_type"],
    )


def _professional_key() -> str:
    professional = current_professional()
    return f"professional:{professional['idnat']}" if professional else "anonymous"


def _lookup_body() -> object:
    """``{"assertion": ...}`` and nothing else: a body that names the patient
    (a NIR, a birth date, a name) is refused, it is never looked at."""
    body = web.json_object(request, LOOKUP_BODY, allowed={"assertion"}, required={"assertion"})
    return body["assertion"]


def _result(
    level: roles.Disclosure, patient: dict[str, str], found: Declaration | None
) -> dict[str, Any]:
    """What ``level`` may see of the declaration, with a summary for people."""
    language = _language()
    name = f"{patient['given_name']} {patient['surname']}"
    answer = _answer(found)
    result: dict[str, Any] = {
        "patient": patient,
        "access": level.name,
        "registered": found is not None,
        "declared": answer == "declared",
    }
    summary = [messages.label(answer, language, patient=name)]
    if found is None or found.doctor is None or found.declared_on is None:
        return result | {"summary": summary}
    doctor = found.doctor
    if level >= roles.Disclosure.DOCTOR:
        result["doctor"] = {
            "surname": doctor.surname,
            "given_name": doctor.given_name,
            "practice": doctor.practice,
            "city": doctor.city,
        }
        summary.append(messages.label("doctor", language, **result["doctor"]))
    if level >= roles.Disclosure.FULL:
        result["doctor"]["rpps"] = doctor.rpps
        result["declared_on"] = found.declared_on.isoformat()
        declared_on = messages.date_text(found.declared_on, language)
        summary.append(
            messages.label("doctor_full", language, rpps=doctor.rpps, declared_on=declared_on)
        )
    return result | {"summary": summary}


def _answer(found: Declaration | None) -> str:
    """What a lookup answers, in a word (the audit trail's ``answer``)."""
    if found is None:
        return "unknown_patient"
    if found.doctor is None or found.declared_on is None:
        return "not_declared"
    return "declared"


def _own_lookups() -> list[dict[str, str]]:
    """The logged-in professional's own lookups, refused ones too, newest first:
    whose they are comes from the session (the card's certificate), never from the
    request. Each with its date and time in Paris and its outcome in a sentence;
    ``at`` and ``outcome`` as the trail has them, for programs."""
    professional = _professional()
    audit = extension().audit
    if audit is None:  # pragma: no cover - create_app requires the audit trail
        return []
    language = _language()
    return [
        {
            "at": str(entry.get("at", "")),
            "when": _when(entry.get("at"), language),
            "patient": str(entry.get("patient", ""))[:PSEUDONYM_SHOWN],
            "outcome": _outcome(entry),
            "outcome_text": messages.label(f"outcome_{_outcome_sentence(entry)}", language),
        }
        for entry in reversed(audit.lookup_attempts_by(professional["idnat"]))
    ]


def _when(at: object, language: Language) -> str:
    """A time of the trail (ISO 8601, UTC) as people in France read it."""
    try:
        moment = dt.datetime.fromisoformat(str(at))
    except ValueError:
        return messages.label("unknown_moment", language)
    if moment.tzinfo is None:  # the trail writes UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return messages.moment_text(moment.astimezone(TIME_ZONE), language)


def _outcome(entry: Mapping[str, Any]) -> str:
    """The lookup's outcome as the trail has it: the answer, or the refusal's code."""
    if entry.get("event") == "patient_lookup_refused":
        return str(entry.get("code", ""))
    return str(entry.get("answer") or entry.get("outcome", ""))


def _outcome_sentence(entry: Mapping[str, Any]) -> str:
    """Which sentence tells the outcome (a label of its catalog, after "outcome_")."""
    outcome = _outcome(entry)
    if entry.get("event") == "patient_lookup":
        return outcome if outcome in LOOKUP_ANSWERS else "verified"
    if outcome in (Refusal.VITALE_MISSING, Refusal.VITALE_BINDING):
        return "refused_vitale"
    if outcome == Refusal.OTHER_PROFESSIONAL:
        return "refused_other_card"
    if outcome in UNAVAILABLE_REFUSALS:
        return "unavailable"
    return "refused"


def _language() -> Language:
    return web.language_of(request)


def _other(language: Language) -> Language:
    return "en" if language == "fr" else "fr"


def _error_response(error: CardAuthError, status: int | None = None) -> Response:
    """A refusal as JSON, with its status (cardauth.web's policy unless given)."""
    message = messages.describe(error, _language())
    return web.json_answer(web.error_body(error, message), status or web.http_status(error))

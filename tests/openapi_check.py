"""Every answer of the bridge's API checked against its description,
``webbridge/openapi.yaml``: the status must be one the operation lists, the
headers it declares must be there and well formed, the body must match the
schema of its media type.

An event stream does not end, so its body is never read: its media type is
checked, with an empty stream standing in for the body (the stream's format is
prose in the description, not a schema). Answers of the bridge's own pages (paths
outside ``/v1``) are navigations, not API calls, and are not checked.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.response.exceptions import (
    DataValidationError,
    HeaderValidationError,
)
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request

import webbridge

SPEC = Path(webbridge.__file__).with_name("openapi.yaml")
API_PREFIX = "/v1/"
# The server the description names (its variables' defaults). Whatever Host a test
# request names (a rebinding attacker's, say), it reached this bridge.
SERVER = "http://127.0.0.1:24790/"
EVENT_STREAM = "text/event-stream"
NOT_READ = b": the stream is not read\n\n"  # an SSE comment: an empty stream
BODY_EXCERPT = 400


@functools.cache
def bridge_openapi() -> OpenAPI:
    """The bridge's description, loaded (and checked as OpenAPI) once."""
    return OpenAPI.from_file_path(str(SPEC))


def check_response(response: TestResponse) -> None:
    """Raise AssertionError, naming every mismatch, if ``response`` is not what the
    description allows for the request that produced it."""
    request = response.request
    if not request.path.startswith(API_PREFIX):
        return
    errors = list(bridge_openapi().iter_apicall_response_errors(_Call(request), _Answer(response)))
    if errors:
        raise AssertionError(_report(response, errors))


class CheckedClient(FlaskClient):
    """A Flask test client that checks every answer against the description
    (each hop of a followed redirect too)."""

    def open(
        self,
        *args: Any,
        buffered: bool = False,
        follow_redirects: bool = False,
        **kwargs: Any,
    ) -> TestResponse:
        response = super().open(
            *args, buffered=buffered, follow_redirects=follow_redirects, **kwargs
        )
        check_response(response)
        return response


class _Call:
    """The request of a test response as openapi-core reads requests (its Request
    protocol). Checking an answer needs only the method and the path: the Host is
    the description's server, and the body (read by the app already) is not read."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(request.args),
            header=Headers(request.headers),
            cookie=request.cookies,
        )

    @property
    def host_url(self) -> str:
        return SERVER

    @property
    def path(self) -> str:
        return self._request.root_path + self._request.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return None

    @property
    def content_type(self) -> str:
        return self._request.content_type or "application/octet-stream"


class _Answer:
    """A test response as openapi-core reads responses (its Response protocol);
    the body of an event stream is never read."""

    def __init__(self, response: TestResponse) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return self._response.mimetype or ""

    @property
    def headers(self) -> Headers:
        return self._response.headers

    @property
    def data(self) -> bytes:
        if self.content_type == EVENT_STREAM:
            return NOT_READ
        return self._response.get_data()


def _report(response: TestResponse, errors: list[Exception]) -> str:
    request = response.request
    lines = [
        f"{request.method} {request.full_path.rstrip('?')} answered {response.status_code} "
        f"{response.mimetype or '(no body)'}, which webbridge/{SPEC.name} does not allow:"
    ]
    for error in errors:
        first, *rest = _describe(error)
        lines.append(f"  - {first}")
        lines.extend(f"      {line}" for line in rest)
    if response.mimetype != EVENT_STREAM:
        body = response.get_data(as_text=True)
        cut = "..." if len(body) > BODY_EXCERPT else ""
        lines.append(f"  the body: {body[:BODY_EXCERPT]}{cut}")
    return "\n".join(lines)


def _describe(error: Exception) -> list[str]:
    """What does not fit, then each schema rule that the value breaks."""
    if not isinstance(error, (HeaderValidationError, DataValidationError)):
        return [f"{type(error).__name__}: {error}"]
    if error.__cause__ is None:  # missing: nothing to say about a value
        return [str(error)]
    subject = f"header {error.name}" if isinstance(error, HeaderValidationError) else "body"
    rules = error.details["schema_errors"]
    if not rules:
        return [f"{subject}: {error.__cause__}"]
    return [f"{subject}:"] + [
        f"at {'/'.join(str(part) for part in rule['path']) or '(root)'}: {rule['message']}"
        for rule in rules
    ]

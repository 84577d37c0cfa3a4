"""Web origins as the browser serialises them (RFC 6454 § 6.2), and nothing else.

An assertion is bound to the origin of the page that asked for it, and a
teleservice accepts only its own origins, compared as exact strings. So an
origin must have one spelling: ``https://host`` or ``https://host:port``, scheme
and host in lower case, the host in ASCII (an internationalised name in its
``xn--`` form, as browsers send it), no default port, no trailing dot, no path,
query, fragment or userinfo, at most 255 characters. ``http://localhost`` and
``http://127.0.0.1`` (any port) are accepted only when development origins are
allowed explicitly.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from cardauth.errors import InvalidOrigin

MAX_ORIGIN_LENGTH = 255
DEVELOPMENT_HOSTS = frozenset(("localhost", "127.0.0.1"))
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII,
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, slots=True)
class Origin:
    """A web origin in its one canonical spelling."""

    value: str

    @classmethod
    def parse(cls, text: str, *, allow_development: bool = False) -> Origin:
        """Check ``text`` and return it as an Origin; InvalidOrigin says why not."""
        if not isinstance(text, str) or not text:
            raise InvalidOrigin("an origin is a non-empty string")
        if len(text) > MAX_ORIGIN_LENGTH:
            raise InvalidOrigin("origin longer than 255 characters", length=len(text))
        if not text.isascii():
            raise InvalidOrigin("origin is not ASCII: internationalised names go as xn--")
        match = _ORIGIN.fullmatch(text)
        if match is None:
            raise InvalidOrigin(
                "an origin is scheme://host[:port] in lower case, nothing more", origin=text
            )
        scheme, host, port = match["scheme"], match["host"], match["port"]
        _check_host(host, text)
        if port is not None:
            number = int(port)
            if port.startswith("0") or not 1 <= number <= 65535:
                raise InvalidOrigin("origin port out of range or not canonical", origin=text)
            if number == _DEFAULT_PORTS[scheme]:
                raise InvalidOrigin("origin names its default port", origin=text)
        if scheme == "http":
            if not allow_development:
                raise InvalidOrigin("origin must use https", origin=text)
            if host not in DEVELOPMENT_HOSTS:
                raise InvalidOrigin("http is for localhost and 127.0.0.1 only", origin=text)
        return cls(text)

    @property
    def host(self) -> str:
        match = _ORIGIN.fullmatch(self.value)
        assert match is not None  # checked at construction
        return match["host"]

    def __str__(self) -> str:
        return self.value


def _check_host(host: str, text: str) -> None:
    if host.startswith("["):
        try:
            ipv6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidOrigin("origin has an invalid IPv6 address", origin=text) from None
        if f"[{ipv6.compressed}]" != host:
            raise InvalidOrigin("origin's IPv6 address is not in its short form", origin=text)
        return
    if host.endswith("."):
        raise InvalidOrigin("origin host ends with a dot", origin=text)
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidOrigin("origin host is not a valid DNS name", origin=text)
    if all(label.isdigit() for label in labels):
        try:
            ipv4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidOrigin("origin has an invalid IPv4 address", origin=text) from None
        if str(ipv4) != host:
            raise InvalidOrigin("origin's IPv4 address is not canonical", origin=text)


def parse_origins(
    texts: list[str] | tuple[str, ...], *, allow_development: bool = False
) -> frozenset[Origin]:
    """A teleservice's own origins, checked once at configuration time."""
    if not texts:
        raise InvalidOrigin("at least one expected origin is needed")
    return frozenset(Origin.parse(t, allow_development=allow_development) for t in texts)

"""RFC 3161 time stamps from a time-stamping authority over HTTP (§ 3.4), for the
B-T and B-LT levels. pyHanko builds the request and checks the token; this module
only carries it, so that an authority out of reach or answering nonsense is a
typed refusal."""

from __future__ import annotations

import asyncio
import http.client
import urllib.error
import urllib.request
from typing import Any

from asn1crypto import cms, tsp
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from cardauth.signing.errors import TsaAnswerInvalid, TsaUnreachable

TSA_TIMEOUT = 15.0
MAX_ANSWER = 64 * 1024


class HttpTimeStamper(TimeStamper):
    """Asks the authority at ``url`` (http or https) for each time stamp."""

    def __init__(self, url: str, *, timeout: float = TSA_TIMEOUT) -> None:
        if not url.startswith(("http://", "https://")):
            raise TsaUnreachable("only http and https time-stamping authorities", url=url)
        super().__init__()  # type: ignore[no-untyped-call]
        self.url = url
        self.timeout = timeout

    async def async_timestamp(self, message_digest: bytes, md_algorithm: Any) -> cms.ContentInfo:
        """pyHanko's request and its checks of the answer (status, nonce, imprint),
        whatever they raise on an answer that does not fit (their own error, or a
        bare one while they describe it) turned into :class:`TsaAnswerInvalid`."""
        try:
            token: cms.ContentInfo = await super().async_timestamp(message_digest, md_algorithm)
        except (TsaAnswerInvalid, TsaUnreachable):
            raise
        except (TimestampRequestError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TsaAnswerInvalid(
                "the time-stamp answer does not fit the request", url=self.url
            ) from exc
        return token

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        answer = await asyncio.to_thread(self._post, req.dump())
        try:
            response = tsp.TimeStampResp.load(answer)
            status = response["status"]["status"].native
        except ValueError as exc:  # asn1crypto's word for bytes that do not parse
            raise TsaAnswerInvalid("the answer is no time-stamp response", url=self.url) from exc
        if status not in ("granted", "granted_with_mods"):
            raise TsaAnswerInvalid("the authority refused to stamp", url=self.url, status=status)
        return response

    def _post(self, body: bytes) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/timestamp-query"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                data: bytes = answer.read(MAX_ANSWER + 1)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise TsaUnreachable(
                "the time-stamping authority cannot be reached", url=self.url, reason=str(exc)
            ) from exc
        if len(data) > MAX_ANSWER:
            raise TsaAnswerInvalid("the answer is too large", url=self.url)
        return data

"""Signed JSON webhooks over HTTP(S), with the standard library only."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from mobile_push.errors import EndpointDisabledError, PermanentPushError, TransientPushError
from mobile_push.messages import Message, Recipient

logger = logging.getLogger("mobile_push")

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
MESSAGE_ID_HEADER = "X-Message-Id"
_SIGNATURE_PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """Return the ``X-Signature`` value for ``body``: ``"sha256=<hex HMAC-SHA256>"``."""
    return _SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Check a webhook's ``X-Signature`` header against the raw request body.

    Parameters
    ----------
    secret
        The shared secret the sender was built with.
    body
        The raw request body, exactly as received (before any JSON parsing).
    header
        The ``X-Signature`` header value, or None if it was absent.

    Returns
    -------
    bool
        True only if the header is present and matches (compared in constant time).
    """
    if not header or not header.startswith(_SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(header.encode(), sign(secret, body).encode())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would be replayed as a GET without its body: report the 3xx instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookProvider:
    """POSTs ``{recipient_id, title, body, data, sent_at}`` as JSON to the recipient's URL.

    Parameters
    ----------
    secret
        HMAC-SHA256 key; the body's signature goes in ``X-Signature: sha256=<hex>``.
    timeout
        Seconds for connecting and for each read.
    opener
        The ``urllib`` opener that sends the requests. The default follows no redirects and checks
        nothing else about the address: a caller that posts to URLs other people chose should pass
        one that enforces its egress policy (what it raises for a refused address propagates).

    Notes
    -----
    5xx, 429, connection errors and timeouts raise :class:`TransientPushError`; 410 Gone raises
    :class:`EndpointDisabledError`; any other non-2xx status raises :class:`PermanentPushError`.
    """

    def __init__(
        self,
        secret: bytes,
        timeout: float = 5.0,
        *,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty; pass the shared HMAC key as bytes")
        self._secret = secret
        self._timeout = timeout
        self._opener = opener if opener is not None else urllib.request.build_opener(_NoRedirect)

    def send(self, recipient: Recipient, message: Message) -> str:
        """POST the message to ``recipient.address`` and return the message id sent with it."""
        url = recipient.address
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise PermanentPushError(
                f"webhook address for recipient {recipient.recipient_id} must be an http(s) URL, "
                f"got scheme {scheme!r}"
            )
        body = json.dumps(
            {
                "recipient_id": recipient.recipient_id,
                "title": message.title,
                "body": message.body,
                "data": dict(message.data),
                "sent_at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
        ).encode()
        message_id = uuid.uuid4().hex
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                SIGNATURE_HEADER: sign(self._secret, body),
                TIMESTAMP_HEADER: str(int(time.time())),
                MESSAGE_ID_HEADER: message_id,
            },
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            status = exc.code
            if status == 410:
                raise EndpointDisabledError(
                    f"webhook answered 410 Gone for {recipient.recipient_id}"
                ) from exc
            if status >= 500 or status == 429:
                raise TransientPushError(f"webhook answered {status}") from exc
            raise PermanentPushError(
                f"webhook answered {status}; check the URL and the receiver's signature secret"
            ) from exc
        except urllib.error.URLError as exc:
            raise TransientPushError(f"webhook unreachable: {exc.reason}") from exc
        except (TimeoutError, ConnectionError) as exc:
            raise TransientPushError(f"webhook timed out or dropped the connection: {exc}") from exc
        return message_id

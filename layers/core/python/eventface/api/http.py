"""Chalice glue shared by both apps: JSON responses and the error-mapping decorator."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from chalice.app import Response

from eventface.api.errors import to_reply
from eventface.domain.errors import TooManyRequestsError
from eventface.observability import logger

F = TypeVar("F", bound=Callable[..., Any])
JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response (Chalice would serialise a dict too; this keeps the status explicit)."""
    return Response(body=json.dumps(body), status_code=status, headers=dict(JSON_HEADERS))


def handled(table: Mapping[type[BaseException], int]) -> Callable[[F], F]:
    """Wrap a view so every exception becomes ``{"Code", "Message"}`` with the table's status.

    Unmapped exceptions are logged with their traceback (ids only in the log context, never
    request bodies) and answered with a 500 that reveals nothing. A ``TooManyRequestsError``
    (429) also carries ``Retry-After: <seconds>``.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except Exception as exc:
                reply = to_reply(exc, table)
                if reply.status >= 500:
                    logger.exception("request failed", extra={"error": type(exc).__name__})
                else:
                    logger.info("request refused", extra={"status": reply.status, "code": reply.body["Code"]})
                response = json_response(reply.body, reply.status)
                if reply.status == 429 and isinstance(exc, TooManyRequestsError):
                    # RFC 9110 §10.2.3: tells the client how long to back off instead of retrying at once.
                    response.headers["Retry-After"] = str(exc.retry_after)
                return response

        return wrapper  # type: ignore[return-value]

    return decorate

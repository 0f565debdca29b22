"""Edge API: what checkpoint cameras call (device key in ``x-device-key``).

Handlers are adapters: parse the request, call one service, map the result or the error (the
edge error table in ``eventface.api.errors``). Services are built on first use, never at import.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, ConvertToMiddleware, Response

from eventface import bootstrap
from eventface.api import encoding, requests
from eventface.api.errors import EDGE_ERRORS
from eventface.api.http import handled, json_response
from eventface.api.openapi import EDGE_OPENAPI
from eventface.bootstrap import Services
from eventface.observability import logger
from eventface.services.scans import Scan
from eventface.settings import from_environ

app = Chalice(app_name="eventface-edge")
# Tracebacks in responses only on a developer's machine (the handlers map errors themselves).
app.debug = from_environ().stage == "local"
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
for _media_type in requests.IMAGE_TYPES:
    if _media_type not in app.api.binary_types:
        app.api.binary_types.append(_media_type)

SCAN_CONTENT_TYPES = [requests.JSON_TYPE, *requests.IMAGE_TYPES]


def services() -> Services:
    """The process-wide services (built lazily by the composition root; tests replace them)."""
    return bootstrap.services()


@app.route("/v1/checkpoints/{checkpoint_id}/scans", methods=["POST"], content_types=SCAN_CONTENT_TYPES)
@handled(EDGE_ERRORS)
def record_scan(checkpoint_id: str) -> Response:
    request = _request()
    svc = services()
    device = svc.authenticate_device(request.headers.get("x-device-key"))
    logger.append_keys(device_id=device.device_id, checkpoint_id=checkpoint_id)
    settings = svc.deps.settings
    photo, template = requests.scan_input(
        request.headers.get("content-type"),
        request.raw_body,
        (settings.max_body_bytes, settings.max_photo_bytes),
    )
    result = svc.record_scan(Scan(device=device, checkpoint_id=checkpoint_id, photo=photo, template=template))
    logger.info(
        "scan recorded",
        extra={
            "event_id": result.event_id,
            "recognised": result.recognised,
            "reason": result.reason,
            "new_stamp": result.new_stamp,
            "similarity": result.similarity,
        },
    )
    return json_response(encoding.scan_result(result))


@app.route("/v1/health", methods=["GET"])
def health() -> dict[str, Any]:
    return {"status": "ok", "service": app.app_name}


@app.route("/openapi.json", methods=["GET"])
def openapi() -> dict[str, Any]:
    return EDGE_OPENAPI


def _request() -> Any:
    request = app.current_request
    if request is None:  # pragma: no cover - Chalice always sets it inside a route
        raise RuntimeError("no current request")
    return request

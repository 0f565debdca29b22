"""Edge API: what checkpoint and venue cameras call (device key in ``x-device-key``).

Handlers are adapters: parse the request, call one service, map the result or the error (the
edge error table in ``eventface.api.errors``). Services are built on first use, never at import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from chalice.app import Chalice, ConvertToMiddleware, Response

from eventface import bootstrap
from eventface.api import encoding, requests
from eventface.api.access import source_of
from eventface.api.errors import EDGE_ERRORS
from eventface.api.http import handled, json_response
from eventface.api.openapi import EDGE_OPENAPI
from eventface.bootstrap import Services
from eventface.domain.access import AuditOutcome, Principal, PrincipalKind
from eventface.domain.errors import ForbiddenError, TooManyRequestsError, UnauthorizedError
from eventface.domain.model import DeviceCredential, Probe
from eventface.observability import logger
from eventface.services import sightings as sighting_service
from eventface.services.scans import Scan
from eventface.services.sightings import Sighting
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
    target = f"/v1/checkpoints/{checkpoint_id}/scans"
    device = _authenticated_device(svc, request, "scan", target)
    logger.append_keys(device_id=device.device_id, checkpoint_id=checkpoint_id)
    with _audited_failures(svc, device, "scan", target):
        photo, template = _frame(svc, request)
        result = svc.record_scan(
            Scan(device=device, checkpoint_id=checkpoint_id, photo=photo, template=template)
        )
    logger.info(
        "scan recorded",
        extra={
            "event_id": result.event_id,
            "recognised": result.recognised,
            "reason": result.reason,
            "new_stamp": result.new_stamp,
        },
    )
    return json_response(encoding.scan_result(result))


@app.route("/v1/venues/{venue_id}/sightings", methods=["POST"], content_types=SCAN_CONTENT_TYPES)
@handled(EDGE_ERRORS)
def record_sighting(venue_id: str) -> Response:
    """A venue camera's frame: every face is searched among the venue's VIPs; the answer does not
    wait for the CRM (the staff alert is enriched and pushed by the vip_enrich consumer)."""
    request = _request()
    svc = services()
    target = f"/v1/venues/{venue_id}/sightings"
    device = _authenticated_device(svc, request, "sighting", target)
    logger.append_keys(device_id=device.device_id, venue_id=venue_id)
    with _audited_failures(svc, device, "sighting", target):
        photo, template = _frame(svc, request)
        result = sighting_service.record_sighting(
            svc.deps, Sighting(device=device, venue_id=venue_id, photo=photo, template=template)
        )
    logger.info(
        "sighting recorded",
        extra={
            "faces": len(result.faces),
            "vips": sum(f.vip for f in result.faces),
            "alerts": [f.alert_id for f in result.faces if f.alerted],
        },
    )
    return json_response(encoding.sighting_result(result))


def _authenticated_device(svc: Services, request: Any, action: str, target: str) -> DeviceCredential:
    """The device of ``x-device-key``, admitted under its rate limit before its body is read.

    A source this process saw go over its failed-auth budget is refused first (429, no lookup,
    no audit); a refused key is audited and counts against the source; a device over its rate
    gets 429 before its body is parsed or its photo reaches the engine (every request counts).
    """
    source = source_of(request)
    svc.screen(source)
    try:
        device = svc.authenticate_device(request.headers.get("x-device-key"))
    except UnauthorizedError as exc:
        svc.audit(
            principal=None,
            action=action,
            target=target,
            outcome=AuditOutcome.UNAUTHENTICATED,
            detail=str(exc),
        )
        svc.authentication_failed(source)  # 429 once over budget
        raise
    svc.limit(_device_principal(device.tenant_id, device.device_id))  # not audited: floods add no writes
    return device


@contextlib.contextmanager
def _audited_failures(svc: Services, device: DeviceCredential, action: str, target: str) -> Iterator[None]:
    """Audit a refused or failed device request (the service audits the ones that succeed)."""
    principal = _device_principal(device.tenant_id, device.device_id)
    try:
        yield
    except ForbiddenError as exc:
        svc.audit(
            principal=principal, action=action, target=target, outcome=AuditOutcome.DENIED, detail=str(exc)
        )
        raise
    except TooManyRequestsError:
        raise  # over its rate: nothing was written (not audited, so floods add no writes)
    except Exception as exc:
        svc.audit(
            principal=principal,
            action=action,
            target=target,
            outcome=AuditOutcome.FAILED,
            detail=type(exc).__name__,
        )
        raise


def _frame(svc: Services, request: Any) -> tuple[bytes | None, Probe | None]:
    settings = svc.deps.settings
    return requests.scan_input(
        request.headers.get("content-type"),
        request.raw_body,
        (settings.max_body_bytes, settings.max_photo_bytes),
    )


@app.route("/v1/activations", methods=["POST"], content_types=[requests.JSON_TYPE])
@handled(EDGE_ERRORS)
def activate_device() -> Response:
    """A terminal redeems its one-time activation code for its device key (shown once)."""
    request = _request()
    svc = services()
    body = requests.json_object(requests.check_size(request.raw_body, 1024), {"code"})
    source = source_of(request)
    svc.admit(source)  # a source that keeps guessing codes is refused before any lookup
    try:
        activation = svc.activate_device(body.get("code") if isinstance(body.get("code"), str) else None)
    except UnauthorizedError as exc:
        svc.audit(
            principal=None,
            action="devices.activate",
            target="/v1/activations",
            outcome=AuditOutcome.UNAUTHENTICATED,
            detail=str(exc),
        )
        svc.authentication_failed(source)
        raise
    device = activation.device
    principal = _device_principal(device.tenant_id, device.device_id)
    svc.audit(
        principal=principal,
        action="devices.activate",
        target=f"/v1/devices/{device.device_id}",
        outcome=AuditOutcome.OK,
    )
    logger.info("device activated", extra={"device_id": device.device_id})
    return json_response(encoding.device_activation(activation), 201)


@app.route("/v1/device/key", methods=["POST"])
@handled(EDGE_ERRORS)
def rotate_key() -> Response:
    """The authenticated terminal gets a new key; the one it sent works for a grace period (for
    scans only: a rotated-out key cannot rotate again, and of concurrent rotations one wins)."""
    request = _request()
    svc = services()
    current = _authenticated_device(svc, request, "devices.rotate_key", "/v1/device/key")
    target = f"/v1/devices/{current.device_id}"
    with _audited_failures(svc, current, "devices.rotate_key", target):
        rotated = svc.rotate_device_key(current)  # 403 from a rotated-out key, 409 if another won
    principal = _device_principal(current.tenant_id, current.device_id)
    svc.audit(principal=principal, action="devices.rotate_key", target=target, outcome=AuditOutcome.OK)
    logger.info("device key rotated", extra={"device_id": current.device_id})
    return json_response(encoding.device_activation(rotated))


def _device_principal(tenant_id: str, device_id: str) -> Principal:
    return Principal(tenant_id=tenant_id, kind=PrincipalKind.DEVICE, principal_id=device_id)


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

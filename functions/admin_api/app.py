"""Management API: campaigns, checkpoints, participants, devices, history, API keys, audit, venues
(VIP members, staff devices, alerts) and campaign messages.

Callers are signed-in users (``Authorization: Bearer <ID token>``) or systems (``x-api-key``);
every route declares the authority it needs and leaves an audit entry (``eventface.api.access``).
Handlers are adapters: parse, call one service in the caller's tenant, map the result or the error
(the admin error table in ``eventface.api.errors``). Services are built on first use.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from chalice.app import Chalice, ConvertToMiddleware, Request, Response

from eventface import bootstrap
from eventface.api import encoding
from eventface.api import requests as parse
from eventface.api.access import Guard
from eventface.api.errors import ADMIN_ERRORS
from eventface.api.http import handled, json_response
from eventface.api.openapi import ADMIN_OPENAPI
from eventface.bootstrap import Services
from eventface.domain.access import Authority, parse_authorities
from eventface.domain.errors import InvalidInputError, NotFoundError
from eventface.domain.model import Checkpoint, NotificationTexts
from eventface.observability import logger
from eventface.services import alerts as alert_service
from eventface.services import devices as device_service
from eventface.services import messages as message_service
from eventface.services import venues as venue_service
from eventface.services.campaigns import CampaignChanges
from eventface.services.participants import Registration
from eventface.services.venues import MemberRegistration, VenueChanges
from eventface.settings import from_environ

app = Chalice(app_name="eventface-admin")
# Tracebacks in responses only on a developer's machine (the handlers map errors themselves).
app.debug = from_environ().stage == "local"
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))

#: Lifetime of a management API key when the request names none.
DEFAULT_KEY_TTL_DAYS = 90
CAMPAIGN_FIELDS = frozenset(
    {
        "name",
        "starts_at",
        "ends_at",
        "stamps_required",
        "reward_text",
        "notification_texts",
        "cooldown_seconds",
    }
)


def services() -> Services:
    """The process-wide services (built lazily by the composition root; tests replace them)."""
    return bootstrap.services()


guard = Guard(app, services)


def _call() -> tuple[Services, str, Request]:
    """Services, the caller's tenant and the request of the current guarded route."""
    call = guard.call()
    return call.services, call.tenant, call.request


def _texts(value: Any) -> NotificationTexts:
    if not isinstance(value, dict) or set(value) - {"stamp", "complete"}:
        raise InvalidInputError('notification_texts must be an object with "stamp" and "complete" texts')
    default = NotificationTexts()
    return NotificationTexts(
        stamp=parse.string(value, "stamp", default=default.stamp),
        completion=parse.string(value, "complete", default=default.completion),
    )


def _optional_int(body: dict[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    return parse.integer(body, name, bounds) if body.get(name) is not None else None


# -- campaigns --------------------------------------------------------------------------------


@app.route("/v1/campaigns", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "campaigns.create")
def create_campaign() -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), CAMPAIGN_FIELDS
    )
    campaign = svc.create_campaign(
        tenant,
        uuid.uuid4().hex,
        parse.string(body, "name"),
        parse.timestamp(body, "starts_at"),
        parse.timestamp(body, "ends_at"),
        stamps_required=parse.integer(body, "stamps_required", parse.STAMPS_REQUIRED),
        reward_text=parse.string(body, "reward_text", default=""),
        texts=_texts(body["notification_texts"]) if body.get("notification_texts") is not None else None,
        cooldown_seconds=_optional_int(body, "cooldown_seconds", parse.COOLDOWN_SECONDS),
    )
    logger.info("campaign created", extra={"campaign_id": campaign.campaign_id})
    return json_response(encoding.campaign(campaign), 201)


@app.route("/v1/campaigns", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "campaigns.list")
def list_campaigns() -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    return json_response(encoding.page(svc.list_campaigns(tenant, limit, cursor), encoding.campaign))


@app.route("/v1/campaigns/{campaign_id}", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "campaigns.get")
def get_campaign(campaign_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.campaign(svc.get_campaign(tenant, campaign_id)))


@app.route("/v1/campaigns/{campaign_id}", methods=["PATCH"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "campaigns.update")
def update_campaign(campaign_id: str) -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), CAMPAIGN_FIELDS
    )
    texts = body.get("notification_texts")
    if texts is not None and (not isinstance(texts, dict) or set(texts) != {"stamp", "complete"}):
        raise InvalidInputError('notification_texts replaces both texts: send "stamp" and "complete"')
    changes = CampaignChanges(
        name=parse.string(body, "name") if "name" in body else None,
        starts_at=parse.timestamp(body, "starts_at") if "starts_at" in body else None,
        ends_at=parse.timestamp(body, "ends_at") if "ends_at" in body else None,
        stamps_required=_optional_int(body, "stamps_required", parse.STAMPS_REQUIRED),
        reward_text=parse.string(body, "reward_text") if "reward_text" in body else None,
        texts=_texts(texts) if texts is not None else None,
        cooldown_seconds=_optional_int(body, "cooldown_seconds", parse.COOLDOWN_SECONDS),
    )
    return json_response(encoding.campaign(svc.update_campaign(tenant, campaign_id, changes)))


@app.route("/v1/campaigns/{campaign_id}/publish", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "campaigns.publish")
def publish_campaign(campaign_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.campaign(svc.publish_campaign(tenant, campaign_id)))


@app.route("/v1/campaigns/{campaign_id}/end", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "campaigns.end")
def end_campaign(campaign_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.campaign(svc.end_campaign(tenant, campaign_id)))


# -- checkpoints ------------------------------------------------------------------------------


@app.route("/v1/campaigns/{campaign_id}/checkpoints", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "checkpoints.add")
def add_checkpoint(campaign_id: str) -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), {"name", "location"}
    )
    name = parse.string(body, "name").strip()
    if not name:
        raise InvalidInputError("name is required: how the checkpoint is shown to people")
    checkpoint = Checkpoint(uuid.uuid4().hex, name, parse.string(body, "location", default=""))
    campaign = svc.add_checkpoint(tenant, campaign_id, checkpoint)
    return json_response({**encoding.checkpoint(checkpoint), "campaign": encoding.campaign(campaign)}, 201)


@app.route("/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "checkpoints.remove")
def remove_checkpoint(campaign_id: str, checkpoint_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.campaign(svc.remove_checkpoint(tenant, campaign_id, checkpoint_id)))


# -- participants -----------------------------------------------------------------------------


@app.route("/v1/campaigns/{campaign_id}/participants", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "participants.register")
def register_participant(campaign_id: str) -> Response:
    svc, tenant, request = _call()
    settings = svc.deps.settings
    body = parse.json_object(
        parse.check_size(request.raw_body, settings.max_body_bytes),
        {"nickname", "consent", "photo", "push_token", "locale"},
    )
    push_token = body.get("push_token")
    if push_token is not None and not isinstance(push_token, str):
        raise InvalidInputError("push_token must be a string like 'fcm:<token>', or omitted")
    participant = svc.register_participant(
        Registration(
            tenant_id=tenant,
            campaign_id=campaign_id,
            photo=parse.photo(parse.require(body, "photo"), settings.max_photo_bytes),
            nickname=parse.string(body, "nickname"),
            consent=body.get("consent") is True,
            push_endpoint=push_token,
            locale=parse.string(body, "locale", default="en"),
        )
    )
    logger.info(
        "participant registered",
        extra={"campaign_id": campaign_id, "participant_id": participant.participant_id},
    )
    return json_response(encoding.participant(participant), 201)


@app.route("/v1/campaigns/{campaign_id}/participants", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "participants.list")
def list_participants(campaign_id: str) -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    page = svc.list_participants(tenant, campaign_id, limit, cursor)
    return json_response(encoding.page(page, encoding.participant))


@app.route("/v1/campaigns/{campaign_id}/participants/{participant_id}", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "participants.get")
def get_participant(campaign_id: str, participant_id: str) -> Response:
    svc, tenant, _ = _call()
    participant, progress = svc.get_progress(tenant, campaign_id, participant_id)
    return json_response(encoding.participant(participant, progress))


@app.route("/v1/campaigns/{campaign_id}/participants/{participant_id}", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "participants.erase")
def erase_participant(campaign_id: str, participant_id: str) -> Response:
    svc, tenant, _ = _call()
    receipt = svc.erase_participant(tenant, campaign_id, participant_id)
    logger.info(
        "participant erased",
        extra={"campaign_id": campaign_id, "participant_id": participant_id, "verified": receipt.verified},
    )
    return json_response(encoding.erasure(receipt))


# -- devices ----------------------------------------------------------------------------------


@app.route("/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TERMINALS, "devices.register")
def register_device(campaign_id: str, checkpoint_id: str) -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), {"name", "type_b"}
    )
    registration = svc.register_device(
        tenant,
        campaign_id,
        checkpoint_id,
        parse.string(body, "name", default=""),
        type_b=parse.boolean(body, "type_b", default=False),
    )
    logger.info("device registered", extra={"device_id": registration.device.device_id})
    return json_response(encoding.device_registration(registration), 201)


@app.route("/v1/devices", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TERMINALS, "devices.list")
def list_devices() -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    return json_response(encoding.page(svc.list_devices(tenant, limit, cursor), encoding.device))


@app.route("/v1/devices/{device_id}/activation-code", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TERMINALS, "devices.activation_code")
def new_activation_code(device_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.device_registration(svc.new_activation_code(tenant, device_id)), 201)


@app.route("/v1/devices/{device_id}", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TERMINALS, "devices.revoke")
def revoke_device(device_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.device(svc.revoke_device(tenant, device_id)))


@app.route("/v1/devices/{device_id}", methods=["PATCH"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TERMINALS, "devices.update")
def update_device(device_id: str) -> Response:
    """Allow (or stop) a device sending templates it computes itself (Type B)."""
    svc, tenant, request = _call()
    body = parse.json_object(parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), {"type_b"})
    type_b = parse.boolean(body, "type_b")
    logger.info("device permission changed", extra={"device_id": device_id, "type_b": type_b})
    return json_response(encoding.device(svc.set_type_b(tenant, device_id, type_b)))


@app.route("/v1/devices/{device_id}/probe-abuse", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TENANT_ADMIN, "devices.probe_abuse.clear")
def clear_probe_abuse(device_id: str) -> Response:
    """A tenant admin reviewed a flagged device: its templates are accepted again."""
    svc, tenant, _ = _call()
    return json_response(encoding.device(svc.clear_probe_abuse(tenant, device_id)))


# -- history ----------------------------------------------------------------------------------


@app.route("/v1/campaigns/{campaign_id}/history", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.HISTORY, "history.read")
def list_history(campaign_id: str) -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    query = parse.history_query(request.query_params)
    return json_response(
        encoding.page(svc.list_history(tenant, campaign_id, limit, cursor, query=query), encoding.event)
    )


# -- service ----------------------------------------------------------------------------------


@app.route("/v1/health", methods=["GET"])
def health() -> dict[str, Any]:
    return {"status": "ok", "service": app.app_name}


@app.route("/openapi.json", methods=["GET"])
def openapi() -> dict[str, Any]:
    return ADMIN_OPENAPI


# -- access: who am I, management API keys, audit log -------------------------------------------


@app.route("/v1/me", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(None, "me.read")
def me() -> Response:
    return json_response(encoding.principal(guard.call().principal))


@app.route("/v1/api-keys", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.API_KEYS, "api_keys.create")
def create_api_key() -> Response:
    svc, _, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes),
        {"name", "authorities", "ttl_days"},
    )
    try:
        authorities = parse_authorities(body.get("authorities"))
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    ttl_days = _optional_int(body, "ttl_days", parse.TTL_DAYS) or DEFAULT_KEY_TTL_DAYS
    key, secret = svc.create_api_key(
        guard.call().principal, parse.string(body, "name"), authorities, timedelta(days=ttl_days)
    )
    logger.info("api key created", extra={"key_id": key.key_id})
    return json_response(encoding.new_api_key(key, secret), 201)


@app.route("/v1/api-keys", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.API_KEYS, "api_keys.list")
def list_api_keys() -> Response:
    svc, _, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    return json_response(
        encoding.page(svc.list_api_keys(guard.call().principal, limit, cursor), encoding.api_key)
    )


@app.route("/v1/api-keys/{key_id}", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.API_KEYS, "api_keys.revoke")
def revoke_api_key(key_id: str) -> Response:
    svc, _, _ = _call()
    return json_response(encoding.api_key(svc.revoke_api_key(guard.call().principal, key_id)))


@app.route("/v1/audit", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TENANT_ADMIN, "audit.read")
def read_audit() -> Response:
    svc, _, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    query: dict[str, str] = dict(request.query_params or {})
    since, until = (parse.timestamp(query, n) if query.get(n) else None for n in ("since", "until"))
    page = svc.read_audit(
        guard.call().principal,
        since=since,
        until=until,
        actor=query.get("actor") or None,
        action=query.get("action") or None,
        limit=limit,
        cursor=cursor,
    )
    return json_response(encoding.page(page, encoding.audit_entry))


# -- venues, VIP members, staff devices, alerts -------------------------------------------------

VENUE_FIELDS = frozenset({"name", "dedupe_minutes", "crm"})


@app.route("/v1/venues", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TENANT_ADMIN, "venues.create")
def create_venue() -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), VENUE_FIELDS
    )
    venue = venue_service.create_venue(
        svc.deps,
        tenant,
        parse.string(body, "name"),
        dedupe_minutes=_optional_int(body, "dedupe_minutes", parse.DEDUPE_MINUTES),
        crm=parse.crm_config(body["crm"]) if body.get("crm") is not None else None,
    )
    logger.info("venue created", extra={"venue_id": venue.venue_id})
    return json_response(encoding.venue(venue), 201)


@app.route("/v1/venues", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "venues.list")
def list_venues() -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    return json_response(
        encoding.page(venue_service.list_venues(svc.deps, tenant, limit, cursor), encoding.venue)
    )


@app.route("/v1/venues/{venue_id}", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "venues.get")
def get_venue(venue_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.venue(venue_service.get_venue(svc.deps, tenant, venue_id)))


@app.route("/v1/venues/{venue_id}", methods=["PATCH"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TENANT_ADMIN, "venues.update")
def update_venue(venue_id: str) -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), VENUE_FIELDS
    )
    changes = VenueChanges(
        name=parse.string(body, "name") if "name" in body else None,
        dedupe_minutes=_optional_int(body, "dedupe_minutes", parse.DEDUPE_MINUTES),
        crm=parse.crm_config(body["crm"]) if body.get("crm") is not None else None,
    )
    return json_response(encoding.venue(venue_service.update_venue(svc.deps, tenant, venue_id, changes)))


@app.route("/v1/crm/secrets", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TENANT_ADMIN, "crm_secrets.list")
def list_crm_secrets() -> Response:
    svc, tenant, _ = _call()
    prefix, names = venue_service.crm_secrets(svc.deps, tenant)
    return json_response({"prefix": prefix, "secret_ids": list(names)})


@app.route("/v1/venues/{venue_id}/members", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "members.add")
def add_member(venue_id: str) -> Response:
    svc, tenant, request = _call()
    settings = svc.deps.settings
    body = parse.json_object(
        parse.check_size(request.raw_body, settings.max_body_bytes),
        {"name", "photo", "tier", "crm_customer_id", "notes"},
    )
    member = venue_service.add_member(
        svc.deps,
        MemberRegistration(
            tenant_id=tenant,
            venue_id=venue_id,
            photo=parse.photo(parse.require(body, "photo"), settings.max_photo_bytes),
            name=parse.string(body, "name"),
            tier=parse.string(body, "tier", default=""),
            crm_customer_id=parse.string(body, "crm_customer_id", default=""),
            notes=parse.string(body, "notes", default=""),
        ),
    )
    logger.info("vip member added", extra={"venue_id": venue_id, "member_id": member.member_id})
    return json_response(encoding.member(member), 201)


@app.route("/v1/venues/{venue_id}/members", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "members.list")
def list_members(venue_id: str) -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    page = venue_service.list_members(svc.deps, tenant, venue_id, limit, cursor)
    return json_response(encoding.page(page, encoding.member))


@app.route("/v1/venues/{venue_id}/members/{member_id}", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "members.get")
def get_member(venue_id: str, member_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.member(venue_service.get_member(svc.deps, tenant, venue_id, member_id)))


@app.route("/v1/venues/{venue_id}/members/{member_id}", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TARGETS, "members.erase")
def erase_member(venue_id: str, member_id: str) -> Response:
    svc, tenant, _ = _call()
    erasure = venue_service.erase_member(svc.deps, tenant, venue_id, member_id)
    logger.info("vip member erased", extra={"venue_id": venue_id, "member_id": member_id})
    return json_response(encoding.member_erasure(erasure))


@app.route("/v1/venues/{venue_id}/devices", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.TERMINALS, "devices.register")
def register_venue_device(venue_id: str) -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes), {"name", "type_b"}
    )
    registration = device_service.register_venue_device(
        svc.deps,
        tenant,
        venue_id,
        parse.string(body, "name", default=""),
        type_b=parse.boolean(body, "type_b", default=False),
    )
    logger.info("venue device registered", extra={"device_id": registration.device.device_id})
    return json_response(encoding.device_registration(registration), 201)


@app.route("/v1/venues/{venue_id}/staff-devices", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "staff_devices.subscribe")
def subscribe_staff_device(venue_id: str) -> Response:
    svc, tenant, request = _call()
    body = parse.json_object(
        parse.check_size(request.raw_body, svc.deps.settings.max_body_bytes),
        {"name", "platform", "token", "locale"},
    )
    device = venue_service.subscribe_staff_device(
        svc.deps,
        tenant,
        venue_id,
        name=parse.string(body, "name"),
        platform=parse.string(body, "platform"),
        token=parse.string(body, "token", default=""),
        locale=parse.string(body, "locale", default="ja"),
    )
    return json_response(encoding.staff_device(device), 201)


@app.route("/v1/venues/{venue_id}/staff-devices", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "staff_devices.list")
def list_staff_devices(venue_id: str) -> Response:
    svc, tenant, request = _call()
    _, cursor = parse.page_args(request.query_params)
    devices = venue_service.list_staff_devices(svc.deps, tenant, venue_id, cursor)
    return json_response({"items": [encoding.staff_device(d) for d in devices], "cursor": None})


@app.route("/v1/venues/{venue_id}/staff-devices/{staff_device_id}", methods=["DELETE"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "staff_devices.unsubscribe")
def unsubscribe_staff_device(venue_id: str, staff_device_id: str) -> Response:
    svc, tenant, _ = _call()
    if not venue_service.unsubscribe_staff_device(svc.deps, tenant, venue_id, staff_device_id):
        raise NotFoundError(f"staff device {staff_device_id} is not subscribed to venue {venue_id}")
    return json_response({"staff_device_id": staff_device_id, "unsubscribed": True})


@app.route("/v1/venues/{venue_id}/alerts", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "alerts.list")
def list_alerts(venue_id: str) -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    query: dict[str, str] = dict(request.query_params or {})
    since = parse.timestamp(query, "since") if query.get("since") else None
    page = alert_service.list_alerts(svc.deps, tenant, venue_id, limit, cursor, since=since)
    return json_response(encoding.page(page, encoding.alert))


@app.route("/v1/venues/{venue_id}/alerts/{alert_id}", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "alerts.get")
def get_alert(venue_id: str, alert_id: str) -> Response:
    svc, tenant, _ = _call()
    return json_response(encoding.alert(alert_service.get_alert(svc.deps, tenant, venue_id, alert_id)))


@app.route("/v1/venues/{venue_id}/alerts/{alert_id}/acknowledge", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "alerts.acknowledge")
def acknowledge_alert(venue_id: str, alert_id: str) -> Response:
    call = guard.call()
    alert = alert_service.acknowledge_alert(
        call.services.deps, call.principal.actor, call.tenant, venue_id, alert_id
    )
    return json_response(encoding.alert(alert))


@app.route("/v1/venues/{venue_id}/alerts/{alert_id}/false-match", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.VENUE_STAFF, "alerts.flag_false_match")
def flag_false_match(venue_id: str, alert_id: str) -> Response:
    call = guard.call()
    body = parse.json_object(
        parse.check_size(call.request.raw_body or b"{}", call.services.deps.settings.max_body_bytes), {"note"}
    )
    alert = alert_service.flag_false_match(
        call.services.deps,
        call.principal.actor,
        call.tenant,
        venue_id,
        alert_id,
        note=parse.string(body, "note", default=""),
    )
    return json_response(encoding.alert(alert))


# -- campaign messages --------------------------------------------------------------------------


@app.route("/v1/campaigns/{campaign_id}/messages", methods=["POST"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "messages.send")
def send_message(campaign_id: str) -> Response:
    call = guard.call()
    body = parse.json_object(
        parse.check_size(call.request.raw_body, call.services.deps.settings.max_body_bytes),
        {"title", "body", "segment"},
    )
    message = message_service.send_campaign_message(
        call.services.deps,
        tenant_id=call.tenant,
        campaign_id=campaign_id,
        title=parse.texts(body, "title", required=False),
        body=parse.texts(body, "body"),
        segment=parse.segment(body.get("segment")),
        created_by=call.principal.actor,
        idempotency_key=call.request.headers.get("idempotency-key"),
    )
    logger.info(
        "campaign message queued", extra={"message_id": message.message_id, "targeted": message.targeted}
    )
    return json_response(encoding.message(message), 201)


@app.route("/v1/campaigns/{campaign_id}/messages", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "messages.list")
def list_messages(campaign_id: str) -> Response:
    svc, tenant, request = _call()
    limit, cursor = parse.page_args(request.query_params)
    page = message_service.list_campaign_messages(svc.deps, tenant, campaign_id, limit, cursor)
    return json_response(encoding.page(page, encoding.message))


@app.route("/v1/campaigns/{campaign_id}/messages/{message_id}", methods=["GET"])
@handled(ADMIN_ERRORS)
@guard.route(Authority.CAMPAIGNS, "messages.get")
def get_message(campaign_id: str, message_id: str) -> Response:
    svc, tenant, _ = _call()
    message = message_service.get_campaign_message(svc.deps, tenant, campaign_id, message_id)
    return json_response(encoding.message(message))

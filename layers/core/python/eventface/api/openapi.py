"""The OpenAPI 3.1 documents of both apps, written by hand (served at ``/openapi.json``).

The checked-in copies in ``docs/openapi/`` are ``python -m eventface.api.openapi docs/openapi``;
a test keeps served document, checked-in file and the apps' routes in step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Malformed request (the message says what to fix)",
        401: "Missing, invalid, expired or revoked credentials",
        403: "The credentials do not cover this resource or action",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "Body or photo over the size limit",
        415: "Unsupported content type",
        422: "Image cannot be decoded, holds no usable face, or fails the quality gate",
        429: "Over the rate limit, or too many failed authentications: wait Retry-After seconds",
        503: "A backing service is unavailable or misconfigured: retry later",
    }
    return {str(s): _json(_ref("Error"), texts[s]) for s in statuses}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_PAGE_PARAMS: Final = [
    {
        "name": "limit",
        "in": "query",
        "description": "Items per page; absent or empty: 50",
        "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100}, {"const": ""}]},
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "The cursor of the previous page of this very listing (same path and filters), "
        "unchanged. A cursor is opaque and bound to the tenant, the listing and its filters: any other "
        "(forged, changed, cut short, another tenant's or listing's) is refused with 400; start again "
        "without cursor.",
        "schema": {"type": "string", "maxLength": 2048},
    },
]

_ERROR: Final = {
    "type": "object",
    "required": ["Code", "Message"],
    "properties": {
        "Code": {"type": "string"},
        "Message": {"type": "string"},
        "Reasons": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_HEALTH: Final = {
    "get": {
        "operationId": "health",
        "summary": "Liveness check (no authentication)",
        "security": [],
        "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive")},
    }
}

_OPENAPI_PATH: Final = {
    "get": {
        "operationId": "openapi",
        "summary": "This document",
        "security": [],
        "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
    }
}

_NULLABLE_STRING: Final = {"type": ["string", "null"]}
#: An erasure receipt's per-store states.
_STORE_ERASURES: Final = {
    "type": "object",
    "description": "Per store where the person's data was (record, stamps, history, alerts, "
    "gallery_objects, scanner_memory, notification_jobs): erased, or pending until pending_until "
    "(null: until the event detail names)",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "state": {"enum": ["erased", "pending"]},
            "pending_until": {"type": ["string", "null"], "format": "date-time"},
            "detail": {"type": "string"},
        },
    },
}
_NULLABLE_NUMBER: Final = {"type": ["number", "null"]}
_DEVICE: Final = {
    "type": "object",
    "properties": {
        "device_id": {"type": "string"},
        "campaign_id": {"type": "string"},
        "checkpoint_id": {"type": "string"},
        "venue_id": _NULLABLE_STRING,
        "name": {"type": "string"},
        "status": {"enum": ["pending", "active", "revoked"]},
        "created_at": {"type": "string", "format": "date-time"},
        "activated_at": _NULLABLE_STRING,
        "last_seen_at": _NULLABLE_STRING,
        "revoked": {"type": "boolean"},
        "revoked_at": _NULLABLE_STRING,
        "type_b": {
            "type": "boolean",
            "description": "May send templates it computes itself (Type B); off unless a terminal "
            "manager allows it",
        },
        "probe_abuse": {
            "description": "What the probe guard knows of the device (device listings and changes; "
            "null elsewhere): flagged until a tenant admin clears it",
            "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/ProbeAbuse"}],
        },
    },
}
_PROBE_ABUSE: Final = {
    "type": "object",
    "properties": {
        "flagged": {"type": "boolean", "description": "The guard tripped since the flag was last cleared"},
        "flags": {"type": "integer", "description": "Trips since the flag was last cleared"},
        "flagged_at": _NULLABLE_STRING,
        "throttled_until": {
            **_NULLABLE_STRING,
            "description": "Type B templates are refused (429) until then",
        },
        "quarantined": {
            "type": "boolean",
            "description": "Type B templates are refused (403) until a tenant admin clears the flag",
        },
        "reason": {**_NULLABLE_STRING, "description": "Why the guard last tripped"},
    },
}
_DEVICE_CREATE: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "type_b": {
            "type": "boolean",
            "default": False,
            "description": "Allow the device to send templates it computes itself (Type B)",
        },
    },
}
_DEVICE_REGISTRATION: Final = {
    "allOf": [
        {"$ref": "#/components/schemas/Device"},
        {
            "type": "object",
            "properties": {
                "activation_code": {
                    "type": "string",
                    "description": "Shown once; single use; the terminal redeems it at POST /v1/activations",
                },
                "activation_expires_at": {"type": "string", "format": "date-time"},
            },
        },
    ]
}

_TYPE_B_REFUSALS: Final = {
    "403": _json(
        _ref("Error"),
        "The device is bound elsewhere, is not allowed Type B templates (PATCH /v1/devices/{id} "
        '{"type_b": true} allows it), or is blocked after repeated probe abuse (until a tenant admin '
        "clears it)",
    ),
    "429": _json(
        _ref("Error"),
        "Over the rate limit, or the device's templates are paused after too many that matched nobody: "
        "wait Retry-After seconds (photos are still accepted)",
    ),
}

EDGE_OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "eventface edge API",
        "version": "1.0.0",
        "description": "Called by checkpoint cameras. Send a photo (Type A) or a template computed on "
        "the device (Type B, only for devices a terminal manager allowed it); the answer says who was "
        "recognised and what was stamped, and never carries a similarity score. A Type B device that "
        "sends many templates matching nobody (new, near-identical or steadily improving ones) is "
        "paused (429), then blocked (403) until a tenant admin clears it.",
    },
    "security": [{"deviceKey": []}],
    "paths": {
        "/v1/checkpoints/{checkpoint_id}/scans": {
            "post": {
                "operationId": "recordScan",
                "summary": "Record a scan at a checkpoint (the device must be bound to it)",
                "parameters": [_path_param("checkpoint_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                        "image/webp": {"schema": {"type": "string", "format": "binary"}},
                        JSON: {"schema": {"oneOf": [_ref("PhotoScan"), _ref("TemplateScan")]}},
                    },
                },
                "responses": {
                    "200": _json(_ref("ScanResult"), "The scan's outcome (also for unknown faces)"),
                    **_errors(400, 401, 403, 404, 413, 415, 422, 429, 503),
                    **_TYPE_B_REFUSALS,
                },
            }
        },
        "/v1/venues/{venue_id}/sightings": {
            "post": {
                "operationId": "recordSighting",
                "summary": "Report a frame at a venue: every face is searched among its VIPs; the "
                "answer does not wait for the CRM (staff are alerted once per dedupe window)",
                "parameters": [_path_param("venue_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                        "image/webp": {"schema": {"type": "string", "format": "binary"}},
                        JSON: {"schema": {"oneOf": [_ref("PhotoScan"), _ref("TemplateScan")]}},
                    },
                },
                "responses": {
                    "200": _json(_ref("SightingResult"), "Per face: VIP or not, greeting name, alerted"),
                    **_errors(400, 401, 403, 404, 413, 415, 422, 429, 503),
                    **_TYPE_B_REFUSALS,
                },
            }
        },
        "/v1/activations": {
            "post": {
                "operationId": "activateDevice",
                "summary": "Redeem a one-time activation code for the device key (shown once)",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["code"],
                                "additionalProperties": False,
                                "properties": {"code": {"type": "string", "examples": ["K7QM-2XPD-9RTW"]}},
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("DeviceActivation"), "Activated"),
                    **_errors(400, 401, 413, 415, 429, 503),
                },
            }
        },
        "/v1/device/key": {
            "post": {
                "operationId": "rotateDeviceKey",
                "summary": "A new key for this device; the one sent keeps working for a grace period",
                "description": (
                    "Only the device's current key can rotate: a key in its grace period is refused "
                    "(403, use the new key); of concurrent rotations one wins, the others get 409. "
                    "A key rotated out earlier ends at once. A revocation ends every key."
                ),
                "responses": {
                    "200": _json(_ref("DeviceActivation"), "Rotated"),
                    **_errors(401, 403, 409, 429, 503),
                },
            }
        },
        "/v1/health": _HEALTH,
        "/openapi.json": _OPENAPI_PATH,
    },
    "components": {
        "securitySchemes": {"deviceKey": {"type": "apiKey", "in": "header", "name": "x-device-key"}},
        "schemas": {
            "Error": _ERROR,
            "Device": _DEVICE,
            "ProbeAbuse": _PROBE_ABUSE,
            "DeviceActivation": {
                "allOf": [
                    _ref("Device"),
                    {
                        "type": "object",
                        "properties": {
                            "device_key": {
                                "type": "string",
                                "description": "Shown once; keep it on the device",
                            }
                        },
                    },
                ]
            },
            "PhotoScan": {
                "type": "object",
                "required": ["photo"],
                "additionalProperties": False,
                "properties": {"photo": {"type": "string", "contentEncoding": "base64"}},
            },
            "TemplateScan": {
                "type": "object",
                "required": ["template", "model_id"],
                "additionalProperties": False,
                "description": "Type B: only from a device allowed it (type_b)",
                "properties": {
                    "template": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 128,
                        "maxItems": 128,
                        "description": "L2-normalised embedding (norm 1 ± 0.001)",
                    },
                    "model_id": {"type": "string", "examples": ["sface-2021dec"]},
                    "masked": {"type": "boolean", "default": False},
                },
            },
            "SightingResult": {
                "type": "object",
                "properties": {
                    "vip": {"type": "boolean", "description": "At least one face is a VIP"},
                    "faces": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "vip": {"type": "boolean"},
                                "member_id": _NULLABLE_STRING,
                                "name": {**_NULLABLE_STRING, "description": "The name to greet the guest by"},
                                "tier": _NULLABLE_STRING,
                                "alerted": {
                                    "type": "boolean",
                                    "description": "Staff were alerted by this frame (false inside the "
                                    "dedupe window)",
                                },
                                "alert_id": _NULLABLE_STRING,
                                "masked": {"type": ["boolean", "null"]},
                            },
                        },
                    },
                },
            },
            "ScanResult": {
                "type": "object",
                "description": "Never a similarity or a threshold, matched or not (the tenant's history "
                "keeps them)",
                "properties": {
                    "recognised": {"type": "boolean"},
                    "nickname": _NULLABLE_STRING,
                    "new_stamp": {"type": "boolean"},
                    "already_stamped": {"type": "boolean"},
                    "stamps": {"type": "integer"},
                    "required": {"type": "integer"},
                    "completed": {"type": "boolean"},
                    "reason": _NULLABLE_STRING,
                    "message": _NULLABLE_STRING,
                    "masked": {"type": ["boolean", "null"]},
                    "event_id": _NULLABLE_STRING,
                },
            },
        },
    },
}


def _op(
    op_id: str,
    summary: str,
    ok: str,
    schema: dict[str, Any],
    errors: tuple[int, ...],
    *,
    params: tuple[str, ...] = (),
    body: dict[str, Any] | None = None,
    paged: bool = False,
    status: int = 200,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary}
    parameters = [_path_param(p) for p in params] + (list(_PAGE_PARAMS) if paged else [])
    if paged and 400 not in errors:
        errors = (400, *errors)  # a limit out of range, a cursor not issued for the listing
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    operation["responses"] = {str(status): _json(schema, ok), **_errors(401, *errors, 429, 503)}
    return operation


def _page_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "cursor": {
                **_NULLABLE_STRING,
                "description": "Pass it back as cursor for the next page; null at the end. A page may "
                "hold fewer items than limit, even none, and still have a cursor: a filtered listing "
                "reads a bounded number of records per request, so follow the cursor until it is null.",
            },
        },
    }


_TEXTS: Final = {
    "type": "object",
    "properties": {"stamp": {"type": "string"}, "complete": {"type": "string"}},
    "additionalProperties": False,
}
_WHEN: Final = "From 2000-01-01 to before 2100-01-01 UTC"
_CAMPAIGN_FIELDS: Final = {
    "name": {"type": "string", "maxLength": 500, "description": "One line of printable characters"},
    "starts_at": {"type": "string", "format": "date-time", "description": _WHEN},
    "ends_at": {"type": "string", "format": "date-time", "description": _WHEN},
    "stamps_required": {"type": "integer", "minimum": 1, "maximum": 100},
    "reward_text": {"type": "string"},
    "notification_texts": _TEXTS,
    "cooldown_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
}
_C = ("campaign_id",)


def _query(name: str, description: str, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"} | ({"format": fmt} if fmt else {})
    if fmt == "date-time":  # an empty value does not filter, as if absent
        schema = {"type": "string", "anyOf": [{"format": fmt}, {"maxLength": 0}]}
    return {"name": name, "in": "query", "description": description, "schema": schema}


_HISTORY_FILTERS: Final = [
    _query("since", "Events at or after this time (ISO 8601 with a timezone)", "date-time"),
    _query("until", "Events before this time", "date-time"),
    _query("device_id", "Only this device's events"),
    _query("checkpoint_id", "Only this checkpoint's events"),
    _query("participant_id", "Only this person's events"),
]
_AUDIT_FILTERS: Final = [
    _query("since", "Entries at or after this time", "date-time"),
    _query("until", "Entries before this time", "date-time"),
    _query("actor", "Only this actor (user:<sub>, api_key:<id>, device:<id>)"),
    _query("action", "Only this action (e.g. history.read)"),
]
#: operationId -> the authority the route needs (None: any authenticated caller).
ADMIN_AUTHORITIES: Final[dict[str, str | None]] = {
    "createCampaign": "campaigns",
    "listCampaigns": "campaigns",
    "getCampaign": "campaigns",
    "updateCampaign": "campaigns",
    "publishCampaign": "campaigns",
    "endCampaign": "campaigns",
    "addCheckpoint": "campaigns",
    "removeCheckpoint": "campaigns",
    "registerParticipant": "targets",
    "listParticipants": "targets",
    "getParticipant": "targets",
    "eraseParticipant": "targets",
    "registerDevice": "terminals",
    "revokeDevice": "terminals",
    "updateDevice": "terminals",
    "clearProbeAbuse": "tenant_admin",
    "listDevices": "terminals",
    "newActivationCode": "terminals",
    "listHistory": "history",
    "createApiKey": "api_keys",
    "listApiKeys": "api_keys",
    "revokeApiKey": "api_keys",
    "readAudit": "tenant_admin",
    "me": None,
    "createVenue": "tenant_admin",
    "listVenues": "venue_staff",
    "getVenue": "venue_staff",
    "updateVenue": "tenant_admin",
    "listCrmSecrets": "tenant_admin",
    "addMember": "targets",
    "listMembers": "targets",
    "getMember": "targets",
    "eraseMember": "targets",
    "registerVenueDevice": "terminals",
    "subscribeStaffDevice": "venue_staff",
    "listStaffDevices": "venue_staff",
    "unsubscribeStaffDevice": "venue_staff",
    "listAlerts": "venue_staff",
    "getAlert": "venue_staff",
    "acknowledgeAlert": "venue_staff",
    "flagFalseMatch": "venue_staff",
    "sendMessage": "campaigns",
    "listMessages": "campaigns",
    "getMessage": "campaigns",
}
_V = ("venue_id",)
_ALERT = ("venue_id", "alert_id")

ADMIN_OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "eventface admin API",
        "version": "1.0.0",
        "description": "For marketers, operators and integrations: campaigns, checkpoints, participants, "
        "devices, scan history, management API keys and the audit log of the caller's tenant. Every "
        "operation names the authority it needs (x-required-authority) and is audited.",
    },
    "security": [{"bearer": []}, {"apiKey": []}],
    "paths": {
        "/v1/campaigns": {
            "post": _op(
                "createCampaign",
                "Create a draft campaign",
                "Created",
                _ref("Campaign"),
                (400, 413),
                body=_ref("CampaignCreate"),
                status=201,
            ),
            "get": _op("listCampaigns", "List campaigns", "A page", _page_of("Campaign"), (400,), paged=True),
        },
        "/v1/campaigns/{campaign_id}": {
            "get": _op("getCampaign", "Read a campaign", "The campaign", _ref("Campaign"), (404,), params=_C),
            "patch": _op(
                "updateCampaign",
                "Change a campaign (status rules apply)",
                "Updated",
                _ref("Campaign"),
                (400, 404, 409, 413),
                params=_C,
                body=_ref("CampaignChanges"),
            ),
        },
        "/v1/campaigns/{campaign_id}/publish": {
            "post": _op(
                "publishCampaign", "Draft → live", "Published", _ref("Campaign"), (404, 409), params=_C
            ),
        },
        "/v1/campaigns/{campaign_id}/end": {
            "post": _op(
                "endCampaign", "Draft or live → ended", "Ended", _ref("Campaign"), (404, 409), params=_C
            ),
        },
        "/v1/campaigns/{campaign_id}/checkpoints": {
            "post": _op(
                "addCheckpoint",
                "Add a checkpoint",
                "Created",
                _ref("CheckpointCreated"),
                (400, 404, 409, 413),
                params=_C,
                status=201,
                body={
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "maxLength": 100},
                        "location": {"type": "string", "maxLength": 100},
                    },
                },
            ),
        },
        "/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}": {
            "delete": _op(
                "removeCheckpoint",
                "Remove a checkpoint (drafts only)",
                "The campaign",
                _ref("Campaign"),
                (400, 404, 409),
                params=(*_C, "checkpoint_id"),
            ),
        },
        "/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices": {
            "post": _op(
                "registerDevice",
                "Register a camera; its key is shown once",
                "Created",
                _ref("DeviceRegistration"),
                (400, 404, 413),
                params=(*_C, "checkpoint_id"),
                status=201,
                body=_DEVICE_CREATE,
            ),
        },
        "/v1/devices": {
            "get": _op(
                "listDevices",
                "The tenant's devices: status, last seen",
                "A page",
                _page_of("Device"),
                (400,),
                paged=True,
            ),
        },
        "/v1/devices/{device_id}": {
            "delete": _op(
                "revokeDevice",
                "Revoke a device: its keys are refused on the next request",
                "Revoked",
                _ref("Device"),
                (404,),
                params=("device_id",),
            ),
            "patch": _op(
                "updateDevice",
                "Allow (or stop) a device sending templates it computes itself (Type B); applies to "
                "its current key at once",
                "Changed",
                _ref("Device"),
                (400, 404, 409, 413),
                params=("device_id",),
                body={
                    "type": "object",
                    "required": ["type_b"],
                    "additionalProperties": False,
                    "properties": {"type_b": {"type": "boolean"}},
                },
            ),
        },
        "/v1/devices/{device_id}/probe-abuse": {
            "delete": _op(
                "clearProbeAbuse",
                "Clear a device's probe-abuse flag after review: its templates are accepted again "
                "(trips are audited as devices.probe_abuse)",
                "Cleared",
                _ref("Device"),
                (404,),
                params=("device_id",),
            ),
        },
        "/v1/devices/{device_id}/activation-code": {
            "post": _op(
                "newActivationCode",
                "A new one-time activation code (redeeming it replaces the device's key)",
                "Created",
                _ref("DeviceRegistration"),
                (404,),
                params=("device_id",),
                status=201,
            ),
        },
        "/v1/campaigns/{campaign_id}/participants": {
            "post": _op(
                "registerParticipant",
                "Register a participant's face (consent required)",
                "Registered",
                _ref("Participant"),
                (400, 404, 409, 413, 422),
                params=_C,
                body=_ref("ParticipantRegistration"),
                status=201,
            ),
            "get": _op(
                "listParticipants",
                "List participants",
                "A page",
                _page_of("Participant"),
                (400, 404),
                params=_C,
                paged=True,
            ),
        },
        "/v1/campaigns/{campaign_id}/participants/{participant_id}": {
            "get": _op(
                "getParticipant",
                "A participant with progress",
                "The participant",
                _ref("Participant"),
                (404,),
                params=(*_C, "participant_id"),
            ),
            "delete": _op(
                "eraseParticipant",
                "Erase a participant completely",
                "Erasure receipt",
                _ref("ErasureReceipt"),
                (404,),
                params=(*_C, "participant_id"),
            ),
        },
        "/v1/campaigns/{campaign_id}/history": {
            "get": {
                **(
                    history := _op(
                        "listHistory",
                        "Scan history, newest first, filtered by time range, device, checkpoint, person",
                        "A page",
                        _page_of("Event"),
                        (400, 404),
                        params=_C,
                        paged=True,
                    )
                ),
                "parameters": [*history["parameters"], *_HISTORY_FILTERS],
            },
        },
        "/v1/me": {
            "get": _op("me", "The caller: tenant, kind and authorities", "The caller", _ref("Principal"), ()),
        },
        "/v1/api-keys": {
            "post": _op(
                "createApiKey",
                "Create a management API key (signed-in users only; the secret is shown once)",
                "Created",
                _ref("NewApiKey"),
                (400, 413),
                body=_ref("ApiKeyCreate"),
                status=201,
            ),
            "get": _op(
                "listApiKeys",
                "List the tenant's keys (prefix only)",
                "A page",
                _page_of("ApiKey"),
                (400,),
                paged=True,
            ),
        },
        "/v1/api-keys/{key_id}": {
            "delete": _op(
                "revokeApiKey",
                "Revoke a key at once",
                "The revoked key",
                _ref("ApiKey"),
                (404,),
                params=("key_id",),
            ),
        },
        "/v1/audit": {
            "get": {
                **(
                    audit := _op(
                        "readAudit",
                        "The audit log, newest first",
                        "A page",
                        _page_of("AuditEntry"),
                        (400,),
                        paged=True,
                    )
                ),
                "parameters": [*audit["parameters"], *_AUDIT_FILTERS],
            },
        },
        "/v1/venues": {
            "post": _op(
                "createVenue",
                "Create a venue (dedupe window, CRM connector) with an empty VIP gallery",
                "Created",
                _ref("Venue"),
                (400, 413),
                body=_ref("VenueCreate"),
                status=201,
            ),
            "get": _op("listVenues", "List venues", "A page", _page_of("Venue"), (400,), paged=True),
        },
        "/v1/venues/{venue_id}": {
            "get": _op("getVenue", "Read a venue", "The venue", _ref("Venue"), (404,), params=_V),
            "patch": _op(
                "updateVenue",
                "Change a venue's name, dedupe window or CRM connector",
                "The venue",
                _ref("Venue"),
                (400, 404, 409, 413),
                params=_V,
                body=_ref("VenueChanges"),
            ),
        },
        "/v1/crm/secrets": {
            "get": _op(
                "listCrmSecrets",
                "The secret names this tenant may give a venue's crm.secret_id (never the values)",
                "The tenant's prefix and the secrets named under it",
                _ref("CrmSecrets"),
                (),
            ),
        },
        "/v1/venues/{venue_id}/members": {
            "post": _op(
                "addMember",
                "Register a VIP member's face (the photo is not kept)",
                "Registered",
                _ref("Member"),
                (400, 404, 413, 422),
                params=_V,
                body=_ref("MemberCreate"),
                status=201,
            ),
            "get": _op(
                "listMembers",
                "List VIP members",
                "A page",
                _page_of("Member"),
                (400, 404),
                params=_V,
                paged=True,
            ),
        },
        "/v1/venues/{venue_id}/members/{member_id}": {
            "get": _op(
                "getMember", "Read a member", "The member", _ref("Member"), (404,), params=(*_V, "member_id")
            ),
            "delete": _op(
                "eraseMember",
                "Erase a member completely: templates, alerts naming them, the record (idempotent)",
                "Erasure receipt",
                {
                    "type": "object",
                    "properties": {
                        "member_id": {"type": "string"},
                        "record_deleted": {"type": "boolean"},
                        "templates_deleted": {"type": "boolean"},
                        "alerts_deleted": {"type": "integer"},
                        "erased_at": {"type": "string", "format": "date-time"},
                        "stores": _STORE_ERASURES,
                    },
                },
                (404,),
                params=(*_V, "member_id"),
            ),
        },
        "/v1/venues/{venue_id}/devices": {
            "post": _op(
                "registerVenueDevice",
                "Register a venue camera; it activates with the one-time code",
                "Created",
                _ref("DeviceRegistration"),
                (400, 404, 413),
                params=_V,
                status=201,
                body=_DEVICE_CREATE,
            ),
        },
        "/v1/venues/{venue_id}/staff-devices": {
            "post": _op(
                "subscribeStaffDevice",
                "Subscribe a staff device to the venue's VIP alerts",
                "Subscribed",
                _ref("StaffDevice"),
                (400, 404, 413),
                params=_V,
                body=_ref("StaffDeviceCreate"),
                status=201,
            ),
            "get": _op(
                "listStaffDevices",
                "The venue's subscribed staff devices (all of them: cursor is always null)",
                "All of them",
                _page_of("StaffDevice"),
                (400, 404),
                params=_V,
            ),
        },
        "/v1/venues/{venue_id}/staff-devices/{staff_device_id}": {
            "delete": _op(
                "unsubscribeStaffDevice",
                "Unsubscribe a staff device",
                "Unsubscribed",
                {"type": "object", "properties": {"staff_device_id": {"type": "string"}}},
                (404,),
                params=(*_V, "staff_device_id"),
            ),
        },
        "/v1/venues/{venue_id}/alerts": {
            "get": {
                **(
                    alerts := _op(
                        "listAlerts",
                        "The staff board: VIP alerts, newest first, with profile and handling",
                        "A page",
                        _page_of("Alert"),
                        (400, 404),
                        params=_V,
                        paged=True,
                    )
                ),
                "parameters": [
                    *alerts["parameters"],
                    _query("since", "Alerts at or after this time", "date-time"),
                ],
            },
        },
        "/v1/venues/{venue_id}/alerts/{alert_id}": {
            "get": _op("getAlert", "Read an alert", "The alert", _ref("Alert"), (404,), params=_ALERT),
        },
        "/v1/venues/{venue_id}/alerts/{alert_id}/acknowledge": {
            "post": _op(
                "acknowledgeAlert",
                '"I\'ll greet them": the first acknowledgement is kept',
                "The alert",
                _ref("Alert"),
                (404,),
                params=_ALERT,
            ),
        },
        "/v1/venues/{venue_id}/alerts/{alert_id}/false-match": {
            "post": _op(
                "flagFalseMatch",
                "Flag the alert as naming the wrong person (recorded with who and when)",
                "The alert",
                _ref("Alert"),
                (400, 404),
                params=_ALERT,
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"note": {"type": "string", "maxLength": 500}},
                },
            ),
        },
        "/v1/campaigns/{campaign_id}/messages": {
            "post": {
                **(
                    send := _op(
                        "sendMessage",
                        "Push a message to a segment of the campaign's participants",
                        "Queued, with the number of participants targeted",
                        _ref("Message"),
                        (400, 404, 409, 413),
                        params=_C,
                        body=_ref("MessageCreate"),
                        status=201,
                    )
                ),
                "parameters": [
                    *send["parameters"],
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "description": "The same key sends one message: a retry queues only what is "
                        "missing (409 if the key was used for another message)",
                        "schema": {"type": "string", "maxLength": 128},
                    },
                ],
            },
            "get": _op(
                "listMessages",
                "The campaign's messages with delivery counts, newest first",
                "A page",
                _page_of("Message"),
                (400, 404),
                params=_C,
                paged=True,
            ),
        },
        "/v1/campaigns/{campaign_id}/messages/{message_id}": {
            "get": _op(
                "getMessage",
                "A message with its delivery counts",
                "The message",
                _ref("Message"),
                (404,),
                params=(*_C, "message_id"),
            ),
        },
        "/v1/health": _HEALTH,
        "/openapi.json": _OPENAPI_PATH,
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An OpenID Connect ID token (Cognito); the tenant is the one the "
                "platform's membership record gives the user (custom:tenant_id must name it, else 403), "
                "authorities from the user's groups",
            },
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "A management API key",
            },
        },
        "schemas": {
            "Error": _ERROR,
            "CampaignCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "starts_at", "ends_at", "stamps_required"],
                "properties": _CAMPAIGN_FIELDS,
            },
            "CampaignChanges": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **_CAMPAIGN_FIELDS,
                    "notification_texts": {**_TEXTS, "required": ["stamp", "complete"]},
                },
            },
            "Checkpoint": {
                "type": "object",
                "properties": {
                    "checkpoint_id": {"type": "string"},
                    "name": {"type": "string"},
                    "location": {"type": "string"},
                },
            },
            "CheckpointCreated": {
                "allOf": [
                    _ref("Checkpoint"),
                    {"type": "object", "properties": {"campaign": _ref("Campaign")}},
                ],
            },
            "Campaign": {
                "type": "object",
                "properties": {
                    "campaign_id": {"type": "string"},
                    "status": {"enum": ["draft", "live", "ended"]},
                    **_CAMPAIGN_FIELDS,
                    "checkpoints": {"type": "array", "items": _ref("Checkpoint")},
                    "version": {"type": "integer"},
                },
            },
            "ParticipantRegistration": {
                "type": "object",
                "additionalProperties": False,
                "required": ["nickname", "consent", "photo"],
                "properties": {
                    "nickname": {"type": "string", "maxLength": 40},
                    "consent": {"const": True},
                    "photo": {"type": "string", "contentEncoding": "base64"},
                    "push_token": {
                        "type": "string",
                        "description": "<platform>:<token>, platform apns, fcm, webhook or inbox (a "
                        "webhook URL passes the egress policy, as crm.url does)",
                    },
                    "locale": {"enum": ["ja", "en"], "default": "en"},
                },
            },
            "Participant": {
                "type": "object",
                "properties": {
                    "participant_id": {"type": "string"},
                    "campaign_id": {"type": "string"},
                    "nickname": {"type": "string"},
                    "consent": {"type": "object"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "has_push": {"type": "boolean"},
                    "locale": {"enum": ["ja", "en"]},
                    "template_count": {"type": "integer"},
                    "progress": {
                        "type": "object",
                        "description": "Only when reading one participant",
                        "properties": {
                            "stamps": {"type": "integer"},
                            "checkpoint_ids": {"type": "array", "items": {"type": "string"}},
                            "completed": {"type": "boolean"},
                            "completed_at": _NULLABLE_STRING,
                        },
                    },
                },
            },
            "ErasureReceipt": {
                "type": "object",
                "properties": {
                    "participant_id": {"type": "string"},
                    "record_deleted": {"type": "boolean"},
                    "templates_deleted": {"type": "boolean"},
                    "stamps_deleted": {"type": "integer"},
                    "history_deleted": {"type": "integer"},
                    "verified": {"type": "boolean"},
                    "erased_at": {"type": "string", "format": "date-time"},
                    "stores": _STORE_ERASURES,
                },
            },
            "Device": _DEVICE,
            "ProbeAbuse": _PROBE_ABUSE,
            "DeviceRegistration": _DEVICE_REGISTRATION,
            "Principal": {
                "type": "object",
                "properties": {
                    "tenant_id": {"type": "string"},
                    "kind": {"enum": ["user", "api_key", "device"]},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "authorities": {"type": "array", "items": _ref("Authority")},
                },
            },
            "Authority": {
                "enum": [
                    "targets",
                    "history",
                    "api_keys",
                    "terminals",
                    "campaigns",
                    "venue_staff",
                    "tenant_admin",
                ]
            },
            "ApiKeyCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "authorities"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "authorities": {"type": "array", "items": _ref("Authority"), "minItems": 1},
                    "ttl_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 365, "default": 90},
                },
            },
            "ApiKey": {
                "type": "object",
                "properties": {
                    "key_id": {"type": "string"},
                    "name": {"type": "string"},
                    "prefix": {"type": "string"},
                    "authorities": {"type": "array", "items": _ref("Authority")},
                    "created_at": {"type": "string", "format": "date-time"},
                    "created_by": {"type": "string"},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "revoked": {"type": "boolean"},
                    "revoked_at": _NULLABLE_STRING,
                    "last_used_at": _NULLABLE_STRING,
                },
            },
            "NewApiKey": {
                "allOf": [
                    _ref("ApiKey"),
                    {
                        "type": "object",
                        "properties": {"api_key": {"type": "string", "description": "Shown once"}},
                    },
                ]
            },
            "AuditEntry": {
                "type": "object",
                "properties": {
                    "entry_id": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "actor": {"type": "string"},
                    "action": {"type": "string"},
                    "target": {"type": "string"},
                    "outcome": {"enum": ["ok", "denied", "unauthenticated", "not_found", "failed"]},
                    "detail": {"type": "string"},
                },
            },
            "CrmConfig": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "kind": {"enum": ["none", "rest", "webhook"]},
                    "url": {
                        "type": "string",
                        "description": "rest: profile URL with {customer_id}; webhook: where sightings "
                        "are posted. https (http only on the local stack), and the host must resolve "
                        "to public addresses only: no loopback, private, link-local or metadata "
                        "address (400 otherwise); redirects are not followed",
                    },
                    "field_map": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Our field (name, tier, ...) -> dotted path in the CRM's JSON answer",
                    },
                    "auth_header": {"type": "string", "default": "Authorization"},
                    "secret_id": {
                        "type": ["string", "null"],
                        "description": "Secrets Manager secret name under the caller's tenant, "
                        "eventface/tenants/<tenant_id>/<name> (GET /v1/crm/secrets lists them): the auth "
                        "header value (rest) or HMAC key (webhook). Another prefix or an ARN is 400",
                    },
                    "deadline_ms": {"type": "integer", "minimum": 50, "maximum": 10000, "default": 1500},
                },
            },
            "CrmSecrets": {
                "type": "object",
                "properties": {
                    "prefix": {
                        "type": "string",
                        "description": "Every secret of the tenant is named under this, e.g. "
                        "eventface/tenants/acme/",
                    },
                    "secret_ids": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "The names that exist under the prefix, sorted",
                    },
                },
            },
            "VenueCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "dedupe_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "default": 30},
                    "crm": _ref("CrmConfig"),
                },
            },
            "VenueChanges": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "dedupe_minutes": {"type": "integer", "minimum": 0, "maximum": 1440},
                    "crm": _ref("CrmConfig"),
                },
            },
            "Venue": {
                "type": "object",
                "properties": {
                    "venue_id": {"type": "string"},
                    "name": {"type": "string"},
                    "dedupe_minutes": {"type": "integer"},
                    "crm": _ref("CrmConfig"),
                    "created_at": {"type": "string", "format": "date-time"},
                    "version": {"type": "integer"},
                },
            },
            "MemberCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "photo"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100, "description": "How staff greet the guest"},
                    "photo": {"type": "string", "contentEncoding": "base64"},
                    "tier": {"type": "string", "maxLength": 40},
                    "crm_customer_id": {"type": "string", "maxLength": 128},
                    "notes": {"type": "string", "maxLength": 1000},
                },
            },
            "Member": {
                "type": "object",
                "properties": {
                    "member_id": {"type": "string"},
                    "venue_id": {"type": "string"},
                    "name": {"type": "string"},
                    "tier": {"type": "string"},
                    "crm_customer_id": {"type": "string"},
                    "notes": {"type": "string"},
                    "template_count": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "StaffDeviceCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "platform"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "platform": {"enum": ["apns", "fcm", "webhook", "inbox"]},
                    "token": {
                        "type": "string",
                        "description": "Device token (apns, fcm) or URL (webhook; it passes the egress "
                        "policy, as crm.url does)",
                    },
                    "locale": {"enum": ["ja", "en"], "default": "ja"},
                },
            },
            "StaffDevice": {
                "type": "object",
                "properties": {
                    "staff_device_id": {"type": "string"},
                    "venue_id": {"type": "string"},
                    "name": {"type": "string"},
                    "platform": {"enum": ["apns", "fcm", "webhook", "inbox"]},
                    "locale": {"type": "string"},
                    "has_token": {"type": "boolean"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "disabled": {"type": "boolean", "description": "The push service reported it dead"},
                    "disabled_at": _NULLABLE_STRING,
                },
            },
            "Alert": {
                "type": "object",
                "properties": {
                    "alert_id": {"type": "string"},
                    "venue_id": {"type": "string"},
                    "member_id": {"type": "string"},
                    "name": {"type": "string"},
                    "tier": {"type": "string"},
                    "sighted_at": {"type": "string", "format": "date-time"},
                    "device_id": {"type": "string"},
                    "similarity": {"type": "number"},
                    "profile_status": {"enum": ["pending", "ok", "not_found", "unavailable", "none"]},
                    "profile": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                    "profile_reason": {"type": "string"},
                    "enriched_at": _NULLABLE_STRING,
                    "pushed_at": _NULLABLE_STRING,
                    "delivered": {"type": "integer"},
                    "failed": {"type": "integer"},
                    "acknowledged_by": _NULLABLE_STRING,
                    "acknowledged_at": _NULLABLE_STRING,
                    "false_match": {"type": "boolean"},
                    "false_match_by": _NULLABLE_STRING,
                    "false_match_at": _NULLABLE_STRING,
                    "false_match_note": {"type": "string"},
                    "expires_at": {
                        **_NULLABLE_STRING,
                        "description": "When the alert is deleted (EVENTFACE_ALERT_RETENTION_DAYS)",
                    },
                },
            },
            "LocalizedTexts": {
                "type": "object",
                "propertyNames": {"enum": ["ja", "en"]},
                "additionalProperties": {"type": "string"},
                "examples": [{"ja": "ご来場ありがとうございます", "en": "Thanks for coming"}],
            },
            "Segment": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "min_stamps": {"type": "integer", "minimum": 0, "maximum": 100, "default": 0},
                    "completed": {"type": ["boolean", "null"], "description": "Absent or null: either"},
                },
            },
            "MessageCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["body"],
                "properties": {
                    "title": {"anyOf": [_ref("LocalizedTexts"), {"type": "null"}]},
                    "body": _ref("LocalizedTexts"),
                    "segment": {
                        "anyOf": [_ref("Segment"), {"type": "null"}],
                        "description": "Absent or null: all",
                    },
                },
            },
            "Message": {
                "type": "object",
                "properties": {
                    "message_id": {"type": "string"},
                    "campaign_id": {"type": "string"},
                    "title": _ref("LocalizedTexts"),
                    "body": _ref("LocalizedTexts"),
                    "segment": _ref("Segment"),
                    "created_at": {"type": "string", "format": "date-time"},
                    "created_by": {"type": "string"},
                    "targeted": {"type": "integer"},
                    "delivered": {"type": "integer"},
                    "failed": {"type": "integer"},
                    "no_endpoint": {"type": "integer", "description": "Targeted, but without a push token"},
                    "pending": {"type": "integer"},
                },
            },
            "Event": {
                "type": "object",
                "properties": {
                    "event_id": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "device_id": {"type": "string"},
                    "checkpoint_id": {"type": "string"},
                    "outcome": {
                        "enum": ["stamped", "already_stamped", "cooldown", "unknown", "no_face", "refused"]
                    },
                    "participant_id": _NULLABLE_STRING,
                    "similarity": _NULLABLE_NUMBER,
                    "threshold": _NULLABLE_NUMBER,
                    "masked": {"type": ["boolean", "null"]},
                    "reason": _NULLABLE_STRING,
                    "expires_at": _NULLABLE_STRING,
                },
            },
        },
    },
}


def _declare_authorities(document: dict[str, Any]) -> None:
    """Every admin operation states its authority and can answer 403."""
    for item in document["paths"].values():
        for operation in item.values():
            op_id = operation["operationId"]
            if op_id in ADMIN_AUTHORITIES:
                operation["x-required-authority"] = ADMIN_AUTHORITIES[op_id]
                operation["responses"].setdefault(
                    "403", _json(_ref("Error"), "The caller lacks the authority")
                )


_declare_authorities(ADMIN_OPENAPI)
DOCUMENTS: Final = {"edge.json": EDGE_OPENAPI, "admin.json": ADMIN_OPENAPI}


def dump(document: dict[str, Any]) -> str:
    """The canonical text of a document (as checked in)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write the documents into the directory ``argv[0]`` (``docs/openapi``)."""
    target = Path(argv[0] if argv else "docs/openapi")
    target.mkdir(parents=True, exist_ok=True)
    for name, document in DOCUMENTS.items():
        (target / name).write_text(dump(document), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

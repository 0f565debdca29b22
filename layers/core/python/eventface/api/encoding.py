"""JSON shapes of domain objects on the wire (ISO 8601 UTC times; no faces, templates or keys)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from eventface.domain.access import ApiKey, AuditEntry, Principal
from eventface.domain.model import (
    Campaign,
    Checkpoint,
    Device,
    ErasureReceipt,
    Page,
    Participant,
    Progress,
    RecognitionEvent,
    ScanResult,
    StoreErasure,
)
from eventface.domain.probe_guard import ProbeStatus
from eventface.domain.vip import (
    CampaignMessage,
    CrmConfig,
    SightingResult,
    StaffDevice,
    Venue,
    VipAlert,
    VipMember,
)
from eventface.services.devices import DeviceActivation, DeviceRegistration
from eventface.services.venues import MemberErasure

T = TypeVar("T")


def when(value: datetime | None) -> str | None:
    """ISO 8601 (or None)."""
    return value.isoformat() if value is not None else None


def scan_result(result: ScanResult) -> dict[str, Any]:
    """What the device shows after a scan: never a score (see :class:`ScanResult`)."""
    return {
        "recognised": result.recognised,
        "nickname": result.nickname,
        "new_stamp": result.new_stamp,
        "already_stamped": result.already_stamped,
        "stamps": result.stamps,
        "required": result.required,
        "completed": result.completed,
        "reason": result.reason,
        "message": result.message,
        "masked": result.masked,
        "event_id": result.event_id,
    }


def checkpoint(value: Checkpoint) -> dict[str, Any]:
    return {"checkpoint_id": value.checkpoint_id, "name": value.name, "location": value.location}


def campaign(value: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": value.campaign_id,
        "name": value.name,
        "status": value.status.value,
        "starts_at": when(value.starts_at),
        "ends_at": when(value.ends_at),
        "checkpoints": [checkpoint(c) for c in value.checkpoints],
        "stamps_required": value.stamps_required,
        "reward_text": value.reward_text,
        "notification_texts": {"stamp": value.texts.stamp, "complete": value.texts.completion},
        "cooldown_seconds": value.cooldown_seconds,
        "version": value.version,
    }


def participant(value: Participant, progress: Progress | None = None) -> dict[str, Any]:
    """A participant; the push token itself is not echoed, only whether there is one."""
    body: dict[str, Any] = {
        "participant_id": value.participant_id,
        "campaign_id": value.campaign_id,
        "nickname": value.nickname,
        "consent": {
            "given": value.consent.given,
            "at": when(value.consent.at),
            "text_version": value.consent.text_version,
        },
        "created_at": when(value.created_at),
        "has_push": value.push_endpoint is not None,
        "locale": value.locale,
        "template_count": value.template_count,
    }
    if progress is not None:
        body["progress"] = {
            "stamps": progress.stamps,
            "checkpoint_ids": sorted(progress.checkpoint_ids),
            "completed": progress.completed_at is not None,
            "completed_at": when(progress.completed_at),
        }
    return body


def device(value: Device) -> dict[str, Any]:
    return {
        "device_id": value.device_id,
        "campaign_id": value.campaign_id,
        "checkpoint_id": value.checkpoint_id,
        "venue_id": value.venue_id,
        "name": value.name,
        "status": value.status,
        "created_at": when(value.created_at),
        "activated_at": when(value.activated_at),
        "last_seen_at": when(value.last_seen_at),
        "revoked": value.revoked,
        "revoked_at": when(value.revoked_at),
        "type_b": value.type_b,
        "probe_abuse": probe_status(value.probe_status) if value.probe_status is not None else None,
    }


def probe_status(value: ProbeStatus) -> dict[str, Any]:
    """What the probe guard knows of a device (``flagged`` until a tenant admin clears it)."""
    return {
        "flagged": value.flagged,
        "flags": value.flags,
        "flagged_at": when(value.flagged_at),
        "throttled_until": when(value.throttled_until),
        "quarantined": value.quarantined,
        "reason": value.reason,
    }


def device_registration(value: DeviceRegistration) -> dict[str, Any]:
    """A pending device with its activation code: the only time the code is ever shown."""
    return {
        **device(value.device),
        "activation_code": value.activation_code,
        "activation_expires_at": when(value.expires_at),
    }


def device_activation(value: DeviceActivation) -> dict[str, Any]:
    """An activated device with its key: the only time the key is ever shown."""
    return {**device(value.device), "device_key": value.key}


def store_erasures(stores: tuple[StoreErasure, ...]) -> dict[str, Any]:
    """Per store: ``erased``, or ``pending`` until ``pending_until`` (null: see ``detail``)."""
    return {
        line.store: {
            "state": line.state.value,
            "pending_until": when(line.pending_until),
            "detail": line.detail,
        }
        for line in stores
    }


def erasure(value: ErasureReceipt) -> dict[str, Any]:
    return {
        "participant_id": value.participant_id,
        "record_deleted": value.record_deleted,
        "templates_deleted": value.templates_deleted,
        "stamps_deleted": value.stamps_deleted,
        "history_deleted": value.history_deleted,
        "verified": value.verified,
        "erased_at": when(value.erased_at),
        "stores": store_erasures(value.stores),
    }


def event(value: RecognitionEvent) -> dict[str, Any]:
    return {
        "event_id": value.event_id,
        "at": when(value.at),
        "device_id": value.device_id,
        "checkpoint_id": value.checkpoint_id,
        "outcome": value.outcome.value,
        "participant_id": value.participant_id,
        "similarity": value.similarity,
        "threshold": value.threshold,
        "masked": value.masked,
        "reason": value.reason,
        "expires_at": when(value.expires_at),
    }


def page(value: Page[T], encode: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """``{"items": [...], "cursor": "..."|null}``: pass ``cursor`` back for the next page."""
    return {"items": [encode(item) for item in value.items], "cursor": value.cursor}


def api_key(value: ApiKey) -> dict[str, Any]:
    """A management API key's metadata: its prefix, never the secret or its hash."""
    return {
        "key_id": value.key_id,
        "name": value.name,
        "prefix": value.prefix,
        "authorities": sorted(a.value for a in value.authorities),
        "created_at": when(value.created_at),
        "created_by": value.created_by,
        "expires_at": when(value.expires_at),
        "revoked": value.revoked_at is not None,
        "revoked_at": when(value.revoked_at),
        "last_used_at": when(value.last_used_at),
    }


def new_api_key(value: ApiKey, secret: str) -> dict[str, Any]:
    """A new key with its secret: the only time the secret is ever shown."""
    return {**api_key(value), "api_key": secret}


def audit_entry(value: AuditEntry) -> dict[str, Any]:
    return {
        "entry_id": value.entry_id,
        "at": when(value.at),
        "actor": value.actor,
        "action": value.action,
        "target": value.target,
        "outcome": value.outcome.value,
        "detail": value.detail,
    }


def principal(value: Principal) -> dict[str, Any]:
    return {
        "tenant_id": value.tenant_id,
        "kind": value.kind.value,
        "id": value.principal_id,
        "name": value.name,
        "authorities": sorted(a.value for a in value.authorities),
    }


def sighting_result(result: SightingResult) -> dict[str, Any]:
    """What a venue camera shows: per face, VIP or not, the greeting name, whether staff are alerted
    (never a score)."""
    return {
        "vip": result.vip,
        "faces": [
            {
                "vip": face.vip,
                "member_id": face.member_id,
                "name": face.name,
                "tier": face.tier,
                "alerted": face.alerted,
                "alert_id": face.alert_id,
                "masked": face.masked,
            }
            for face in result.faces
        ],
    }


def crm(value: CrmConfig) -> dict[str, Any]:
    """A venue's CRM connector (the secret's id, never its value)."""
    return {
        "kind": value.kind.value,
        "url": value.url,
        "field_map": dict(value.field_map),
        "auth_header": value.auth_header,
        "secret_id": value.secret_id,
        "deadline_ms": value.deadline_ms,
    }


def venue(value: Venue) -> dict[str, Any]:
    return {
        "venue_id": value.venue_id,
        "name": value.name,
        "dedupe_minutes": value.dedupe_minutes,
        "crm": crm(value.crm),
        "created_at": when(value.created_at),
        "version": value.version,
    }


def member(value: VipMember) -> dict[str, Any]:
    return {
        "member_id": value.member_id,
        "venue_id": value.venue_id,
        "name": value.name,
        "tier": value.tier,
        "crm_customer_id": value.crm_customer_id,
        "notes": value.notes,
        "template_count": value.template_count,
        "created_at": when(value.created_at),
    }


def member_erasure(value: MemberErasure) -> dict[str, Any]:
    return {
        "member_id": value.member_id,
        "record_deleted": value.record_deleted,
        "templates_deleted": value.templates_deleted,
        "alerts_deleted": value.alerts_deleted,
        "erased_at": when(value.erased_at),
        "stores": store_erasures(value.stores),
    }


def staff_device(value: StaffDevice) -> dict[str, Any]:
    """A subscribed staff device (whether it has a token, never the token itself)."""
    return {
        "staff_device_id": value.staff_device_id,
        "venue_id": value.venue_id,
        "name": value.name,
        "platform": value.platform.value,
        "locale": value.locale,
        "has_token": bool(value.token),
        "created_at": when(value.created_at),
        "disabled": value.disabled_at is not None,
        "disabled_at": when(value.disabled_at),
    }


def alert(value: VipAlert) -> dict[str, Any]:
    """A VIP alert as the staff board shows it."""
    return {
        "alert_id": value.alert_id,
        "venue_id": value.venue_id,
        "member_id": value.member_id,
        "name": value.name,
        "tier": value.tier,
        "sighted_at": when(value.sighted_at),
        "device_id": value.device_id,
        "similarity": value.similarity,
        "profile_status": value.profile_status.value,
        "profile": dict(value.profile) if value.profile is not None else None,
        "profile_reason": value.profile_reason,
        "enriched_at": when(value.enriched_at),
        "pushed_at": when(value.pushed_at),
        "delivered": value.delivered,
        "failed": value.failed,
        "acknowledged_by": value.acknowledged_by,
        "acknowledged_at": when(value.acknowledged_at),
        "false_match": value.false_match_by is not None,
        "false_match_by": value.false_match_by,
        "false_match_at": when(value.false_match_at),
        "false_match_note": value.false_match_note,
        "expires_at": when(value.expires_at),
    }


def message(value: CampaignMessage) -> dict[str, Any]:
    """A campaign message with its delivery counts."""
    return {
        "message_id": value.message_id,
        "campaign_id": value.campaign_id,
        "title": dict(value.title),
        "body": dict(value.body),
        "segment": {"min_stamps": value.segment.min_stamps, "completed": value.segment.completed},
        "created_at": when(value.created_at),
        "created_by": value.created_by,
        "targeted": value.targeted,
        "delivered": value.delivered,
        "failed": value.failed,
        "no_endpoint": value.no_endpoint,
        "pending": max(0, value.targeted - value.delivered - value.failed - value.no_endpoint),
    }

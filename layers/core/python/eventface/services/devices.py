"""Devices (edge terminals): register one for a checkpoint, authenticate its key, revoke it."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from eventface.domain.errors import InvalidInputError, UnauthorizedError
from eventface.domain.model import Device, check_id, hash_key
from eventface.services.deps import Deps

MAX_KEY_LENGTH = 256


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    """The new device and its key: the key is shown here once and never stored."""

    device: Device
    key: str


def register_device(
    deps: Deps, tenant_id: str, campaign_id: str, checkpoint_id: str, name: str = ""
) -> DeviceRegistration:
    """Register a terminal bound to a checkpoint of a campaign; only the key's SHA-256 is stored.

    Raises
    ------
    NotFoundError
        The campaign does not exist.
    InvalidInputError
        The checkpoint is not part of the campaign.
    """
    check_id("checkpoint_id", checkpoint_id)
    campaign = deps.campaigns.get(tenant_id, campaign_id)
    if campaign.checkpoint(checkpoint_id) is None:
        raise InvalidInputError(
            f"checkpoint {checkpoint_id} is not part of campaign {campaign_id}: add it to the campaign first"
        )
    key = secrets.token_urlsafe(32)
    device = Device(
        tenant_id=tenant_id,
        device_id=uuid.uuid4().hex,
        campaign_id=campaign_id,
        checkpoint_id=checkpoint_id,
        name=name.strip()[:100],
        key_hash=hash_key(key),
        created_at=deps.clock.now(),
    )
    deps.devices.add(device)
    return DeviceRegistration(device=device, key=key)


def authenticate_device(deps: Deps, key: str | None) -> Device:
    """The device holding ``key``; UnauthorizedError for a missing, unknown or revoked key."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise UnauthorizedError(
            "a device key is required: send the key issued when the device was registered"
        )
    presented = hash_key(key)
    device = deps.devices.by_key_hash(presented)
    # The lookup already matched the hash; the constant-time compare keeps that property explicit.
    if device is None or not hmac.compare_digest(device.key_hash, presented):
        raise UnauthorizedError("unknown device key: register the device again to get a valid key")
    if device.revoked:
        raise UnauthorizedError("this device key was revoked: register the device again to get a new key")
    return device


def revoke_device(deps: Deps, tenant_id: str, device_id: str) -> Device:
    """Revoke a device's key at once; NotFoundError if unknown."""
    return deps.devices.revoke(tenant_id, device_id, deps.clock.now())

"""Edge terminals: register, activate with a one-time code, authenticate, rotate, revoke, list.

A terminal manager registers a device for a checkpoint and gets a short activation code (valid
for minutes, single use). The terminal redeems it on the edge API and receives its device key,
shown once. Only hashes of codes and keys are stored; a device has one unredeemed code at a time
(a new code voids the earlier one). The terminal can rotate its current key (the old one keeps
working for a grace period, so a fleet can roll over without dropping scans, but cannot rotate
again; of concurrent rotations one wins); a revocation ends every key the device has, and the
very next request with any of them is refused.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from eventface.domain.access import secret_hash
from eventface.domain.cursors import Listing
from eventface.domain.errors import DependencyError, ForbiddenError, InvalidInputError, UnauthorizedError
from eventface.domain.limits import check_name
from eventface.domain.model import CredentialKind, Device, DeviceCredential, Page, check_id
from eventface.services.deps import Deps

MAX_KEY_LENGTH: Final = 256
MAX_DEVICE_NAME: Final = 100
#: How long an activation code can be redeemed.
ACTIVATION_TTL: Final = timedelta(minutes=10)
#: How long a rotated key keeps working beside the new one.
KEY_GRACE: Final = timedelta(minutes=5)
#: A human-typable alphabet: no 0/O, 1/I/L or U.
CODE_ALPHABET: Final = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH: Final = 12  # 30^12 ≈ 5e17 codes: unguessable in ten minutes of throttled attempts
#: A device's last-seen time is written at most this often per process.
LAST_SEEN_EVERY: Final = timedelta(minutes=1)
_seen: dict[str, datetime] = {}
_BACKGROUND: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device-seen")
_seen_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    """A pending device and its activation code: the code is shown here once and never stored."""

    device: Device
    activation_code: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceActivation:
    """An active device and its key: the key is shown here once and never stored."""

    device: Device
    key: str


def _new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(code: str) -> str:
    """The code as issued, whatever the case, spaces or dashes the person typed."""
    raw = "".join(c for c in code.upper() if c.isalnum())
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _activation(device: Device, code: str, now: datetime) -> DeviceCredential:
    return DeviceCredential(
        secret_hash=secret_hash(code),
        kind=CredentialKind.ACTIVATION,
        tenant_id=device.tenant_id,
        device_id=device.device_id,
        campaign_id=device.campaign_id,
        checkpoint_id=device.checkpoint_id,
        venue_id=device.venue_id,
        expires_at=now + ACTIVATION_TTL,
        type_b=device.type_b,
    )


def _key_credential(device: DeviceCredential | Device, key: str) -> DeviceCredential:
    return DeviceCredential(
        secret_hash=secret_hash(key),
        kind=CredentialKind.KEY,
        tenant_id=device.tenant_id,
        device_id=device.device_id,
        campaign_id=device.campaign_id,
        checkpoint_id=device.checkpoint_id,
        venue_id=device.venue_id,
        type_b=device.type_b,
    )


def register_device(
    deps: Deps, tenant_id: str, campaign_id: str, checkpoint_id: str, name: str = "", *, type_b: bool = False
) -> DeviceRegistration:
    """Register a pending terminal for a checkpoint of a campaign, with its activation code;
    ``type_b`` allows it to send templates it computes itself.

    Raises
    ------
    NotFoundError
        The campaign does not exist (in this tenant).
    InvalidInputError
        The checkpoint is not part of the campaign.
    """
    check_id("checkpoint_id", checkpoint_id)
    campaign = deps.campaigns.get(tenant_id, campaign_id)
    if campaign.checkpoint(checkpoint_id) is None:
        raise InvalidInputError(
            f"checkpoint {checkpoint_id} is not part of campaign {campaign_id}: add it to the campaign first"
        )
    return _register(
        deps, tenant_id, name, campaign_id=campaign_id, checkpoint_id=checkpoint_id, type_b=type_b
    )


def register_venue_device(
    deps: Deps, tenant_id: str, venue_id: str, name: str = "", *, type_b: bool = False
) -> DeviceRegistration:
    """Register a pending venue camera (it reports VIP sightings of that venue only); ``type_b``
    allows it to send templates it computes itself.

    Raises
    ------
    NotFoundError
        The venue does not exist (in this tenant).
    """
    venue = deps.venues.get(tenant_id, venue_id)
    return _register(deps, tenant_id, name, venue_id=venue.venue_id, type_b=type_b)


def _register(
    deps: Deps,
    tenant_id: str,
    name: str,
    *,
    campaign_id: str = "",
    checkpoint_id: str = "",
    venue_id: str | None = None,
    type_b: bool = False,
) -> DeviceRegistration:
    now = deps.clock.now()
    device = Device(
        tenant_id=tenant_id,
        device_id=uuid.uuid4().hex,
        campaign_id=campaign_id,
        checkpoint_id=checkpoint_id,
        venue_id=venue_id,
        name=check_name("name", name, MAX_DEVICE_NAME, required=False),
        created_at=now,
        type_b=type_b,
    )
    code = _new_code()
    deps.devices.add(device, _activation(device, code, now))
    return DeviceRegistration(device=device, activation_code=code, expires_at=now + ACTIVATION_TTL)


def new_activation_code(deps: Deps, tenant_id: str, device_id: str) -> DeviceRegistration:
    """Another activation code for a device (the last one expired, or the terminal is replaced:
    redeeming it replaces the device's keys). The device's earlier unredeemed code stops working.
    NotFoundError for unknown or revoked devices."""
    device = deps.devices.get(tenant_id, device_id)
    now = deps.clock.now()
    code = _new_code()
    deps.devices.issue_activation(_activation(device, code, now))
    return DeviceRegistration(device=device, activation_code=code, expires_at=now + ACTIVATION_TTL)


def activate_device(deps: Deps, code: str | None) -> DeviceActivation:
    """Redeem an activation code for the device key (shown once).

    Raises
    ------
    UnauthorizedError
        Missing, unknown, expired or already used code, or a revoked device.
    """
    if not code or len(code) > 64:
        raise UnauthorizedError("an activation code is required: type the code the operator was shown")
    activation = deps.devices.credential(secret_hash(normalise_code(code)))
    now = deps.clock.now()
    if activation is None or activation.kind is not CredentialKind.ACTIVATION:
        raise UnauthorizedError(
            "unknown activation code (or one replaced by a newer code): check it, or ask the operator "
            "for a new one"
        )
    if activation.used_at is not None:
        raise UnauthorizedError("this activation code was used already: ask the operator for a new one")
    if not activation.valid(now):
        raise UnauthorizedError("this activation code has expired: ask the operator for a new one")
    key = f"efd_{secrets.token_urlsafe(32)}"
    device = deps.devices.activate(activation, _key_credential(activation, key), now)
    return DeviceActivation(device=device, key=key)


def authenticate_device(deps: Deps, key: str | None) -> DeviceCredential:
    """The key credential of the device holding ``key`` (one read: revocation applies at once).

    Raises
    ------
    UnauthorizedError
        A missing, unknown, rotated-out or revoked key.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise UnauthorizedError(
            "a device key is required: activate the device and send its key in x-device-key"
        )
    credential = deps.devices.credential(secret_hash(key))
    now = deps.clock.now()
    if credential is None or credential.kind is not CredentialKind.KEY:
        raise UnauthorizedError(
            "unknown device key: it was revoked or never issued; activate the device again"
        )
    if not credential.valid(now):
        raise UnauthorizedError("this device key was rotated out: use the device's new key")
    _mark_seen(deps, credential, now)
    return credential


def _mark_seen(deps: Deps, credential: DeviceCredential, now: datetime) -> None:
    with _seen_lock:
        last = _seen.get(credential.device_id)
        if last is not None and now - last < LAST_SEEN_EVERY:
            return
        _seen[credential.device_id] = now
    # Off the request's path: the write overlaps the work the device asked for.
    _BACKGROUND.submit(_touch, deps, credential, now)


def _touch(deps: Deps, credential: DeviceCredential, now: datetime) -> None:
    with contextlib.suppress(DependencyError):  # last-seen is informational: scans never fail for it
        deps.devices.touch(credential.tenant_id, credential.device_id, now)


def rotate_device_key(deps: Deps, current: DeviceCredential) -> DeviceActivation:
    """A new key for the authenticated device; the presented one works for :data:`KEY_GRACE`
    (for requests, not for another rotation; a key rotated out before it ends now).

    Raises
    ------
    ForbiddenError
        The presented key was rotated out already (it is in its grace period): only the device's
        current key can make a new one.
    StateConflictError
        Another rotation of the same key won meanwhile (concurrent rotations: one wins).
    UnauthorizedError
        The device was revoked meanwhile.
    """
    if current.expires_at is not None:
        raise ForbiddenError(
            "this device key was rotated out: it still works for scans until "
            f"{current.expires_at.isoformat()} but cannot make another key; use the device's new key"
        )
    key = f"efd_{secrets.token_urlsafe(32)}"
    now = deps.clock.now()
    device = deps.devices.rotate(current, _key_credential(current, key), now + KEY_GRACE)
    return DeviceActivation(device=device, key=key)


def revoke_device(deps: Deps, tenant_id: str, device_id: str) -> Device:
    """Revoke a device at once (its keys are deleted); NotFoundError if unknown."""
    return deps.devices.revoke(tenant_id, device_id, deps.clock.now())


def set_type_b(deps: Deps, tenant_id: str, device_id: str, type_b: bool) -> Device:
    """Allow (or stop) a device sending templates it computes itself (Type B); applies to its
    current keys at once. NotFoundError if unknown, StateConflictError if revoked."""
    return deps.devices.set_type_b(tenant_id, device_id, type_b)


def list_devices(deps: Deps, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Device]:
    """One page of the tenant's devices, with status and last-seen time."""
    deps.policy.page_limit(limit)
    listing = Listing(tenant_id, "devices")
    return deps.cursors.page(listing, cursor, lambda at: deps.devices.list(tenant_id, limit, at))

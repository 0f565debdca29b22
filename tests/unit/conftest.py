"""Unit fixtures: the services wired with in-memory fakes and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface.adapters.memory import (
    FixedClock,
    InMemoryCampaignRepository,
    InMemoryDeviceRegistry,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    InMemoryHistoryLog,
    InMemoryParticipantRepository,
    InMemoryScanLedger,
    InMemoryStampBook,
    in_memory_ports,
    unit_vector,
)
from eventface.bootstrap import Services, bootstrap
from eventface.domain.model import Campaign, Checkpoint, Device, DeviceCredential, Participant
from eventface.services.deps import Policy
from eventface.services.participants import Registration
from eventface.services.scans import Scan
from eventface.settings import Settings

TENANT = "acme"
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=8)


@dataclass
class World:
    """The services and the fakes behind them, for assertions."""

    services: Services
    clock: FixedClock
    campaigns: InMemoryCampaignRepository
    participants: InMemoryParticipantRepository
    stamps: InMemoryStampBook
    history: InMemoryHistoryLog
    devices: InMemoryDeviceRegistry
    gallery: InMemoryGallery
    ledger: InMemoryScanLedger
    faces: InMemoryFaceAnalyzer
    api_keys: Any
    audit: Any
    tokens: Any
    limiter: Any
    probe_watch: Any
    venues: Any
    vip_members: Any
    staff_devices: Any
    alerts: Any
    messages: Any
    memberships: Any
    users: Any
    cursors: Any
    secrets: Any
    egress: Any


@pytest.fixture
def world() -> World:
    fakes: dict[str, Any] = in_memory_ports(
        clock=FixedClock(START + timedelta(hours=1)), gallery=InMemoryGallery(threshold=0.9)
    )
    services = bootstrap(Settings({}), policy=Policy(), **fakes)
    return World(services=services, **fakes)


@pytest.fixture
def make_campaign(world: World) -> Callable[..., Campaign]:
    def make(
        campaign_id: str = "rally",
        *,
        checkpoints: tuple[str, ...] = ("gate", "hall", "roof"),
        required: int = 2,
        live: bool = True,
        cooldown: int = 30,
    ) -> Campaign:
        campaign = world.services.create_campaign(
            TENANT,
            campaign_id,
            f"Rally {campaign_id}",
            START,
            END,
            checkpoints=tuple(Checkpoint(c, c.title()) for c in checkpoints),
            stamps_required=required,
            reward_text="Claim your prize at the info desk.",
            cooldown_seconds=cooldown,
        )
        return world.services.publish_campaign(TENANT, campaign_id) if live else campaign

    return make


@pytest.fixture
def make_participant(world: World) -> Callable[..., tuple[Participant, bytes]]:
    """Registers a participant whose face is the unit vector along ``axis``; returns them and a
    fresh photo of the same face (for scans)."""

    def make(
        campaign_id: str = "rally", *, axis: int = 0, nickname: str = "Ann"
    ) -> tuple[Participant, bytes]:
        face = unit_vector(*[1.0 if i == axis else 0.0 for i in range(8)])
        enrol_photo = f"enrol-{campaign_id}-{axis}".encode()
        scan_photo = f"scan-{campaign_id}-{axis}".encode()
        world.faces.faces[enrol_photo] = face
        world.faces.faces[scan_photo] = face
        participant = world.services.register_participant(
            Registration(TENANT, campaign_id, enrol_photo, nickname, consent=True, push_endpoint="fcm:tok-1")
        )
        return participant, scan_photo

    return make


@pytest.fixture
def make_device(world: World) -> Callable[..., tuple[Device, str]]:
    def make(
        checkpoint_id: str = "gate", campaign_id: str = "rally", *, type_b: bool = False
    ) -> tuple[Device, str]:
        registration = world.services.register_device(
            TENANT, campaign_id, checkpoint_id, f"camera {checkpoint_id}", type_b=type_b
        )
        activation = world.services.activate_device(registration.activation_code)
        return activation.device, activation.key

    return make


@pytest.fixture
def scan_at(world: World, make_device: Callable[..., tuple[Device, str]]) -> Callable[..., Any]:
    """Scan ``photo`` at a checkpoint (a device per checkpoint, made on first use)."""
    devices: dict[tuple[str, str], DeviceCredential] = {}

    def scan(photo: bytes, checkpoint_id: str = "gate", campaign_id: str = "rally") -> Any:
        key = (campaign_id, checkpoint_id)
        if key not in devices:
            devices[key] = world.services.authenticate_device(make_device(checkpoint_id, campaign_id)[1])
        return world.services.record_scan(Scan(devices[key], checkpoint_id, photo=photo))

    return scan

"""register_device, authenticate_device and revoke_device with fakes."""

from __future__ import annotations

import hashlib

import pytest

from eventface.domain.errors import InvalidInputError, UnauthorizedError


def test_register_device_returns_key_once_and_stores_its_hash(world, make_campaign):
    # given
    make_campaign()
    # when
    registration = world.services.register_device("acme", "rally", "gate", "camera 1")
    # then
    stored = world.devices.get("acme", registration.device.device_id)
    assert stored.key_hash == hashlib.sha256(registration.key.encode()).hexdigest()
    assert registration.key not in repr(stored)
    assert len(registration.key) >= 43
    assert (stored.campaign_id, stored.checkpoint_id, stored.name) == ("rally", "gate", "camera 1")


def test_register_device_keys_differ(world, make_campaign):
    # given
    make_campaign()
    # when
    keys = {world.services.register_device("acme", "rally", "gate").key for _ in range(3)}
    # then
    assert len(keys) == 3


def test_register_device_for_foreign_checkpoint_fails(world, make_campaign):
    # given
    make_campaign()
    # when / then
    with pytest.raises(InvalidInputError, match="not part of campaign"):
        world.services.register_device("acme", "rally", "elsewhere")


def test_authenticate_device_accepts_its_key(world, make_campaign, make_device):
    # given
    make_campaign()
    device, key = make_device("hall")
    # when
    found = world.services.authenticate_device(key)
    # then
    assert found == device


@pytest.mark.parametrize("key", [None, "", "wrong-key", "x" * 300], ids=["missing", "empty", "wrong", "huge"])
def test_authenticate_device_refuses_bad_keys(world, make_campaign, make_device, key):
    # given
    make_campaign()
    make_device("hall")
    # when / then
    with pytest.raises(UnauthorizedError):
        world.services.authenticate_device(key)


def test_authenticate_device_refuses_revoked_key(world, make_campaign, make_device):
    # given
    make_campaign()
    device, key = make_device("hall")
    world.services.revoke_device("acme", device.device_id)
    # when / then
    with pytest.raises(UnauthorizedError, match="revoked"):
        world.services.authenticate_device(key)

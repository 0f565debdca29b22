"""The edge terminal lifecycle with fakes: register, activate, authenticate, rotate, revoke, list."""

from __future__ import annotations

import time

import pytest

from eventface.domain.access import secret_hash
from eventface.domain.errors import InvalidInputError, NotFoundError, UnauthorizedError
from eventface.services.devices import ACTIVATION_TTL, CODE_ALPHABET, KEY_GRACE


def test_register_device_is_pending_with_a_typable_one_time_code(world, make_campaign):
    # given
    make_campaign()
    # when
    registration = world.services.register_device("acme", "rally", "gate", "camera 1")
    # then
    code = registration.activation_code
    assert len(code) == 14 and code.count("-") == 2 and set(code.replace("-", "")) <= set(CODE_ALPHABET)
    assert registration.expires_at == world.clock.now() + ACTIVATION_TTL
    stored = world.devices.get("acme", registration.device.device_id)
    assert stored.status == "pending" and stored.key_hash is None
    assert (stored.campaign_id, stored.checkpoint_id, stored.name) == ("rally", "gate", "camera 1")
    assert code not in repr(world.devices.credentials)  # only its hash is kept


def test_activation_gives_the_key_once_and_the_code_works_once(world, make_campaign):
    # given
    make_campaign()
    registration = world.services.register_device("acme", "rally", "gate")
    # when: typed in lower case with spaces, as a person might
    activation = world.services.activate_device(registration.activation_code.lower().replace("-", " "))
    # then
    assert activation.device.status == "active" and activation.device.key_hash == secret_hash(activation.key)
    assert world.services.authenticate_device(activation.key).device_id == activation.device.device_id
    with pytest.raises(UnauthorizedError, match="used already"):
        world.services.activate_device(registration.activation_code)


@pytest.mark.parametrize(
    "code", [None, "", "AAAA-BBBB-CCCC", "x" * 100], ids=["missing", "empty", "unknown", "huge"]
)
def test_activation_refuses_bad_codes(world, make_campaign, code):
    # given
    make_campaign()
    world.services.register_device("acme", "rally", "gate")
    # when / then
    with pytest.raises(UnauthorizedError):
        world.services.activate_device(code)


def test_activation_code_expires(world, make_campaign):
    # given
    make_campaign()
    registration = world.services.register_device("acme", "rally", "gate")
    world.clock.advance(ACTIVATION_TTL.total_seconds())
    # when / then
    with pytest.raises(UnauthorizedError, match="expired"):
        world.services.activate_device(registration.activation_code)


def test_new_activation_code_replaces_the_terminal_and_its_old_key(world, make_campaign, make_device):
    # given
    make_campaign()
    device, old_key = make_device("gate")
    # when
    again = world.services.new_activation_code("acme", device.device_id)
    new = world.services.activate_device(again.activation_code)
    # then
    assert world.services.authenticate_device(new.key).device_id == device.device_id
    with pytest.raises(UnauthorizedError):
        world.services.authenticate_device(old_key)


def test_register_device_for_foreign_checkpoint_fails(world, make_campaign):
    # given
    make_campaign()
    # when / then
    with pytest.raises(InvalidInputError, match="not part of campaign"):
        world.services.register_device("acme", "rally", "elsewhere")


def test_authenticate_device_accepts_its_key_and_records_last_seen(world, make_campaign, make_device):
    # given
    make_campaign()
    device, key = make_device("hall")
    # when
    found = world.services.authenticate_device(key)
    # then
    assert (found.device_id, found.checkpoint_id, found.campaign_id) == (device.device_id, "hall", "rally")
    deadline = time.monotonic() + 2  # last-seen is written off the request's path
    while world.devices.get("acme", device.device_id).last_seen_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert world.devices.get("acme", device.device_id).last_seen_at == world.clock.now()


@pytest.mark.parametrize("key", [None, "", "wrong-key", "x" * 300], ids=["missing", "empty", "wrong", "huge"])
def test_authenticate_device_refuses_bad_keys(world, make_campaign, make_device, key):
    # given
    make_campaign()
    make_device("hall")
    # when / then
    with pytest.raises(UnauthorizedError):
        world.services.authenticate_device(key)


def test_an_activation_code_is_not_a_device_key(world, make_campaign):
    # given
    make_campaign()
    registration = world.services.register_device("acme", "rally", "gate")
    # when / then
    with pytest.raises(UnauthorizedError, match="unknown device key"):
        world.services.authenticate_device(registration.activation_code)


def test_rotation_keeps_the_old_key_for_the_grace_period_only(world, make_campaign, make_device):
    # given
    make_campaign()
    _, old_key = make_device("gate")
    current = world.services.authenticate_device(old_key)
    # when
    rotated = world.services.rotate_device_key(current)
    # then
    assert world.services.authenticate_device(rotated.key).device_id == current.device_id
    assert world.services.authenticate_device(old_key).device_id == current.device_id
    world.clock.advance(KEY_GRACE.total_seconds())
    with pytest.raises(UnauthorizedError, match="rotated out"):
        world.services.authenticate_device(old_key)
    assert world.services.authenticate_device(rotated.key)


def test_revoked_device_is_refused_on_the_next_request(world, make_campaign, make_device):
    # given
    make_campaign()
    device, key = make_device("hall")
    rotated = world.services.rotate_device_key(world.services.authenticate_device(key))
    # when
    revoked = world.services.revoke_device("acme", device.device_id)
    # then
    assert revoked.status == "revoked"
    for k in (key, rotated.key):
        with pytest.raises(UnauthorizedError):
            world.services.authenticate_device(k)
    with pytest.raises(NotFoundError, match="revoked"):
        world.services.new_activation_code("acme", device.device_id)


def test_list_devices_shows_status_of_the_tenants_devices(world, make_campaign, make_device):
    # given
    make_campaign()
    make_device("gate")
    world.services.register_device("acme", "rally", "hall")
    # when
    page = world.services.list_devices("acme")
    other = world.services.list_devices("someone-else")
    # then
    assert sorted(d.status for d in page.items) == ["active", "pending"]
    assert other.items == ()

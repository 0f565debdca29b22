"""Device keys against rotation and revocation attacks, on the in-memory fake and on DynamoDB.

One contract, two adapters: every test runs on the services wired with the in-memory device
registry and with the DynamoDB one (moto in-process, real threads where the attack used them).
The attacks are the ones the security review ran over HTTP (issue 11, finding 1 and the lower
finding on activation codes): rotating twice from one key, rotating concurrently, replaying an
earlier activation code. After a revocation no key the device ever had may authenticate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface.adapters.memory import FixedClock, InMemoryFaceAnalyzer, InMemoryGallery, in_memory_ports
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import secret_hash
from eventface.domain.errors import ForbiddenError, StateConflictError, UnauthorizedError
from eventface.domain.model import Checkpoint, CredentialKind, Device, DeviceCredential
from eventface.services.devices import DeviceActivation
from eventface.settings import Settings

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
ROTATIONS = 8


@pytest.fixture(params=["memory", "dynamo"])
def services(request: pytest.FixtureRequest) -> Services:
    """The services on the in-memory fakes, or on the DynamoDB adapters (moto in-process), with a
    live campaign whose checkpoint ``gate`` takes terminals."""
    if request.param == "memory":
        wired = bootstrap(Settings({}), **in_memory_ports(clock=FixedClock(NOW)))
    else:
        prefix = request.getfixturevalue("table_prefix")
        wired = bootstrap(
            Settings({"EVENTFACE_TABLE_PREFIX": prefix}),
            gallery=InMemoryGallery(),
            faces=InMemoryFaceAnalyzer(),
            clock=FixedClock(NOW),
        )
    wired.create_campaign(
        "acme",
        "rally",
        "Rally",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=8),
        checkpoints=(Checkpoint("gate", "Gate"),),
        stamps_required=1,
    )
    return wired


def _activated(services: Services) -> DeviceActivation:
    registration = services.register_device("acme", "rally", "gate", "gate cam")
    return services.activate_device(registration.activation_code)


def _assert_every_key_refused(services: Services, keys: list[str]) -> None:
    live = []
    for key in keys:
        try:
            services.authenticate_device(key)
        except UnauthorizedError:
            continue
        live.append(key)
    assert live == [], f"{len(live)} of {len(keys)} keys still authenticate after the revocation"


def _in_threads(work: Callable[[], Any], count: int) -> list[Any]:
    """Run ``work`` on ``count`` threads released together; each result or the exception raised."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work()
        except Exception as exc:  # the test inspects what each attempt raised
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_device_double_rotation_from_one_key_is_refused_and_revocation_ends_every_key(services):
    # given: a terminal rotated its key once; the old key is in its grace period
    activation = _activated(services)
    first = services.rotate_device_key(services.authenticate_device(activation.key))
    keys = [activation.key, first.key]
    # when: the old key, still accepted for scans, asks for another key
    graced = services.authenticate_device(activation.key)
    try:
        keys.append(services.rotate_device_key(graced).key)
        second_refused: Exception | None = None
    except ForbiddenError as exc:
        second_refused = exc
    services.revoke_device("acme", activation.device.device_id)
    # then: no key survives the revocation, and the second rotation was refused
    _assert_every_key_refused(services, keys)
    assert second_refused is not None and "new key" in str(second_refused)


def test_device_rotation_with_a_stale_credential_is_a_conflict(services):
    # given: a credential read before another rotation of the same key committed
    activation = _activated(services)
    stale = services.authenticate_device(activation.key)
    winner = services.rotate_device_key(stale)
    # when / then: the registry itself refuses the second rotation from the same key
    with pytest.raises(StateConflictError, match="rotated"):
        services.rotate_device_key(stale)
    services.revoke_device("acme", activation.device.device_id)
    _assert_every_key_refused(services, [activation.key, winner.key])


def test_device_concurrent_rotations_one_wins_and_revocation_ends_every_key(services):
    # given: one key, presented by 8 rotations at the same instant
    activation = _activated(services)
    current = services.authenticate_device(activation.key)
    # when
    results = _in_threads(lambda: services.rotate_device_key(current), ROTATIONS)
    services.revoke_device("acme", activation.device.device_id)
    # then: one rotation won, the others got a conflict that says why; no key survives
    won = [r for r in results if isinstance(r, DeviceActivation)]
    lost = [r for r in results if isinstance(r, StateConflictError)]
    _assert_every_key_refused(services, [activation.key, *(r.key for r in won)])
    assert len(won) == 1 and len(lost) == ROTATIONS - 1, results
    assert all("rotated" in str(e) for e in lost)


def test_device_rotations_racing_a_revocation_leave_no_live_key(services):
    # given: rotations from the current key race the revocation of the device
    activation = _activated(services)
    current = services.authenticate_device(activation.key)
    device_id = activation.device.device_id

    turns = iter(range(ROTATIONS + 1))
    lock = threading.Lock()

    def rotate_or_revoke() -> Any:
        with lock:
            turn = next(turns)
        if turn == 0:
            return services.revoke_device("acme", device_id)
        return services.rotate_device_key(current)

    # when
    results = _in_threads(rotate_or_revoke, ROTATIONS + 1)
    # then: whatever the interleaving, every key any rotation handed out is dead
    expected = (DeviceActivation, Device, StateConflictError, UnauthorizedError)
    assert [r for r in results if not isinstance(r, expected)] == []
    issued = [r.key for r in results if isinstance(r, DeviceActivation)]
    _assert_every_key_refused(services, [activation.key, *issued])
    assert services.deps.devices.get("acme", device_id).status == "revoked"


def test_device_new_activation_code_voids_the_earlier_unredeemed_code(services):
    # given: a code was issued, then another for the same device
    registration = services.register_device("acme", "rally", "gate", "gate cam")
    device_id = registration.device.device_id
    again = services.new_activation_code("acme", device_id)
    # when / then: the earlier code is refused, the new one works once
    with pytest.raises(UnauthorizedError):
        services.activate_device(registration.activation_code)
    activation = services.activate_device(again.activation_code)
    assert services.authenticate_device(activation.key).device_id == device_id


def test_device_activation_with_a_code_read_before_a_newer_one_was_issued_is_refused(services):
    # given: the earlier code's credential was read, then a new code was issued
    registration = services.register_device("acme", "rally", "gate", "gate cam")
    earlier = services.deps.devices.credential(secret_hash(_normalised(registration.activation_code)))
    assert earlier is not None
    services.new_activation_code("acme", registration.device.device_id)
    key = DeviceCredential(
        secret_hash("efd_raced"),
        CredentialKind.KEY,
        "acme",
        registration.device.device_id,
        "rally",
        "gate",
    )
    # when / then: redeeming the earlier code in the registry is refused
    with pytest.raises(UnauthorizedError):
        services.deps.devices.activate(earlier, key, NOW)
    assert services.deps.devices.credential(key.secret_hash) is None


def test_device_reactivation_ends_the_key_in_its_grace_period_too(services):
    # given: a rotated terminal (old key in grace), replaced with a new activation code
    activation = _activated(services)
    rotated = services.rotate_device_key(services.authenticate_device(activation.key))
    code = services.new_activation_code("acme", activation.device.device_id)
    # when
    replacement = services.activate_device(code.activation_code)
    # then
    _assert_every_key_refused(services, [activation.key, rotated.key])
    assert services.authenticate_device(replacement.key).device_id == activation.device.device_id


def test_device_rotation_after_revocation_is_refused(services):
    # given
    activation = _activated(services)
    current = services.authenticate_device(activation.key)
    services.revoke_device("acme", activation.device.device_id)
    # when / then
    with pytest.raises(UnauthorizedError):
        services.rotate_device_key(current)
    _assert_every_key_refused(services, [activation.key])


def _normalised(code: str) -> str:
    from eventface.services.devices import normalise_code

    return normalise_code(code)

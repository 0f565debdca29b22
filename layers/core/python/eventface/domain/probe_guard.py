"""Probe-abuse detection for device-computed templates (Type B): the rules, as pure functions.

Why it exists. A device that sends its own templates chooses the vector it asks about. The answer
no longer carries a score (a score can be climbed: the issue-11 attack rebuilt a participant's
template from returned scores in 256 probes), so each answer tells the device one bit: somebody
or nobody. What is left to an attacker is *volume*: every unmatched template it gets evaluated is
one more draw against the open-set threshold, and a stream of near-identical or steadily improving
templates is the signature of a search (the old climbing attack, or a climb on any leak we have not
thought of). Real cameras look different: they send real faces at the pace of people walking by, a
few times per visit, and the same face again while a person stands in view.

What is kept, per device, in one bounded record (:class:`ProbeWatch`, about 2.3 KB):

- ``chains``: the last :attr:`ProbeGuardPolicy.chains` unmatched faces of the last
  :attr:`ProbeGuardPolicy.window`. A chain is represented by its best template (the one most similar
  to someone in the gallery, quantised to 128 signed bytes) and remembers that similarity, the
  similarity at its last gain, and when it was last seen. A new unmatched template continues the
  chain whose template it is most similar to (cosine >= ``same_face``) or starts a new one (the
  oldest is forgotten). Keeping the *best* template, not the latest, is what follows a search: a
  climb perturbs its best point, so every step stays in the chain, while a random walk drifts away
  from it and pays as new information.
- three leaky buckets (a level that drains at a fixed rate; a probe adds to one of them):

  ``faces``    a template that is not a near-copy of one seen in the window: new information for
               the sender (a new person, or a person from another angle);
  ``repeats``  a near-copy (cosine >= ``near_identical``) of a template of the window: a person
               standing in view, or a search taking small steps;
  ``gains``    a chain's similarity rising by ``gain`` above its level at its previous rise, past
               the chain's first ``free_rises`` (other views of one face differ by a few hundredths
               anyway): "steadily improving", which a climb produces all the way up (in steps of any
               size) and a person standing in view only by chance.

A bucket over its capacity *trips*: the device's Type B probes are refused (429) until the buckets
have drained to half (at least ``min_pause``), the trip is audited and the device is flagged for its
tenant's admins. The ``quarantine_after``-th trip within ``trip_memory`` blocks Type B probes (403)
until an admin clears the flag. Photos (Type A) are never refused by this guard: the engine, not the
device, makes their template.

Matched probes change nothing (a recognised face is the camera doing its job), and neither do probes
refused for other reasons (no search ran, so nothing was learnt).
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

#: Quantisation scale: a unit vector's components, times 127, rounded, fit in a signed byte. The
#: cosine of a float template with a quantised one is exact to about 1e-3, far below the gaps
#: between the cut-offs below. An SFace template (128 numbers) takes 128 bytes.
_SCALE: Final = 127
#: A stored chain: its code's length, its code, best and mark (float32), last seen (epoch s), rises.
_CHAIN_HEAD: Final = struct.Struct("<H")
_CHAIN_TAIL: Final = struct.Struct("<ffIB")


@dataclass(frozen=True, slots=True)
class Bucket:
    """A leaky bucket: ``capacity`` units, draining ``per_minute`` units a minute."""

    capacity: float
    per_minute: float

    def __post_init__(self) -> None:
        if not (self.capacity > 0 and self.per_minute > 0):
            raise ValueError(f"a bucket needs a capacity and a drain rate > 0, not {self}")

    def drain(self, level: float, seconds: float) -> float:
        return max(0.0, level - self.per_minute * max(0.0, seconds) / 60.0)

    def seconds_to(self, level: float, target: float) -> float:
        """Seconds for ``level`` to drain down to ``target``."""
        return max(0.0, level - target) * 60.0 / self.per_minute


@dataclass(frozen=True, slots=True)
class ProbeGuardPolicy:
    """The numbers of the guard, and why they are what they are.

    Real-camera traffic they must allow forever (tests/unit/test_probe_guard.py replays each):

    - a checkpoint sees at most a visitor every ~6-10 s at its busiest, and a camera sends a person
      a few times per visit (the edge client: once). An unregistered visitor costs 1-2 ``faces``
      (first view, another angle; near-copies go to ``repeats``). ``faces`` drains 10 a minute: a
      visitor every 10 s all day, every other one unregistered and sent 4 times, never trips it, and
      its capacity of 150 absorbs a crowd (60 unregistered visitors in 5 minutes, 3 sends each).
    - a person standing in view, resent while they stand there. Frames of a still face have cosine
      >= 0.945 with each other (measured on the labelled photos: shifted, scaled, rotated by up to
      4 degrees, re-lit and noised, median 0.98), so they are ``repeats`` (from 0.8). ``repeats`` drains 20 a
      minute: a face resent every 3 s forever never trips it; resent every 1.5 s, only after
      6 minutes (capacity 120).
    - while a person stands still their best similarity to the gallery only jitters, and a chain's
      level rises by ``gain`` (0.01) above its last rise only as often as a random series sets
      records: ~ln n times in n frames (simulated: at most 8 in an hour of frames every 3 s, most of
      them in the first minutes). Another view of a face moves it by a few hundredths, so a visit
      rises up to 3 times. The first ``free_rises`` (3) rises of a chain are free; the others go to
      ``gains``, which holds 4 and drains one every 10 minutes: it trips on a chain's 8th rise
      within minutes, which one face standing still does not reach.
    - a score climb (the attack this guard backs up: answers carry no score any more) from a random
      start to the threshold of a 10-template gallery (0.44) rises 6-15 times (median 11) in ~100
      probes; the guard pauses it at its 8th rise, so about 3 climbs in 4 are paused before they
      match. The others needed fewer rises (big lucky steps, or a start near a template): this rule
      is a tripwire, not the fix; without a score there is nothing to climb.

    What an attacker gets: a flood of distinct templates trips ``faces`` after ~165 probes at the
    device rate limit (120 a minute); a flood of near-copies trips ``repeats`` after ~145. A pause
    lasts until the tripped bucket has drained to half (7.5 minutes for ``faces``), and the third
    trip within a day blocks Type B until an admin looks. A hill climb with random restarts that
    mixes both (tests/model/test_probe_attack.py) got 377-623 answers, one bit each, out of 5,000
    probes: about what a busy real camera sends in an hour of strangers. Made-up templates match
    nobody far more reliably than strangers' faces do; an attacker who sends real faces of other
    people gets the threshold's rate per answer (one stranger in a thousand per scan), like any
    camera that sees strangers: that rate, not the guard, bounds it.
    """

    #: How long an unmatched face is remembered (a visit, plus a person standing in view a while).
    window: timedelta = timedelta(minutes=10)
    #: Faces remembered at once; the oldest is forgotten first (16 x 143 bytes in the record).
    chains: int = 16
    #: Cosine from which a template continues a chain (same face, other view): genuine pairs of the
    #: labelled photos have a median cosine of 0.65, impostor pairs a 99.9th percentile of 0.38.
    same_face: float = 0.5
    #: Cosine from which a template is a near-copy: a still face's frames measured >= 0.945; 0.8
    #: leaves room for a person moving their head while they stand there, and stays well above
    #: another photo of the same person (median 0.65).
    near_identical: float = 0.8
    #: Rise of a chain's similarity above its last rise that counts (0.01: half a jitter sd).
    gain: float = 0.01
    #: Rises of a chain that cost nothing (other views of one face during a visit).
    free_rises: int = 3
    faces: Bucket = field(default_factory=lambda: Bucket(capacity=150, per_minute=10))
    repeats: Bucket = field(default_factory=lambda: Bucket(capacity=120, per_minute=20))
    gains: Bucket = field(default_factory=lambda: Bucket(capacity=4, per_minute=0.1))
    #: Shortest pause after a trip (a trip always costs the sender real time).
    min_pause: timedelta = timedelta(minutes=1)
    #: The trip of this rank within ``trip_memory`` blocks Type B until an admin clears it.
    quarantine_after: int = 3
    trip_memory: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if not 0 < self.same_face < self.near_identical < 1:
            raise ValueError("need 0 < same_face < near_identical < 1")
        if self.chains < 1 or self.quarantine_after < 1 or self.gain <= 0 or self.free_rises < 0:
            raise ValueError("chains, quarantine_after and gain must be positive")


@dataclass(frozen=True, slots=True)
class Chain:
    """One unmatched face of the window: its best template (quantised) and that template's
    similarity, the similarity at its last rise (``mark``), how often it rose, when last seen."""

    code: bytes
    best: float
    mark: float
    at: datetime
    rises: int = 0


@dataclass(frozen=True, slots=True)
class ProbeWatch:
    """The guard's record of one device (``version`` 0: never written)."""

    tenant_id: str
    device_id: str
    chains: tuple[Chain, ...] = ()
    faces: float = 0.0
    repeats: float = 0.0
    gains: float = 0.0
    updated_at: datetime | None = None
    #: Type B probes are refused (429) until then.
    throttled_until: datetime | None = None
    #: Trips within ``trip_memory`` (at most ``quarantine_after``), oldest first.
    trips: tuple[datetime, ...] = ()
    #: Set by the ``quarantine_after``-th trip: Type B probes are refused (403) until cleared.
    quarantined_at: datetime | None = None
    #: The first trip since the flag was last cleared, and how many trips since then.
    flagged_at: datetime | None = None
    flags: int = 0
    #: Why the last trip happened (shown to the tenant's admins).
    reason: str | None = None
    version: int = 0


class RefusalKind(StrEnum):
    THROTTLED = "throttled"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    #: Seconds until a retry can succeed (a quarantine lasts until cleared: nominally an hour).
    retry_after: int


@dataclass(frozen=True, slots=True)
class Observation:
    """What an unmatched probe did: the new record, and the trip it caused (None: no trip)."""

    watch: ProbeWatch
    trip: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """What a tenant's admins see of a device's probing (``GET /v1/devices``)."""

    flagged: bool = False
    flags: int = 0
    flagged_at: datetime | None = None
    throttled_until: datetime | None = None
    quarantined: bool = False
    reason: str | None = None


def quantise(vector: Sequence[float]) -> bytes:
    """A unit vector as signed bytes (two's complement), one per number."""
    return bytes(max(-_SCALE, min(_SCALE, round(v * _SCALE))) & 0xFF for v in vector)


def cosine(vector: Sequence[float], code: bytes) -> float:
    """Cosine of a (unit) template with a quantised one (-1 for one of another length: another
    model's template is no copy of this one)."""
    if len(code) != len(vector):
        return -1.0
    values = array("b", code)
    norm = math.sqrt(sum(q * q for q in values)) or 1.0
    return sum(v * q for v, q in zip(vector, values, strict=True)) / norm


def refusal(watch: ProbeWatch, now: datetime) -> Refusal | None:
    """Why the device's Type B probes are refused at ``now`` (None: they are not)."""
    if watch.quarantined_at is not None:
        return Refusal(RefusalKind.QUARANTINED, 3600)
    if watch.throttled_until is not None and now < watch.throttled_until:
        seconds = (watch.throttled_until - now).total_seconds()
        return Refusal(RefusalKind.THROTTLED, max(1, math.ceil(seconds)))
    return None


def observe(
    watch: ProbeWatch,
    vector: Sequence[float],
    similarity: float | None,
    now: datetime,
    policy: ProbeGuardPolicy,
) -> Observation:
    """Account for one *unmatched* Type B template of the device (pure: returns the new record).

    ``similarity`` is the best similarity the gallery search found for it (None for an empty
    gallery); it never leaves the server.
    """
    elapsed = (now - watch.updated_at).total_seconds() if watch.updated_at is not None else 0.0
    faces = policy.faces.drain(watch.faces, elapsed)
    repeats = policy.repeats.drain(watch.repeats, elapsed)
    gains = policy.gains.drain(watch.gains, elapsed)
    chains = [c for c in watch.chains if now - c.at < policy.window]
    scored = [(cosine(vector, c.code), i) for i, c in enumerate(chains)]
    closest, index = max(scored, default=(-1.0, -1))
    if closest >= policy.near_identical:
        repeats += 1
    else:
        faces += 1
    score = similarity if similarity is not None else -1.0
    if closest >= policy.same_face:
        chain = chains.pop(index)
        mark, rises = chain.mark, chain.rises
        if similarity is not None and similarity >= mark + policy.gain:
            mark, rises = similarity, min(rises + 1, 255)
            gains += 1 if rises > policy.free_rises else 0
        better = score > chain.best
        chains.append(
            Chain(
                code=quantise(vector) if better else chain.code,
                best=score if better else chain.best,
                mark=mark,
                at=now,
                rises=rises,
            )
        )
    else:
        chains.append(Chain(code=quantise(vector), best=score, mark=score, at=now))
    chains = chains[-policy.chains :]
    observed = replace(watch, chains=tuple(chains), faces=faces, repeats=repeats, gains=gains, updated_at=now)
    over = [
        (name, level, bucket)
        for name, level, bucket in (
            ("faces", faces, policy.faces),
            ("repeats", repeats, policy.repeats),
            ("gains", gains, policy.gains),
        )
        if level > bucket.capacity
    ]
    if not over:
        return Observation(observed)
    return _trip(observed, over, now, policy)


_LIMIT: Final = " unmatched templates (limit {capacity:.0f}, draining {rate:g} a minute)"
_WHY: Final = {
    "faces": "{level:.0f} distinct" + _LIMIT,
    "repeats": "{level:.0f} near-identical" + _LIMIT,
    "gains": "{level:.0f} steadily improving" + _LIMIT,
}


def _trip(
    watch: ProbeWatch, over: list[tuple[str, float, Bucket]], now: datetime, policy: ProbeGuardPolicy
) -> Observation:
    pause = max(
        [policy.min_pause.total_seconds()]
        + [bucket.seconds_to(level, bucket.capacity / 2) for _, level, bucket in over]
    )
    why = "; ".join(
        _WHY[name].format(level=level, capacity=bucket.capacity, rate=bucket.per_minute)
        for name, level, bucket in over
    )
    trips = (*(t for t in watch.trips if now - t < policy.trip_memory), now)[-policy.quarantine_after :]
    quarantine = len(trips) >= policy.quarantine_after
    tripped = replace(
        watch,
        trips=trips,
        throttled_until=now + timedelta(seconds=math.ceil(pause)),
        quarantined_at=now if quarantine else watch.quarantined_at,
        flagged_at=watch.flagged_at or now,
        flags=watch.flags + 1,
        reason=why,
    )
    return Observation(tripped, why)


def cleared(watch: ProbeWatch, now: datetime) -> ProbeWatch:
    """The record after an admin reviewed the device: no flag, no pause, nothing remembered."""
    return ProbeWatch(
        tenant_id=watch.tenant_id, device_id=watch.device_id, updated_at=now, version=watch.version
    )


def status(watch: ProbeWatch | None, now: datetime) -> ProbeStatus:
    """What the device's admins are shown."""
    if watch is None:
        return ProbeStatus()
    throttled = watch.throttled_until if watch.throttled_until and now < watch.throttled_until else None
    return ProbeStatus(
        flagged=watch.flags > 0,
        flags=watch.flags,
        flagged_at=watch.flagged_at,
        throttled_until=throttled,
        quarantined=watch.quarantined_at is not None,
        reason=watch.reason,
    )


def encode_chains(chains: Sequence[Chain]) -> bytes:
    """The chains as bytes for storage (143 bytes per SFace chain)."""
    return b"".join(
        _CHAIN_HEAD.pack(len(c.code))
        + c.code
        + _CHAIN_TAIL.pack(c.best, c.mark, int(c.at.timestamp()), c.rises)
        for c in chains
    )


def decode_chains(data: bytes) -> tuple[Chain, ...]:
    """The chains of :func:`encode_chains` (UTC times); ValueError if the bytes are torn."""
    chains = []
    offset = 0
    try:
        while offset < len(data):
            (length,) = _CHAIN_HEAD.unpack_from(data, offset)
            start = offset + _CHAIN_HEAD.size
            code = data[start : start + length]
            best, mark, at, rises = _CHAIN_TAIL.unpack_from(data, start + length)
            if len(code) != length:
                raise struct.error("short code")
            when = datetime.fromtimestamp(at, tz=UTC)
            chains.append(Chain(code=bytes(code), best=best, mark=mark, at=when, rises=rises))
            offset = start + length + _CHAIN_TAIL.size
    except struct.error as exc:
        raise ValueError(f"stored chains are torn at byte {offset} of {len(data)}") from exc
    return tuple(chains)

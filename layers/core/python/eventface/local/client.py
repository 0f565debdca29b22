"""A small HTTP client of the local stack, as an operator's console and a checkpoint camera use it.

Standard library only (urllib). The demo and the end-to-end tests share it; every call returns the
status and the decoded JSON body, and :class:`UnexpectedAnswerError` says which request got what.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eventface.local.cognito import UserPool, sign_in
from mobile_push import read_inbox

TIMEOUT_SECONDS: Final = 60


class UnexpectedAnswerError(RuntimeError):
    """A request got an answer the caller did not expect."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status and JSON body (``{}`` when there is none)."""

    status: int
    body: dict[str, Any]


def request(method: str, url: str, *, headers: dict[str, str], data: bytes | None = None) -> Answer:
    """One HTTP request; 4xx and 5xx are answers too (never exceptions)."""
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"raw": raw[:200].decode("utf-8", "replace")}
    return Answer(status, body if isinstance(body, dict) else {"items": body})


def expect(answer: Answer, *statuses: int, what: str) -> dict[str, Any]:
    """The body of ``answer`` if its status is one of ``statuses``; else UnexpectedAnswerError."""
    if answer.status not in statuses:
        raise UnexpectedAnswerError(
            f"{what}: expected HTTP {'/'.join(map(str, statuses))}, got {answer.status} {answer.body}"
        )
    return answer.body


class AdminClient:
    """The management API as a signed-in user (bearer ID token) or a system (``x-api-key``)."""

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None) -> None:
        if (token is None) == (api_key is None):
            raise ValueError("give either a token or an api_key")
        self._base = base_url.rstrip("/")
        self._auth = {"authorization": f"Bearer {token}"} if token else {"x-api-key": api_key or ""}

    @classmethod
    def signed_in(cls, base_url: str, pool: UserPool, username: str, password: str) -> AdminClient:
        """Sign in with the user pool (USER_PASSWORD_AUTH) and use the ID token."""
        return cls(base_url, token=str(sign_in(pool, username, password)["IdToken"]))

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Answer:
        headers = {**self._auth, "accept": "application/json"}
        data = None
        if payload is not None:
            headers["content-type"] = "application/json"
            data = json.dumps(payload).encode()
        return request(method, f"{self._base}{path}", headers=headers, data=data)

    def register(
        self, campaign_id: str, nickname: str, photo: bytes, push_token: str | None = None
    ) -> Answer:
        """POST a participant with consent and a base64 photo (201, or 422 FaceQualityError)."""
        payload: dict[str, Any] = {
            "nickname": nickname,
            "consent": True,
            "photo": base64.b64encode(photo).decode(),
        }
        if push_token is not None:
            payload["push_token"] = push_token
        return self.call("POST", f"/v1/campaigns/{campaign_id}/participants", payload)


def activate(base_url: str, activation_code: str) -> dict[str, Any]:
    """Redeem an operator's one-time code for the device key: the activated device's JSON."""
    answer = request(
        "POST",
        f"{base_url.rstrip('/')}/v1/activations",
        headers={"content-type": "application/json", "accept": "application/json"},
        data=json.dumps({"code": activation_code}).encode(),
    )
    return expect(answer, 201, what="activate the terminal")


def _post_frame(url: str, key: str, jpeg: bytes) -> Answer:
    headers = {"x-device-key": key, "content-type": "image/jpeg", "accept": "application/json"}
    return request("POST", url, headers=headers, data=jpeg)


class Camera:
    """A checkpoint camera: the edge API with its device key, sending raw JPEG frames."""

    def __init__(self, base_url: str, device_key: str, checkpoint_id: str) -> None:
        self._base = base_url.rstrip("/")
        self.key = device_key
        self.checkpoint_id = checkpoint_id

    @classmethod
    def activated(cls, base_url: str, activation_code: str) -> Camera:
        """A new terminal: redeem the operator's one-time code for the device key."""
        body = activate(base_url, activation_code)
        return cls(base_url, str(body["device_key"]), str(body["checkpoint_id"]))

    def scan(self, jpeg: bytes) -> Answer:
        return _post_frame(f"{self._base}/v1/checkpoints/{self.checkpoint_id}/scans", self.key, jpeg)


class VenueCamera:
    """A venue's lobby camera (or robot): reports frames as VIP sightings."""

    def __init__(self, base_url: str, device_key: str, venue_id: str) -> None:
        self._base = base_url.rstrip("/")
        self.key = device_key
        self.venue_id = venue_id

    @classmethod
    def activated(cls, base_url: str, activation_code: str) -> VenueCamera:
        body = activate(base_url, activation_code)
        return cls(base_url, str(body["device_key"]), str(body["venue_id"]))

    def sight(self, jpeg: bytes) -> Answer:
        return _post_frame(f"{self._base}/v1/venues/{self.venue_id}/sightings", self.key, jpeg)


def wait_for_pushes(
    inbox_dir: Path, recipient_id: str, *, expected: int, wait_seconds: float = 15.0
) -> list[dict[str, Any]]:
    """The pushes in a recipient's local inbox, once there are ``expected`` of them (or the wait
    is over: then what is there). Pushes arrive a moment after the request that caused them."""
    deadline = time.monotonic() + wait_seconds
    while True:
        pushes = read_inbox(inbox_dir, recipient_id)
        if len(pushes) >= expected or time.monotonic() >= deadline:
            return pushes
        time.sleep(0.02)

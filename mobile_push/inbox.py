"""The local stack's provider: messages land as JSON lines in one file per recipient."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mobile_push.errors import PermanentPushError
from mobile_push.messages import Message, Recipient

logger = logging.getLogger("mobile_push")

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")


def _inbox_path(directory: Path, recipient_id: str) -> Path:
    if not _SAFE_ID.fullmatch(recipient_id):
        raise PermanentPushError(
            f"recipient id {recipient_id!r} cannot name an inbox file; use letters, digits and . _ @ - "
            "(starting with a letter or digit)"
        )
    return directory / f"{recipient_id}.jsonl"


class InboxProvider:
    """Appends each message as one JSON line to ``<directory>/<recipient_id>.jsonl``.

    Appends are atomic across threads (a lock) and processes (``flock`` plus a single
    ``O_APPEND`` write), so concurrent senders never interleave lines.

    Parameters
    ----------
    directory
        Where the inbox files live; created on first send.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        self._lock = threading.Lock()

    def send(self, recipient: Recipient, message: Message) -> str:
        """Append ``message`` to the recipient's inbox and return the new message id."""
        path = _inbox_path(self._directory, recipient.recipient_id)
        message_id = uuid.uuid4().hex
        record = {
            "message_id": message_id,
            "recipient_id": recipient.recipient_id,
            "title": message.title,
            "body": message.body,
            "data": dict(message.data),
            "sent_at": datetime.now(UTC).isoformat(),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            self._directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    os.write(fd, line)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return message_id


def read_inbox(directory: Path, recipient_id: str) -> list[dict[str, Any]]:
    """Return the messages in a recipient's inbox, oldest first (empty if it has none).

    Parameters
    ----------
    directory
        The :class:`InboxProvider`'s directory.
    recipient_id
        The recipient whose inbox to read.
    """
    path = _inbox_path(Path(directory), recipient_id)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with os.fdopen(os.dup(fd), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    finally:
        os.close(fd)
    return [json.loads(line) for line in lines if line.strip()]

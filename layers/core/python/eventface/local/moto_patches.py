"""Make moto's threaded server as atomic as the AWS services it emulates.

moto 5.2 handles each request on its own thread and checks conditions without a lock:

- **S3 objects.** It checks ``If-Match`` and then stores with nothing in between, so two writers
  can both pass the check and one update is lost (475 of 480 increments survived with 8 threads
  doing GET + PUT If-Match on one key); and overwriting a key closes the old value's buffer while
  another thread may still be reading it (GET answers 500 "I/O operation on closed file").
- **DynamoDB.** A conditional put or a TransactWriteItems is evaluated and then applied, again
  with no lock: two concurrent "stamp if absent" writes can both succeed.

Both are emulator gaps, not the protocols under test, so these requests are handled one at a time
inside the server (one lock per service). The integration tests and the local stack share this.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

#: Whether the patches are in place (a dict, not a rebound global).
_state = {"applied": False}
_apply_lock = threading.Lock()


def _serialised(original: Any, lock: threading.Lock) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    wrapper.__eventface_serialised__ = True  # type: ignore[attr-defined]
    return wrapper


def serialise_moto_requests() -> None:
    """Serialise moto's S3 object requests and DynamoDB requests (idempotent, process-wide).

    Call it before the server handles its first request; it patches the moto classes the server
    dispatches to, so it covers every ThreadedMotoServer in the process.
    """
    with _apply_lock:
        if _state["applied"]:
            return
        from moto.dynamodb.responses import DynamoHandler
        from moto.s3.responses import S3Response

        for cls, method in ((S3Response, "key_response"), (DynamoHandler, "call_action")):
            setattr(cls, method, _serialised(getattr(cls, method), threading.Lock()))
        _state["applied"] = True

"""Make moto's server as atomic, and its transactions as cheap, as the AWS services it emulates.

moto 5.2 handles each request on its own thread and checks conditions without a lock:

- **S3 objects.** It checks ``If-Match`` and then stores with nothing in between, so two writers
  can both pass the check and one update is lost (475 of 480 increments survived with 8 threads
  doing GET + PUT If-Match on one key); and overwriting a key closes the old value's buffer while
  another thread may still be reading it (GET answers 500 "I/O operation on closed file").
- **DynamoDB.** A conditional put or a TransactWriteItems is evaluated and then applied, again
  with no lock: two concurrent "stamp if absent" writes can both succeed.

Both are emulator gaps, not the protocols under test, so these requests are handled one at a time
inside the server (one lock per service).

- **DynamoDB transactions.** moto backs up every table a TransactWriteItems touches with
  ``copy.deepcopy`` before applying it, so a transaction costs time in proportion to the items
  already in those tables (measured: 2.8 ms with empty tables, 10 ms at 100 items per table,
  74 ms at 1,000): the local stack slowed down as its history grew. The patch evaluates every
  condition first, against the current items, and cancels with moto's own exception if one fails
  (nothing was written, so nothing needs rolling back, and no stream record escapes); only then
  does moto apply the writes, with its table backup reduced to a reference. Its rollback is then
  a no-op: it would only matter for a request that fails validation halfway, which DynamoDB
  rejects as a whole and our code does not send.

The integration tests, the local stack and ``bench scan`` share these patches.
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


def _check_conditions_first(original: Any) -> Any:
    """``DynamoDBBackend.transact_write_items`` without whole-table backups (module docstring)."""
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models.table import Table

    def deepcopy_except_tables(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    no_table_copies = types.SimpleNamespace(deepcopy=deepcopy_except_tables, copy=copy.copy)

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        errors: list[tuple[str | None, str | None, Any]] = []
        try:
            for entry in transact_items:
                op_type, op = next(iter(entry.items()))
                table = self.get_table(op["TableName"])
                if op_type == "Put":
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op["Key"]
                current = self.get_item(op["TableName"], key)
                condition = op.get("ConditionExpression")
                if condition is not None and not get_filter_expression(
                    condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                ).expr(current):
                    old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current
                    item = current.to_json()["Attributes"] if old else None
                    errors.append(("ConditionalCheckFailed", "The conditional request failed", item))
                else:
                    errors.append((None, None, None))
        except Exception:
            return original(self, transact_items)  # a malformed request: moto's own path and error
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        saved = models.copy  # type: ignore[attr-defined]
        models.copy = no_table_copies  # type: ignore[attr-defined,assignment]
        try:
            return original(self, transact_items)
        finally:
            models.copy = saved  # type: ignore[attr-defined]

    return transact_write_items


def patch_moto() -> None:
    """Serialise moto's S3 object and DynamoDB requests and make its transactions check conditions
    before writing (idempotent, process-wide; see the module docstring).

    Call it before the server handles its first request; it patches the moto classes the server
    (and ``mock_aws``) dispatches to, so it covers every moto server in the process.
    """
    with _apply_lock:
        if _state["applied"]:
            return
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.responses import DynamoHandler
        from moto.s3.responses import S3Response

        for cls, method in ((S3Response, "key_response"), (DynamoHandler, "call_action")):
            setattr(cls, method, _serialised(getattr(cls, method), threading.Lock()))
        DynamoDBBackend.transact_write_items = _check_conditions_first(  # type: ignore[method-assign]
            DynamoDBBackend.transact_write_items
        )
        _state["applied"] = True

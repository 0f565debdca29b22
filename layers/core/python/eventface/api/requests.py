"""Request parsing with limits: JSON objects, base64 photos, device templates, dates, pages.

Everything raises ``InvalidInputError`` (400), ``PayloadTooLargeError`` (413) or
``UnsupportedMediaTypeError`` (415) with a message that says what to send instead.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Final

from eventface.api.errors import UnsupportedMediaTypeError
from eventface.domain.errors import InvalidInputError, PayloadTooLargeError
from eventface.domain.limits import check_instant, check_range, parse_json
from eventface.domain.model import MAX_CHECKPOINTS, MAX_COOLDOWN_SECONDS, HistoryQuery, Probe, check_id
from eventface.domain.vip import (
    DEFAULT_CRM_DEADLINE_MS,
    MAX_CRM_DEADLINE_MS,
    MAX_DEDUPE_MINUTES,
    MIN_CRM_DEADLINE_MS,
    CrmConfig,
    CrmKind,
    Segment,
)

#: Length of a device-computed template (SFace embeddings have 128 dimensions).
TEMPLATE_DIM: Final = 128
#: How far from 1 a template's L2 norm may be (float32 rounding on the device).
NORM_TOLERANCE: Final = 1e-3
IMAGE_TYPES: Final = ("image/jpeg", "image/png", "image/webp")
JSON_TYPE: Final = "application/json"
MAX_MODEL_ID: Final = 64
# The range of every integer field, (least, most): what the domain and the code that uses the
# value can take.
COOLDOWN_SECONDS: Final = (0, MAX_COOLDOWN_SECONDS)
STAMPS_REQUIRED: Final = (1, MAX_CHECKPOINTS)
MIN_STAMPS: Final = (0, MAX_CHECKPOINTS)
DEDUPE_MINUTES: Final = (0, MAX_DEDUPE_MINUTES)
DEADLINE_MS: Final = (MIN_CRM_DEADLINE_MS, MAX_CRM_DEADLINE_MS)
#: A management API key lives from 1 to 365 days (the service's MAX_TTL).
TTL_DAYS: Final = (1, 365)
#: Page sizes are checked by the services (``Policy.page_limit``); this only keeps the text sane.
MAX_LIMIT_DIGITS: Final = 6


def media_type(content_type: str | None) -> str:
    """``image/jpeg`` from ``image/jpeg; charset=x`` (lower case); JSON when absent."""
    if not content_type:
        return JSON_TYPE
    return content_type.split(";", 1)[0].strip().lower()


def check_size(body: bytes | str, limit: int, what: str = "request body") -> bytes:
    """Return ``body`` (as bytes) if it is at most ``limit`` bytes, else raise PayloadTooLargeError."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if len(body) > limit:
        raise PayloadTooLargeError(f"the {what} is {len(body)} bytes, over the limit of {limit}: send less")
    return body


def json_object(body: bytes, allowed: Collection[str] | None = None) -> dict[str, Any]:
    """Parse a JSON object; with ``allowed``, unknown fields are refused (typos do not pass).

    The one parser of request bodies on both APIs: UTF-8 only, nested at most 32 levels, at most
    1000 arrays and objects, integers of at most 19 digits, no NaN or Infinity (checked before the
    document is built, see :func:`eventface.domain.limits.parse_json`). Callers bound the size
    first with :func:`check_size`.
    """
    if not body:
        raise InvalidInputError("the request body is empty: send a JSON object")
    value = parse_json(body)
    if not isinstance(value, dict):
        raise InvalidInputError("the request body must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise InvalidInputError(f"unknown field(s) {unknown}: allowed fields are {sorted(allowed)}")
    return value


def require(body: Mapping[str, Any], name: str) -> Any:
    """The value of a required field."""
    if name not in body or body[name] is None:
        raise InvalidInputError(f"{name} is required")
    return body[name]


def string(body: Mapping[str, Any], name: str, *, default: str | None = None) -> str:
    """A string field (required unless ``default`` is given)."""
    value = body.get(name, default)
    if value is None:
        raise InvalidInputError(f"{name} is required and must be a string")
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string")
    return value


def integer(
    body: Mapping[str, Any], name: str, bounds: tuple[int, int], *, default: int | None = None
) -> int:
    """An integer field within ``bounds`` (inclusive; booleans and floats refused).

    Every number is bounded on the way in, so a value that is stored is one the code can use.
    """
    value = body.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer from {bounds[0]} to {bounds[1]}")
    return check_range(name, value, *bounds)


def boolean(body: Mapping[str, Any], name: str, *, default: bool | None = None) -> bool:
    """A boolean field (``true``/``false`` only)."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be true or false")
    return value


def timestamp(body: Mapping[str, Any], name: str) -> datetime:
    """An ISO 8601 date-time with a timezone (``2026-05-01T09:00:00+09:00`` or ``...Z``), from
    2000-01-01 to before 2100-01-01 UTC."""
    raw = string(body, name)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInputError(
            f"{name} {raw!r} is not an ISO 8601 date-time: use e.g. 2026-05-01T09:00:00+09:00"
        ) from None
    return check_instant(name, value)


def photo(value: Any, limit: int, name: str = "photo") -> bytes:
    """Decode a base64 photo (standard alphabet, padding required) of at most ``limit`` bytes."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} must be a non-empty base64 string of a JPEG, PNG or WebP image")
    # 4 base64 characters carry 3 bytes: refuse an oversized photo before decoding it.
    if len(value) // 4 * 3 > limit + 3:
        raise PayloadTooLargeError(f"the {name} is over the limit of {limit} bytes: send a smaller image")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{name} is not valid base64: encode the image bytes with base64") from None
    if not data:
        raise InvalidInputError(f"{name} is empty: send the image bytes, base64-encoded")
    return check_size(data, limit, name)


def template(body: Mapping[str, Any]) -> Probe:
    """A Type B probe: ``template`` (128 finite floats, L2-normalised), ``model_id``, ``masked``."""
    vector = body.get("template")
    if not isinstance(vector, list) or len(vector) != TEMPLATE_DIM:
        got = f"{len(vector)} values" if isinstance(vector, list) else type(vector).__name__
        raise InvalidInputError(f"template must be a list of {TEMPLATE_DIM} numbers, got {got}")
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in vector):
        raise InvalidInputError("template must contain only numbers")
    try:
        values = tuple(float(v) for v in vector)
    except OverflowError:  # an integer beyond the float range
        raise InvalidInputError("template contains NaN or infinity: send the embedding as computed") from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidInputError("template contains NaN or infinity: send the embedding as computed")
    norm = math.sqrt(sum(v * v for v in values))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise InvalidInputError(
            f"template is not L2-normalised (norm {norm:.4f}): divide the embedding by its length"
        )
    model_id = body.get("model_id")
    if not isinstance(model_id, str) or not 0 < len(model_id) <= MAX_MODEL_ID:
        raise InvalidInputError("model_id is required with a template: the id of the model that made it")
    return Probe(vector=values, model_id=model_id, masked=boolean(body, "masked", default=False))


def crm_config(value: Any) -> CrmConfig:
    """A venue's ``crm`` object: ``kind`` (none, rest, webhook), ``url``, ``field_map``,
    ``auth_header``, ``secret_id``, ``deadline_ms`` (the domain checks the values)."""
    fields = {"kind", "url", "field_map", "auth_header", "secret_id", "deadline_ms"}
    if not isinstance(value, dict) or set(value) - fields:
        raise InvalidInputError(f"crm must be an object with {', '.join(sorted(fields))}")
    try:
        kind = CrmKind(value.get("kind", "none"))
    except ValueError:
        raise InvalidInputError("crm.kind must be none, rest or webhook") from None
    field_map = value.get("field_map", {})
    if not isinstance(field_map, dict) or not all(isinstance(v, str) for v in field_map.values()):
        raise InvalidInputError('crm.field_map must map names to dotted paths, e.g. {"name": "profile.name"}')
    secret_id = value.get("secret_id")
    if secret_id is not None and (not isinstance(secret_id, str) or not 0 < len(secret_id) <= 2048):
        raise InvalidInputError(
            "crm.secret_id must be a Secrets Manager secret name under eventface/tenants/<your tenant>/ "
            "(GET /v1/crm/secrets lists them)"
        )
    return CrmConfig(
        kind=kind,
        url=string(value, "url", default=""),
        field_map=dict(field_map),
        auth_header=string(value, "auth_header", default="Authorization"),
        secret_id=secret_id,
        deadline_ms=integer(value, "deadline_ms", DEADLINE_MS, default=DEFAULT_CRM_DEADLINE_MS),
    )


def texts(body: Mapping[str, Any], name: str, *, required: bool = True) -> dict[str, str]:
    """A per-locale text object such as ``{"ja": "...", "en": "..."}``."""
    value = body.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or not value or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInputError(f'{name} must give the text per locale, e.g. {{"ja": "…", "en": "…"}}')
    return {str(k): v for k, v in value.items()}


def segment(value: Any) -> Segment:
    """A message's ``segment``: ``min_stamps`` (0+), ``completed`` (true, false or absent)."""
    if value is None:
        return Segment()
    if not isinstance(value, dict) or set(value) - {"min_stamps", "completed"}:
        raise InvalidInputError('segment must be an object like {"min_stamps": 2, "completed": false}')
    completed = value.get("completed")
    if completed is not None and not isinstance(completed, bool):
        raise InvalidInputError("segment.completed must be true, false or absent")
    return Segment(min_stamps=integer(value, "min_stamps", MIN_STAMPS, default=0), completed=completed)


def scan_input(
    content_type: str | None, body: bytes | str, limits: tuple[int, int]
) -> tuple[bytes | None, Probe | None]:
    """The photo or the template of a scan body: raw image bytes, or JSON ``photo``/``template``.

    ``limits`` is ``(max_body_bytes, max_photo_bytes)``.
    """
    max_body, max_photo = limits
    kind = media_type(content_type)
    if kind in IMAGE_TYPES:
        if not body:
            raise InvalidInputError("the body is empty: send the image bytes")
        return check_size(body, max_photo, "photo"), None
    if kind != JSON_TYPE:
        raise UnsupportedMediaTypeError(
            f"unsupported content type {kind!r}: send {', '.join(IMAGE_TYPES)} or {JSON_TYPE}"
        )
    data = json_object(check_size(body, max_body), {"photo", "template", "model_id", "masked"})
    has_photo, has_template = "photo" in data, "template" in data
    if has_photo == has_template:
        raise InvalidInputError(
            'send either "photo" (base64) or "template" (128 floats), not both or neither'
        )
    if has_photo:
        return photo(data["photo"], max_photo), None
    return None, template(data)


def page_args(query: Mapping[str, str] | None, default_limit: int = 50) -> tuple[int, str | None]:
    """``limit`` and ``cursor`` from a query string (the services check the limit's range)."""
    query = query or {}
    raw = query.get("limit")
    if raw is None or raw == "":
        limit = default_limit
    else:
        text = raw.strip()
        digits = text.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_LIMIT_DIGITS:
            shown = repr(raw) if len(raw) <= 20 else f"of {len(raw)} characters"
            raise InvalidInputError(f"limit {shown} is not a page size: use an integer such as 50")
        limit = int(text)
    return limit, query.get("cursor") or None


def history_query(query: Mapping[str, str] | None) -> HistoryQuery:
    """``since``, ``until`` (ISO 8601 with a timezone), ``device_id``, ``checkpoint_id`` and
    ``participant_id`` from a query string; absent ones do not filter."""
    query = query or {}

    def when(name: str) -> datetime | None:
        return timestamp(query, name) if query.get(name) else None

    def ident(name: str) -> str | None:
        return check_id(name, query[name]) if query.get(name) else None

    return HistoryQuery(
        since=when("since"),
        until=when("until"),
        device_id=ident("device_id"),
        checkpoint_id=ident("checkpoint_id"),
        participant_id=ident("participant_id"),
    )

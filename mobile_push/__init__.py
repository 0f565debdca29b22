"""mobile_push: a stand-alone push library (SNS mobile push, signed webhooks, a local inbox).

It depends on the standard library and on clients injected by the caller, and never imports
``eventface``.
"""

from __future__ import annotations

from mobile_push.errors import (
    EndpointDisabledError,
    PermanentPushError,
    PushError,
    TemplateError,
    TransientPushError,
)
from mobile_push.inbox import InboxProvider, read_inbox
from mobile_push.messages import (
    LocalizedText,
    Message,
    Receipt,
    ReceiptStatus,
    Recipient,
    Template,
    TemplateCatalog,
)
from mobile_push.sender import Provider, PushSender
from mobile_push.sns import SnsProvider, build_payload, create_platform_application
from mobile_push.webhook import WebhookProvider, sign, verify_signature

__all__ = [
    "EndpointDisabledError",
    "InboxProvider",
    "LocalizedText",
    "Message",
    "PermanentPushError",
    "Provider",
    "PushError",
    "PushSender",
    "Receipt",
    "ReceiptStatus",
    "Recipient",
    "SnsProvider",
    "Template",
    "TemplateCatalog",
    "TemplateError",
    "TransientPushError",
    "WebhookProvider",
    "build_payload",
    "create_platform_application",
    "read_inbox",
    "sign",
    "verify_signature",
]

"""Errors raised by push providers and templates.

Providers sort every failure into one of three kinds so that :class:`mobile_push.PushSender`
knows what to do with it: retry (:class:`TransientPushError`), give up
(:class:`PermanentPushError`) or give up and tell the caller to stop using the address
(:class:`EndpointDisabledError`).
"""

from __future__ import annotations


class PushError(Exception):
    """Base class of every error raised by ``mobile_push``."""


class TransientPushError(PushError):
    """The provider could not deliver now but may later (throttling, 5xx, timeout): retry."""


class PermanentPushError(PushError):
    """The message can never be delivered as sent (bad request, bad credentials): do not retry."""


class EndpointDisabledError(PermanentPushError):
    """The address is disabled or no longer valid: mark the recipient and never send to it again."""


class TemplateError(PushError, ValueError):
    """A template is malformed, unknown, or a recipient lacks one of its variables."""

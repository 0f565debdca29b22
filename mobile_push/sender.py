"""The provider port and :class:`PushSender`, which retries, classifies and reports every send."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from mobile_push.errors import EndpointDisabledError, PermanentPushError, TemplateError, TransientPushError
from mobile_push.messages import Message, Receipt, ReceiptStatus, Recipient, Template

logger = logging.getLogger("mobile_push")


class Provider(Protocol):
    """Delivers one rendered message to one recipient.

    Implementations raise :class:`TransientPushError`, :class:`PermanentPushError` or
    :class:`EndpointDisabledError`; any other exception counts as permanent.
    """

    def send(self, recipient: Recipient, message: Message) -> str:
        """Send ``message`` and return the provider's message id."""
        ...


class PushSender:
    """Renders a template per recipient and sends it through the recipient's provider.

    Parameters
    ----------
    providers
        Provider name (as in :attr:`Recipient.provider`) to provider.
    max_attempts
        Attempts per recipient for transient failures, including the first (at least 1).
    backoff
        ``(base, cap)`` in seconds: the n-th retry waits ``min(cap, base * 2**(n-1))``, scaled by a
        random factor in [0.5, 1] ("equal jitter") so that many senders do not retry in step.
    sleep
        Called with the delay in seconds; inject a fake in tests.
    on_disabled
        Called with each recipient whose endpoint is disabled, so the caller can mark it and never
        send to it again. An exception from it is logged and does not change the receipt.
    rand
        Source of uniform numbers in [0, 1) for the jitter.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        max_attempts: int = 3,
        backoff: tuple[float, float] = (0.2, 1.0),
        sleep: Callable[[float], None] = time.sleep,
        on_disabled: Callable[[Recipient], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        base, cap = backoff
        if base < 0 or cap < base:
            raise ValueError(f"backoff must be (base, cap) with 0 <= base <= cap, got {backoff}")
        self._providers = dict(providers)
        self._max_attempts = max_attempts
        self._backoff = (base, cap)
        self._sleep = sleep
        self._on_disabled = on_disabled
        self._rand = rand

    def delay(self, retry: int) -> float:
        """Return the wait before the ``retry``-th retry (1-based), jitter included."""
        base, cap = self._backoff
        ceiling: float = min(cap, base * 2.0 ** (retry - 1))
        return ceiling * (0.5 + 0.5 * self._rand())

    def send(self, template: Template, recipients: Iterable[Recipient]) -> list[Receipt]:
        """Send ``template`` to every recipient, one after the other.

        Parameters
        ----------
        template
            Rendered per recipient in the recipient's locale with its variables.
        recipients
            Addressees; each gets exactly one receipt, in the same order.

        Returns
        -------
        list[Receipt]
            One receipt per recipient. Nothing raises for a single recipient's failure: a missing
            template variable or an unknown provider becomes a ``"failed"`` receipt.
        """
        receipts = [self._send_one(template, recipient) for recipient in recipients]
        logger.info(
            "push %s sent: %d delivered, %d failed, %d disabled",
            template.name,
            sum(r.status == "delivered" for r in receipts),
            sum(r.status == "failed" for r in receipts),
            sum(r.status == "disabled" for r in receipts),
        )
        return receipts

    def _send_one(self, template: Template, recipient: Recipient) -> Receipt:
        def receipt(
            status: ReceiptStatus, reason: str | None, attempts: int, message_id: str | None = None
        ) -> Receipt:
            logger.info(
                "push %s to %s via %s: %s after %d attempt(s)",
                template.name,
                recipient.recipient_id,
                recipient.provider,
                status,
                attempts,
            )
            return Receipt(
                recipient_id=recipient.recipient_id,
                provider=recipient.provider,
                status=status,
                reason=reason,
                provider_message_id=message_id,
                attempts=attempts,
            )

        provider = self._providers.get(recipient.provider)
        if provider is None:
            known = ", ".join(sorted(self._providers)) or "none"
            return receipt("failed", f"no provider named {recipient.provider!r} (configured: {known})", 0)
        try:
            message = template.render(recipient.locale, recipient.variables)
        except TemplateError as exc:
            return receipt("failed", str(exc), 0)

        attempt = 0
        while True:
            attempt += 1
            try:
                message_id = provider.send(recipient, message)
            except EndpointDisabledError as exc:
                self._report_disabled(recipient)
                return receipt("disabled", str(exc) or "endpoint disabled", attempt)
            except TransientPushError as exc:
                if attempt >= self._max_attempts:
                    return receipt("failed", f"gave up after {attempt} attempt(s): {exc}", attempt)
                logger.info(
                    "push %s to %s: transient failure on attempt %d, retrying",
                    template.name,
                    recipient.recipient_id,
                    attempt,
                )
                self._sleep(self.delay(attempt))
            except PermanentPushError as exc:
                return receipt("failed", str(exc), attempt)
            except Exception as exc:
                # A bug or an unmapped error in a provider: report it on the receipt rather than
                # lose the other recipients; the type is logged, never the message text.
                logger.warning(
                    "push %s to %s: provider %s raised %s",
                    template.name,
                    recipient.recipient_id,
                    recipient.provider,
                    type(exc).__name__,
                )
                return receipt("failed", f"unexpected {type(exc).__name__}: {exc}", attempt)
            else:
                return receipt("delivered", None, attempt, message_id)

    def _report_disabled(self, recipient: Recipient) -> None:
        if self._on_disabled is None:
            return
        try:
            self._on_disabled(recipient)
        except Exception:
            logger.exception("on_disabled callback failed for recipient %s", recipient.recipient_id)

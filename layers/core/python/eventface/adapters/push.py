"""Push notifications: the message templates, push addresses, and the configured :class:`PushSender`.

Templates (Japanese and English, English the fallback), named after what they announce:

- ``stamp`` and ``completion``: a localised title; the body is the job's text, already rendered
  from the campaign's texts when the scan was recorded (``{text}``);
- ``message``: a marketer's campaign message, title and body as the marketer wrote them for the
  participant's locale (``{title}``, ``{text}``);
- ``vip_alert``: a VIP arrival for venue staff: the greeting name, the tier, and a short profile
  summary or why there is none (see :func:`vip_alert_variables`).

Addresses: a participant's ``push_endpoint`` and a staff device's (platform, token) are
``"<platform>:<token>"`` with platform ``apns`` | ``fcm`` (SNS mobile push), ``webhook`` (token = the
URL) or ``inbox`` (no token: the local stack's inbox file is named by the recipient id).
:func:`recipient` maps them to a provider name and address of :func:`build_push_sender`'s sender.

Nothing here does I/O at import: the SNS client and the webhook signing secret are read on the
first push that needs them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from eventface.domain.vip import ProfileStatus, VipAlert
from eventface.settings import (
    PUSH_INBOX_DIR,
    PUSH_WEBHOOK_SECRET_ID,
    SNS_APNS_APPLICATION_ARN,
    SNS_FCM_APPLICATION_ARN,
    Settings,
)
from mobile_push import (
    InboxProvider,
    LocalizedText,
    Message,
    PermanentPushError,
    Provider,
    PushSender,
    Recipient,
    SnsProvider,
    Template,
    TemplateCatalog,
    TransientPushError,
    WebhookProvider,
)

STAMP: Final = "stamp"
COMPLETION: Final = "completion"
MESSAGE: Final = "message"
VIP_ALERT: Final = "vip_alert"

#: Provider names of the sender built by :func:`build_push_sender`.
INBOX: Final = "inbox"
SNS: Final = "sns"
WEBHOOK: Final = "webhook"
#: Address platforms that go through SNS mobile push, and the setting of each one's application.
SNS_PLATFORMS: Final = {"apns": SNS_APNS_APPLICATION_ARN, "fcm": SNS_FCM_APPLICATION_ARN}
#: The webhook signing secret is read again after this long (rotation).
SECRET_CACHE_SECONDS: Final = 300.0
#: Longest profile summary in a VIP alert's body (characters).
MAX_SUMMARY: Final = 160

_PROFILE_STATUS_TEXT: Final[Mapping[ProfileStatus, Mapping[str, str]]] = {
    ProfileStatus.PENDING: {"ja": "プロフィール確認中", "en": "profile pending"},
    ProfileStatus.NOT_FOUND: {"ja": "CRMに登録なし", "en": "not found in the CRM"},
    ProfileStatus.UNAVAILABLE: {"ja": "プロフィール取得不可", "en": "profile unavailable"},
    ProfileStatus.NONE: {"ja": "CRMプロフィールなし", "en": "no CRM profile"},
}
_NO_DETAILS: Final = {"ja": "プロフィール: 追加情報なし", "en": "profile: no further details"}
_NO_TIER: Final = "-"


def _data(kind: str, *names: str) -> dict[str, str]:
    return {"kind": kind, **{name: f"{{{name}}}" for name in names}}


_STAMP_DATA: Final = _data(STAMP, "campaign_id", "stamps", "required")
_COMPLETION_DATA: Final = _data(COMPLETION, "campaign_id", "stamps", "required")
_MESSAGE_DATA: Final = _data(MESSAGE, "campaign_id", "message_id")
_VIP_DATA: Final = _data(VIP_ALERT, "alert_id", "venue_id", "member_id", "profile_status")

TEMPLATES: Final = TemplateCatalog(
    [
        Template(
            STAMP,
            {
                "ja": LocalizedText("スタンプを獲得しました", "{text}", _STAMP_DATA),
                "en": LocalizedText("Stamp collected", "{text}", _STAMP_DATA),
            },
        ),
        Template(
            COMPLETION,
            {
                "ja": LocalizedText("スタンプラリー達成！", "{text}", _COMPLETION_DATA),
                "en": LocalizedText("Stamp rally complete!", "{text}", _COMPLETION_DATA),
            },
        ),
        Template(
            MESSAGE,
            {
                "ja": LocalizedText("{title}", "{text}", _MESSAGE_DATA),
                "en": LocalizedText("{title}", "{text}", _MESSAGE_DATA),
            },
        ),
        Template(
            VIP_ALERT,
            {
                "ja": LocalizedText("VIP来訪: {name}様", "ランク: {tier}\n{summary}", _VIP_DATA),
                "en": LocalizedText("VIP arrival: {name}", "Tier: {tier}\n{summary}", _VIP_DATA),
            },
        ),
    ]
)


def template(name: str) -> Template:
    """The template called ``name`` (``stamp``, ``completion``, ``message``, ``vip_alert``).

    Raises
    ------
    mobile_push.TemplateError
        For an unknown name (the message lists the known ones).
    """
    return TEMPLATES.get(name)


def _language(locale: str) -> str:
    language = locale.replace("_", "-").split("-", 1)[0].lower()
    return language if language in ("ja", "en") else "en"


def profile_summary(alert: VipAlert, locale: str) -> str:
    """A short line about the guest's CRM profile for staff, or why there is none, in ``locale``.

    The name is in the title and the tier on its own line, so the summary lists the other mapped
    fields (``drink: green tea / room: high floor``), cut at :data:`MAX_SUMMARY` characters.
    """
    language = _language(locale)
    if alert.profile_status is not ProfileStatus.OK:
        return _PROFILE_STATUS_TEXT[alert.profile_status][language]
    profile = alert.profile or {}
    parts = [
        f"{key}: {value}" for key, value in sorted(profile.items()) if key not in ("name", "tier") and value
    ]
    if not parts:
        return _NO_DETAILS[language]
    summary = " / ".join(parts)
    return summary if len(summary) <= MAX_SUMMARY else summary[: MAX_SUMMARY - 1] + "…"


def vip_alert_variables(alert: VipAlert, locale: str) -> dict[str, str]:
    """The ``vip_alert`` template's variables for a staff device in ``locale``.

    Parameters
    ----------
    alert
        The enriched alert (its profile status decides the summary).
    locale
        The staff device's locale (``ja``, ``en``; others get English).
    """
    profile = alert.profile or {}
    tier = alert.tier or profile.get("tier", "") or _NO_TIER
    return {
        "name": alert.name,
        "tier": tier,
        "summary": profile_summary(alert, locale),
        "alert_id": alert.alert_id,
        "venue_id": alert.venue_id,
        "member_id": alert.member_id,
        "profile_status": alert.profile_status.value,
    }


def recipient(
    recipient_id: str,
    endpoint_or_platform_token: str | tuple[str, str],
    locale: str,
    variables: Mapping[str, str],
) -> Recipient:
    """The :class:`Recipient` of a push address.

    Parameters
    ----------
    recipient_id
        Names the recipient in receipts and logs, and the inbox file (participant or staff device id).
    endpoint_or_platform_token
        ``"<platform>:<token>"`` (a participant's ``push_endpoint``), or a staff device's
        ``(platform, token)``. An SNS endpoint ARN (``"arn:aws:sns:..."``) is sent through SNS as is.
    locale, variables
        The recipient's locale and the template's variables.

    Returns
    -------
    Recipient
        Provider ``sns`` (address ``"apns:<token>"`` / ``"fcm:<token>"`` / the ARN), ``webhook``
        (address = the URL) or ``inbox``; an unknown platform keeps its own name as the provider,
        so the sender answers a failed receipt that names it.
    """
    if isinstance(endpoint_or_platform_token, tuple):
        platform, token = endpoint_or_platform_token
    else:
        platform, _, token = endpoint_or_platform_token.partition(":")
    platform = platform.strip().lower()
    if platform in SNS_PLATFORMS:
        provider, address = SNS, f"{platform}:{token}"
    elif platform == "arn" and isinstance(endpoint_or_platform_token, str):
        provider, address = SNS, endpoint_or_platform_token
    elif platform == WEBHOOK:
        provider, address = WEBHOOK, token
    elif platform == INBOX:
        provider, address = INBOX, ""
    else:
        provider, address = platform or "none", token
    return Recipient(recipient_id, provider, address, locale, dict(variables))


class _Unconfigured:
    """Stands for a provider the deployment did not configure: every send fails with the setting
    to set (the sender's own "no provider named ..." would not say)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def send(self, recipient: Recipient, message: Message) -> str:
        raise PermanentPushError(self.reason)


class _LazySns:
    """SNS mobile push with the client made on first use; a platform without an application ARN
    fails with the setting to set."""

    def __init__(self, applications: Mapping[str, str], client: Callable[[], Any]) -> None:
        self._applications = dict(applications)
        self._client = client
        self._provider: SnsProvider | None = None
        self._lock = threading.Lock()

    def send(self, recipient: Recipient, message: Message) -> str:
        platform = recipient.address.partition(":")[0]
        if platform in SNS_PLATFORMS and platform not in self._applications:
            raise PermanentPushError(
                f"{platform} devices cannot be pushed to: set {SNS_PLATFORMS[platform]} to the SNS "
                f"platform application ARN for {platform.upper()}"
            )
        with self._lock:
            if self._provider is None:
                self._provider = SnsProvider(self._client(), self._applications)
            provider = self._provider
        return provider.send(recipient, message)


class _SecretWebhook:
    """Signed webhooks whose HMAC key is the Secrets Manager secret ``secret_id``, read on first use
    and again after :data:`SECRET_CACHE_SECONDS` (a rotated secret is picked up)."""

    def __init__(
        self,
        secret_id: str,
        client: Callable[[], Any],
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self._timeout = timeout
        self._clock = clock
        self._cached: tuple[float, bytes, WebhookProvider] | None = None
        self._lock = threading.Lock()

    def send(self, recipient: Recipient, message: Message) -> str:
        return self._provider().send(recipient, message)

    def _provider(self) -> WebhookProvider:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < SECRET_CACHE_SECONDS:
                return self._cached[2]
            secret = self._read_secret()
            if self._cached is not None and self._cached[1] == secret:
                provider = self._cached[2]
            else:
                provider = WebhookProvider(secret, timeout=self._timeout)
            self._cached = (now, secret, provider)
            return provider

    def _read_secret(self) -> bytes:
        try:
            answer = self._client().get_secret_value(SecretId=self.secret_id)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            hint = (
                f"check that the secret {self.secret_id!r} ({PUSH_WEBHOOK_SECRET_ID}) exists and the "
                "function may read it"
            )
            if code in ("ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure"):
                raise PermanentPushError(
                    f"the webhook signing secret could not be read ({code}): {hint}"
                ) from exc
            raise TransientPushError(
                f"the webhook signing secret could not be read ({code or type(exc).__name__}): {hint}"
            ) from exc
        value = answer.get("SecretString")
        if isinstance(value, str) and value:
            return value.encode()
        binary = answer.get("SecretBinary")
        if isinstance(binary, bytes) and binary:
            return binary
        raise PermanentPushError(
            f"the secret {self.secret_id!r} ({PUSH_WEBHOOK_SECRET_ID}) is empty: store the webhook HMAC "
            "key in it"
        )


def _aws_client(service: str) -> Callable[[], Any]:
    def make() -> Any:
        from eventface import aws  # boto3 only when a push needs it

        return aws.client(service)

    return make


def build_push_sender(
    settings: Settings,
    *,
    sns_client: Callable[[], Any] | None = None,
    secrets_client: Callable[[], Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushSender:
    """The deployment's :class:`PushSender` (the composition root calls this once per container).

    Parameters
    ----------
    settings
        ``push_inbox_dir`` enables the ``inbox`` provider; ``sns_apns_application_arn`` and/or
        ``sns_fcm_application_arn`` enable ``sns``; ``push_webhook_secret_id`` enables ``webhook``.
    sns_client, secrets_client
        Factories of the boto3 clients (``eventface.aws.client`` by default), called on first use.
    sleep
        The pause between retries of a transient failure.

    Returns
    -------
    PushSender
        Every provider name is known: one that is not configured fails each send with a receipt
        whose reason names the setting to set.
    """
    providers: dict[str, Provider] = {}
    inbox_dir = settings.push_inbox_dir
    providers[INBOX] = (
        InboxProvider(inbox_dir)
        if inbox_dir is not None
        else _Unconfigured(f"inbox pushes are not enabled: set {PUSH_INBOX_DIR} to the inbox directory")
    )
    applications = {
        platform: arn
        for platform, arn in (
            ("apns", settings.sns_apns_application_arn),
            ("fcm", settings.sns_fcm_application_arn),
        )
        if arn
    }
    providers[SNS] = (
        _LazySns(applications, sns_client or _aws_client("sns"))
        if applications
        else _Unconfigured(
            f"SNS mobile push is not enabled: set {SNS_APNS_APPLICATION_ARN} and/or "
            f"{SNS_FCM_APPLICATION_ARN} to the SNS platform application ARNs"
        )
    )
    secret_id = settings.push_webhook_secret_id
    providers[WEBHOOK] = (
        _SecretWebhook(secret_id, secrets_client or _aws_client("secretsmanager"))
        if secret_id
        else _Unconfigured(
            f"webhook pushes are not enabled: set {PUSH_WEBHOOK_SECRET_ID} to the Secrets Manager "
            "secret that holds the HMAC signing key"
        )
    )
    return PushSender(providers, sleep=sleep)

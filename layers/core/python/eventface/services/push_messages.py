"""What pushes say and where they go: the message templates and push addresses.

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
:func:`recipient` maps them to the providers (:class:`~eventface.domain.vip.PushProvider`) of the
sender the composition root builds (``eventface.adapters.push.build_push_sender``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from eventface.domain.vip import SNS_PLATFORMS, ProfileStatus, PushProvider, VipAlert
from mobile_push import LocalizedText, Recipient, Template, TemplateCatalog

STAMP: Final = "stamp"
COMPLETION: Final = "completion"
MESSAGE: Final = "message"
VIP_ALERT: Final = "vip_alert"

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
        provider, address = PushProvider.SNS.value, f"{platform}:{token}"
    elif platform == "arn" and isinstance(endpoint_or_platform_token, str):
        provider, address = PushProvider.SNS.value, endpoint_or_platform_token
    elif platform == PushProvider.WEBHOOK:
        provider, address = PushProvider.WEBHOOK.value, token
    elif platform == PushProvider.INBOX:
        provider, address = PushProvider.INBOX.value, ""
    else:
        provider, address = platform or "none", token
    return Recipient(recipient_id, provider, address, locale, dict(variables))

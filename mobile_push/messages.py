"""Value objects: templates with localisation, rendered messages, recipients and receipts."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from mobile_push.errors import TemplateError

DEFAULT_LOCALE = "en"

ReceiptStatus = Literal["delivered", "failed", "disabled"]

_FORMATTER = string.Formatter()


def _placeholders(text: str, where: str) -> frozenset[str]:
    """Names of the ``{variable}`` fields in ``text``; anything fancier is rejected."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc}; write a literal brace as '{{{{' or '}}}}'") from exc
    names: set[str] = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(
                f"{where}: placeholder {{{name}}} is not a plain variable; use {{name}} with a "
                "Python identifier and no format spec or conversion"
            )
        names.add(name)
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class LocalizedText:
    """The texts of one template in one locale; ``data`` values may contain placeholders too."""

    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered push message for one recipient."""

    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Template:
    """A named message template with one :class:`LocalizedText` per locale.

    Parameters
    ----------
    name
        Template name, used in error messages and by :class:`TemplateCatalog`.
    texts
        Locale (``"en"``, ``"ja"``, ``"ja-JP"`` …) to texts. Must contain ``fallback_locale``.
    fallback_locale
        Locale used when a recipient's locale (and its language) has no texts.
    """

    name: str
    texts: Mapping[str, LocalizedText]
    fallback_locale: str = DEFAULT_LOCALE

    def __post_init__(self) -> None:
        if self.fallback_locale not in self.texts:
            raise TemplateError(
                f"template {self.name!r} has no {self.fallback_locale!r} texts; add them, since every "
                "locale without its own texts falls back to them"
            )
        for locale, text in self.texts.items():
            where = f"template {self.name!r} locale {locale!r}"
            _placeholders(text.title, where)
            _placeholders(text.body, where)
            for key, value in text.data.items():
                _placeholders(value, f"{where} data {key!r}")
        object.__setattr__(self, "texts", MappingProxyType(dict(self.texts)))

    def resolve_locale(self, locale: str) -> str:
        """Return the locale whose texts serve ``locale``: exact, then its language, then the fallback.

        Parameters
        ----------
        locale
            A BCP 47-ish tag such as ``"ja"``, ``"ja-JP"`` or ``"en_US"``.

        Returns
        -------
        str
            A key of ``texts``.
        """
        normalised = locale.replace("_", "-")
        candidates = [locale, normalised, normalised.split("-", 1)[0].lower()]
        for candidate in candidates:
            if candidate in self.texts:
                return candidate
        return self.fallback_locale

    def variables(self, locale: str) -> frozenset[str]:
        """Return the variable names the texts for ``locale`` need."""
        text = self.texts[self.resolve_locale(locale)]
        where = f"template {self.name!r}"
        names = _placeholders(text.title, where) | _placeholders(text.body, where)
        for value in text.data.values():
            names |= _placeholders(value, where)
        return names

    def render(self, locale: str, variables: Mapping[str, str]) -> Message:
        """Render the texts for ``locale`` with ``variables``.

        Parameters
        ----------
        locale
            The recipient's locale; see :meth:`resolve_locale` for the fallback.
        variables
            Values for the ``{variable}`` placeholders. Extra values are ignored.

        Returns
        -------
        Message
            The rendered title, body and data.

        Raises
        ------
        TemplateError
            If a placeholder has no value in ``variables``.
        """
        resolved = self.resolve_locale(locale)
        missing = sorted(self.variables(resolved) - set(variables))
        if missing:
            raise TemplateError(
                f"template {self.name!r} ({resolved}) needs variable(s) {', '.join(missing)}; "
                "add them to the recipient's variables"
            )
        text = self.texts[resolved]
        values = {key: str(value) for key, value in variables.items()}
        return Message(
            title=text.title.format_map(values),
            body=text.body.format_map(values),
            data={key: value.format_map(values) for key, value in text.data.items()},
        )


class TemplateCatalog:
    """Templates keyed by name, each holding its locales.

    Parameters
    ----------
    templates
        Initial templates; names must be unique.
    """

    def __init__(self, templates: tuple[Template, ...] | list[Template] = ()) -> None:
        self._templates: dict[str, Template] = {}
        for template in templates:
            self.add(template)

    def add(self, template: Template) -> None:
        """Register ``template``; a second template with the same name is an error."""
        if template.name in self._templates:
            raise TemplateError(f"template {template.name!r} is already registered; give it another name")
        self._templates[template.name] = template

    def get(self, name: str) -> Template:
        """Return the template called ``name``.

        Raises
        ------
        TemplateError
            If no template has that name.
        """
        try:
            return self._templates[name]
        except KeyError:
            known = ", ".join(sorted(self._templates)) or "none"
            raise TemplateError(f"no template named {name!r}; known templates: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._templates


@dataclass(frozen=True, slots=True)
class Recipient:
    """One addressee of a push.

    Parameters
    ----------
    recipient_id
        The caller's id for the recipient (device id, staff id …); never a token.
    provider
        Name of the provider in the sender's ``providers`` mapping (``"sns"``, ``"webhook"`` …).
    address
        Provider-specific address: ``"<platform>:<token>"`` or an endpoint ARN for SNS, a URL
        for webhooks; unused by the inbox.
    locale
        Preferred locale of the recipient.
    variables
        Values for the template's placeholders.
    """

    recipient_id: str
    provider: str
    address: str = ""
    locale: str = DEFAULT_LOCALE
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of sending to one recipient.

    ``status`` is ``"delivered"`` (accepted by the provider), ``"failed"`` (gave up; ``reason``
    says why) or ``"disabled"`` (the address is dead: stop sending to it).
    """

    recipient_id: str
    provider: str
    status: ReceiptStatus
    reason: str | None = None
    provider_message_id: str | None = None
    attempts: int = 0

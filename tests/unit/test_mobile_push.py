"""mobile_push: templates, the sender's retry policy, the inbox and webhooks against a real server."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mobile_push
from mobile_push import (
    EndpointDisabledError,
    InboxProvider,
    LocalizedText,
    Message,
    PermanentPushError,
    PushSender,
    Recipient,
    Template,
    TemplateCatalog,
    TemplateError,
    TransientPushError,
    WebhookProvider,
    read_inbox,
    verify_signature,
)

VIP_ARRIVED = Template(
    name="vip_arrived",
    texts={
        "en": LocalizedText(
            "VIP at {gate}", "{name} has arrived at {gate}.", {"gate": "{gate}", "kind": "vip"}
        ),
        "ja": LocalizedText("VIP来場: {gate}", "{name}様が{gate}に到着しました。", {"gate": "{gate}"}),
    },
)
VARS = {"name": "Sato", "gate": "East"}


# --- templates -----------------------------------------------------------------------------------


def test_render_english_and_japanese() -> None:
    en = VIP_ARRIVED.render("en", VARS)
    ja = VIP_ARRIVED.render("ja", VARS)
    assert en == Message("VIP at East", "Sato has arrived at East.", {"gate": "East", "kind": "vip"})
    assert ja.title == "VIP来場: East"
    assert ja.body == "Sato様がEastに到着しました。"
    assert ja.data == {"gate": "East"}


@pytest.mark.parametrize(("locale", "resolved"), [("ja-JP", "ja"), ("ja_JP", "ja"), ("fr", "en"), ("", "en")])
def test_locale_falls_back_to_language_then_english(locale: str, resolved: str) -> None:
    assert VIP_ARRIVED.resolve_locale(locale) == resolved


def test_missing_variable_names_it() -> None:
    with pytest.raises(TemplateError, match=r"needs variable\(s\) gate; add them"):
        VIP_ARRIVED.render("ja", {"name": "Sato"})


def test_template_without_fallback_locale_is_rejected() -> None:
    with pytest.raises(TemplateError, match="has no 'en' texts"):
        Template("t", {"ja": LocalizedText("a", "b")})


@pytest.mark.parametrize("text", ["{user.name}", "{0}", "{n!r}", "{n:>5}", "{unclosed"])
def test_non_plain_placeholders_are_rejected(text: str) -> None:
    with pytest.raises(TemplateError):
        Template("t", {"en": LocalizedText(text, "b")})


def test_literal_braces_survive() -> None:
    template = Template("t", {"en": LocalizedText("{{x}} {y}", "b")})
    assert template.render("en", {"y": "1"}).title == "{x} 1"


def test_catalog_lookup_and_unknown_name() -> None:
    catalog = TemplateCatalog([VIP_ARRIVED])
    assert catalog.get("vip_arrived") is VIP_ARRIVED
    assert "vip_arrived" in catalog
    with pytest.raises(TemplateError, match="known templates: vip_arrived"):
        catalog.get("nope")
    with pytest.raises(TemplateError, match="already registered"):
        catalog.add(VIP_ARRIVED)


# --- sender --------------------------------------------------------------------------------------


@dataclass
class ScriptedProvider:
    """Raises the scripted errors in order, then delivers."""

    script: list[Exception] = field(default_factory=list)
    calls: list[tuple[str, Message]] = field(default_factory=list)

    def send(self, recipient: Recipient, message: Message) -> str:
        self.calls.append((recipient.recipient_id, message))
        if self.script:
            raise self.script.pop(0)
        return f"msg-{len(self.calls)}"


def recipient(rid: str = "r1", provider: str = "fake", locale: str = "en") -> Recipient:
    return Recipient(rid, provider, address="x", locale=locale, variables=VARS)


def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    provider = ScriptedProvider([TransientPushError("busy"), TransientPushError("busy")])
    sleeps: list[float] = []
    sender = PushSender({"fake": provider}, max_attempts=3, sleep=sleeps.append, rand=lambda: 1.0)
    [receipt] = sender.send(VIP_ARRIVED, [recipient()])
    assert receipt.status == "delivered"
    assert receipt.attempts == 3
    assert receipt.provider_message_id == "msg-3"
    assert sleeps == [0.2, 0.4]


def test_backoff_is_capped_and_jittered() -> None:
    sender = PushSender({}, backoff=(0.2, 1.0), rand=lambda: 0.0)
    assert [sender.delay(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    real = PushSender({})
    assert all(0.1 <= real.delay(1) <= 0.2 for _ in range(50))


def test_gives_up_after_max_attempts() -> None:
    provider = ScriptedProvider([TransientPushError("busy")] * 5)
    sleeps: list[float] = []
    sender = PushSender({"fake": provider}, max_attempts=2, sleep=sleeps.append)
    [receipt] = sender.send(VIP_ARRIVED, [recipient()])
    assert receipt.status == "failed"
    assert receipt.attempts == 2
    assert receipt.reason is not None and "gave up after 2" in receipt.reason
    assert len(sleeps) == 1


def test_permanent_failure_is_not_retried() -> None:
    provider = ScriptedProvider([PermanentPushError("bad token")])
    sleeps: list[float] = []
    [receipt] = PushSender({"fake": provider}, sleep=sleeps.append).send(VIP_ARRIVED, [recipient()])
    assert (receipt.status, receipt.reason, receipt.attempts) == ("failed", "bad token", 1)
    assert sleeps == []


def test_disabled_endpoint_is_reported_to_callback_and_not_retried() -> None:
    provider = ScriptedProvider([EndpointDisabledError("gone")])
    disabled: list[Recipient] = []
    sender = PushSender({"fake": provider}, on_disabled=disabled.append, sleep=lambda _: None)
    [receipt] = sender.send(VIP_ARRIVED, [recipient("dead")])
    assert receipt.status == "disabled"
    assert receipt.attempts == 1
    assert [r.recipient_id for r in disabled] == ["dead"]


def test_failing_callback_does_not_lose_the_receipt() -> None:
    def boom(_: Recipient) -> None:
        raise RuntimeError("db down")

    sender = PushSender({"fake": ScriptedProvider([EndpointDisabledError("gone")])}, on_disabled=boom)
    assert [r.status for r in sender.send(VIP_ARRIVED, [recipient()])] == ["disabled"]


def test_every_recipient_gets_exactly_one_receipt_in_order() -> None:
    provider = ScriptedProvider([PermanentPushError("no"), ValueError("provider bug")])
    sender = PushSender({"fake": provider}, sleep=lambda _: None)
    recipients = [
        recipient("a"),  # permanent
        recipient("b"),  # unexpected exception
        recipient("c", locale="ja"),  # delivered, in Japanese
        recipient("d", provider="missing"),  # unknown provider
        Recipient("e", "fake", variables={"name": "x"}),  # missing variable
    ]
    receipts = sender.send(VIP_ARRIVED, recipients)
    assert [r.recipient_id for r in receipts] == ["a", "b", "c", "d", "e"]
    assert [r.status for r in receipts] == ["failed", "failed", "delivered", "failed", "failed"]
    assert receipts[1].reason == "unexpected ValueError: provider bug"
    assert receipts[3].reason is not None and "no provider named 'missing'" in receipts[3].reason
    assert receipts[4].reason is not None and "gate" in receipts[4].reason
    assert receipts[4].attempts == 0
    assert provider.calls[2][1].title == "VIP来場: East"


def test_bodies_are_not_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="mobile_push")
    PushSender({"fake": ScriptedProvider([TransientPushError("x")])}, sleep=lambda _: None).send(
        VIP_ARRIVED, [recipient("r9")]
    )
    assert "r9" in caplog.text
    assert "Sato" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"max_attempts": 0}, "max_attempts"), ({"backoff": (1.0, 0.5)}, "backoff")]
)
def test_invalid_settings_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PushSender({}, **kwargs)  # type: ignore[arg-type]


# --- inbox ---------------------------------------------------------------------------------------


def test_inbox_appends_json_lines(tmp_path: Path) -> None:
    inbox = InboxProvider(tmp_path / "inbox")
    sender = PushSender({"inbox": inbox})
    receipts = sender.send(VIP_ARRIVED, [recipient("staff-1", "inbox", "ja"), recipient("staff-1", "inbox")])
    messages = read_inbox(tmp_path / "inbox", "staff-1")
    assert [m["message_id"] for m in messages] == [r.provider_message_id for r in receipts]
    assert messages[0]["title"] == "VIP来場: East"
    assert messages[1]["data"] == {"gate": "East", "kind": "vip"}
    assert read_inbox(tmp_path / "inbox", "nobody") == []


def test_inbox_concurrent_appends_do_not_interleave(tmp_path: Path) -> None:
    inbox = InboxProvider(tmp_path)
    message = Message("t", "x" * 10_000)
    threads = [
        threading.Thread(target=lambda: [inbox.send(recipient("r"), message) for _ in range(20)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(read_inbox(tmp_path, "r")) == 160


@pytest.mark.parametrize("rid", ["../escape", "a/b", "", ".hidden"])
def test_inbox_rejects_unsafe_recipient_ids(tmp_path: Path, rid: str) -> None:
    with pytest.raises(PermanentPushError, match="cannot name an inbox file"):
        InboxProvider(tmp_path).send(recipient(rid), Message("t", "b"))


# --- webhook against a real HTTP server ----------------------------------------------------------

SECRET = b"s3cret"


@dataclass
class WebhookServer:
    url: str
    statuses: list[int]  # answered in order; 200 once exhausted
    delay: float = 0.0
    received: list[dict[str, object]] = field(default_factory=list)
    bad_signatures: int = 0


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state = WebhookServer(url="", statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not verify_signature(SECRET, body, self.headers["X-Signature"]):
                state.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            assert self.headers["X-Timestamp"].isdigit()
            time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 200
            if status == 200:
                state.received.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def webhook_recipient(url: str, rid: str = "w1") -> Recipient:
    return Recipient(rid, "webhook", address=url, locale="ja", variables=VARS)


def test_webhook_500_then_200_is_delivered_after_a_retry(webhook_server: WebhookServer) -> None:
    webhook_server.statuses = [500]
    sleeps: list[float] = []
    sender = PushSender({"webhook": WebhookProvider(SECRET)}, sleep=sleeps.append)
    [receipt] = sender.send(VIP_ARRIVED, [webhook_recipient(webhook_server.url)])
    assert (receipt.status, receipt.attempts) == ("delivered", 2)
    assert len(sleeps) == 1
    assert webhook_server.bad_signatures == 0
    [payload] = webhook_server.received
    assert payload["recipient_id"] == "w1"
    assert payload["title"] == "VIP来場: East"
    assert payload["data"] == {"gate": "East"}
    assert isinstance(payload["sent_at"], str)


def test_webhook_410_disables(webhook_server: WebhookServer) -> None:
    webhook_server.statuses = [410]
    disabled: list[Recipient] = []
    sender = PushSender({"webhook": WebhookProvider(SECRET)}, on_disabled=disabled.append)
    [receipt] = sender.send(VIP_ARRIVED, [webhook_recipient(webhook_server.url)])
    assert (receipt.status, receipt.attempts) == ("disabled", 1)
    assert len(disabled) == 1


def test_webhook_other_4xx_is_permanent(webhook_server: WebhookServer) -> None:
    webhook_server.statuses = [400]
    with pytest.raises(PermanentPushError, match="answered 400"):
        WebhookProvider(SECRET).send(webhook_recipient(webhook_server.url), Message("t", "b"))


def test_webhook_wrong_secret_is_rejected_by_the_receiver(webhook_server: WebhookServer) -> None:
    with pytest.raises(PermanentPushError, match="answered 401"):
        WebhookProvider(b"other").send(webhook_recipient(webhook_server.url), Message("t", "b"))
    assert webhook_server.bad_signatures == 1


def test_webhook_slow_server_is_transient(webhook_server: WebhookServer) -> None:
    webhook_server.delay = 1.0
    with pytest.raises(TransientPushError):
        WebhookProvider(SECRET, timeout=0.2).send(webhook_recipient(webhook_server.url), Message("t", "b"))


def test_webhook_refused_connection_is_transient() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientPushError, match="unreachable"):
        WebhookProvider(SECRET).send(webhook_recipient(f"http://127.0.0.1:{port}/"), Message("t", "b"))


def test_webhook_rejects_non_http_addresses() -> None:
    with pytest.raises(PermanentPushError, match="http"):
        WebhookProvider(SECRET).send(webhook_recipient("file:///etc/passwd"), Message("t", "b"))


def test_verify_signature() -> None:
    body = b'{"a": 1}'
    header = mobile_push.sign(SECRET, body)
    assert header.startswith("sha256=")
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature(b"other", body, header)
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, header.removeprefix("sha256="))


# --- independence --------------------------------------------------------------------------------


def test_package_never_imports_eventface() -> None:
    package = Path(mobile_push.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] in {"eventface", "face_engine"} for n in names), path
    code = "import sys, mobile_push; sys.exit('eventface' in sys.modules or 'boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

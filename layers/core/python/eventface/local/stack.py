"""The local stack in one process: moto, both Chalice apps, the event pump (``make up``).

:func:`running_stack` starts, in order:

1. moto's ``ThreadedMotoServer`` on 127.0.0.1 (a free port), with the requests AWS makes atomic
   serialised (:mod:`eventface.local.moto_patches`), and the environment every client reads:
   ``AWS_ENDPOINT_URL``, fake credentials and region, ``AWS_MAX_ATTEMPTS=1`` (an unimplemented
   moto action answers 500 at once instead of being retried) - set before any client exists;
2. the tables, gallery bucket and queues (:mod:`eventface.local.resources`), a Cognito user pool
   with the demo tenant's users (one per authority, each in the Cognito group of its authority,
   plus ``owner`` with all; fresh passwords), created as the platform creates users (the Cognito
   user and its tenant membership record, :func:`eventface.services.memberships.add_user`), and the
   ``EVENTFACE_*`` settings pointing at them;
3. the edge and admin Chalice apps, each served in-process by Chalice's local server (what
   ``chalice local --no-autoreload`` runs: autoreload would restart on every file change) on its own
   loopback port and thread, stage ``local``;
4. the event pump (:mod:`eventface.local.pump`) for the queues that have a consumer (push_dispatch
   on notifications, vip_enrich on sightings), the streams that feed one (the outbox relay,
   which moves jobs onto their queues) and the schedules (the gallery erasure sweep,
   ``gallery_compaction``, every ``EVENTFACE_GALLERY_SWEEP_MINUTES``);
5. a loopback CRM test server with sample profiles (:mod:`eventface.local.crm_server`; its API key
   in Secrets Manager as the demo tenant's secret ``eventface/tenants/demo/crm-api-key``), a
   loopback push webhook receiver (its HMAC key the platform's secret
   ``eventface/platform/push-webhook-key``), SNS platform applications for APNs and FCM on moto,
   and a push inbox directory (the ``inbox`` provider: one file of pushes per recipient). The egress
   allow-list (``EVENTFACE_EGRESS_ALLOW``) names exactly those two loopback servers: any other
   loopback port (moto's, say) is refused to a venue's CRM or a webhook, as everywhere.

On exit everything stops and the process environment is restored, so tests can start the stack
after other fixtures and leave no trace. The runtime code does not know it runs here: only the
environment differs (DESIGN: "the environment decides").
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from eventface import aws
from eventface.domain.access import Authority
from eventface.local.apps import FUNCTIONS_DIR
from eventface.local.cognito import UserPool, create_user_pool
from eventface.local.crm_server import SAMPLE_PROFILES, CrmTestServer
from eventface.local.moto_patches import patch_moto
from eventface.local.pump import (
    CONSUMERS,
    SCHEDULED_CONSUMERS,
    STREAM_CONSUMERS,
    EventPump,
    Handler,
    load_handler,
)
from mobile_push import create_platform_application

HOST: Final = "127.0.0.1"
STAGE: Final = "local"
TENANT_ID: Final = "demo"
#: The demo user who holds every authority.
OWNER: Final = "owner"
#: Who the membership records of the stack's users name as their grantor.
GRANTOR: Final = "local-stack"
TABLE_PREFIX: Final = "eventface-local"
#: The loopback CRM's API key, kept in the local Secrets Manager like a venue's real one.
CRM_AUTH_VALUE: Final = "Bearer local-crm-key"
CRM_SECRET_NAME: Final = f"eventface/tenants/{TENANT_ID}/crm-api-key"
#: The push webhook receiver's HMAC key: a platform secret (no tenant may name it).
PUSH_WEBHOOK_KEY: Final = "local-push-webhook-key"
PUSH_WEBHOOK_SECRET_NAME: Final = "eventface/platform/push-webhook-key"
#: The platform secret that signs pagination cursors (a fresh random value per stack).
CURSOR_SECRET_NAME: Final = "eventface/platform/cursor-key"
#: The repository root (layers/core/python/eventface/local/stack.py -> five levels up).
EDGE_APP: Final = "edge_api"
ADMIN_APP: Final = "admin_api"

#: Fake credentials and a region: no developer profile or real credentials are ever picked up;
#: an unimplemented moto action answers 500, which botocore would retry: fail fast instead.
FAKE_AWS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
AWS_ENVIRONMENT: Final = {
    **FAKE_AWS,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "eventface-local",
}
#: Quiet mode (demo, tests): no per-request lines, no metrics lines, warnings only.
QUIET_ENVIRONMENT: Final = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
_import_lock = threading.Lock()


class StackError(RuntimeError):
    """The local stack cannot start; the message says what to do."""


@dataclass(frozen=True, slots=True)
class LocalStack:
    """Where the running stack answers, and its credentials."""

    edge_url: str
    admin_url: str
    user_pool: UserPool
    users: dict[str, str]  # username -> password, one user per authority and an owner with all
    queue_url: str
    dlq_url: str
    sighting_queue_url: str
    sighting_dlq_url: str
    inbox_dir: Path  # the inbox push provider's files: one JSON-lines file per recipient
    crm: CrmTestServer  # the loopback CRM with sample profiles (fault injection for the demo)
    crm_secret_arn: str  # its API key in Secrets Manager, for a venue's CRM connector
    crm_secret_id: str  # the same secret's name (what a venue's crm.secret_id names)
    push_webhook: CrmTestServer  # receives webhook pushes (POST <url>/webhooks/sightings, signed)
    aws_endpoint: str
    tenant_id: str
    gallery_bucket: str
    table_prefix: str

    def add_user(self, tenant_id: str, username: str, authorities: Iterable[Authority] = ()) -> str:
        """Create a user of ``tenant_id`` as the platform does (the Cognito user and its membership
        record), in the groups of ``authorities``; its fresh password."""
        return _add_user(self.user_pool, self.table_prefix, tenant_id, username, authorities)


def _clear_caches() -> None:
    """Forget settings, services and clients snapshotted from another environment."""
    from eventface import bootstrap, settings
    from eventface.adapters import dynamo_models
    from eventface.consumers import outbox_relay

    settings.get_settings.cache_clear()
    outbox_relay.default_sender.cache_clear()
    bootstrap.services.cache_clear()
    aws.client.cache_clear()
    for model in dynamo_models.MODELS.values():
        model._connection = None


@contextlib.contextmanager
def _restored_environ() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _clear_caches()


@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # verbose=False does not silence werkzeug's per-request lines.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patch_moto()
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto's backends live in this process, not in the server: a stack started after another
        # in the same process (tests do) would inherit its tables, counters and secrets. Start empty.
        urllib.request.urlopen(
            urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10
        ).close()
        yield url
    finally:
        server.stop()


def _local_handler(handler_cls: type, quiet: bool) -> type:
    class LocalHandler(handler_cls):  # type: ignore[misc]
        # The answer goes out in several small writes (status line, headers, body): with Nagle's
        # algorithm each waits for the client's delayed ACK, 40 ms per request on loopback.
        disable_nagle_algorithm = True

        def __getattr__(self, name: str) -> Any:
            # http.server answers a method it has no do_<METHOD> for (TRACE, QUERY, ...) with a 501
            # HTML page; API Gateway routes every method, so the app answers it (405 with Allow).
            if name.startswith("do_"):
                return self._generic_handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

    return LocalHandler


def _load_app_server(project_dir: Path, port: int, quiet: bool) -> Any:
    """Chalice's local server for the app in ``project_dir`` (what ``chalice local`` builds)."""
    from chalice.cli import create_local_server
    from chalice.cli.factory import CLIFactory
    from chalice.local import ChaliceRequestHandler

    if not (project_dir / "app.py").is_file() or not (project_dir / ".chalice" / "config.json").is_file():
        raise StackError(f"{project_dir} is not a Chalice project (app.py and .chalice/config.json)")
    # Every Chalice project's module is called "app": load one at a time, and forget it (and any
    # module of its folder) afterwards so the next project imports its own.
    with _import_lock:
        sys.modules.pop("app", None)
        try:
            # environ=os.environ: config.json's variables go to the process, as with `chalice local`.
            factory = CLIFactory(project_dir=str(project_dir), environ=os.environ)
            server = create_local_server(factory, HOST, port, STAGE)
        finally:
            sys.modules.pop("app", None)
            for name, module in list(sys.modules.items()):
                file = getattr(module, "__file__", None) or ""
                if file.startswith(str(project_dir) + os.sep):
                    del sys.modules[name]
            with contextlib.suppress(ValueError):
                sys.path.remove(str(project_dir))
    wrapped = server.server.RequestHandlerClass
    server.server.RequestHandlerClass = functools.partial(
        _local_handler(ChaliceRequestHandler, quiet), *wrapped.args, **wrapped.keywords
    )
    return server


@contextlib.contextmanager
def _serving(server: Any, name: str) -> Iterator[str]:
    http = server.server
    thread = threading.Thread(target=http.serve_forever, name=f"chalice-{name}", daemon=True)
    thread.start()
    try:
        host, port = http.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=10)


def _resolve_consumers(
    consumers: Mapping[str, str | Handler], sources: Mapping[str, str], kind: str
) -> dict[str, Handler]:
    """Logical source name -> consumer, as source URL or ARN -> handler."""
    resolved: dict[str, Handler] = {}
    for logical, handler in consumers.items():
        if logical not in sources:
            raise StackError(
                f"consumer registered for unknown {kind} {logical!r}: choose from {list(sources)}"
            )
        resolved[sources[logical]] = load_handler(handler) if isinstance(handler, str) else handler
    return resolved


@contextlib.contextmanager
def running_stack(
    *,
    edge_port: int = 0,
    admin_port: int = 0,
    consumers: Mapping[str, str | Handler] | None = None,
    functions_dir: Path = FUNCTIONS_DIR,
    quiet: bool = True,
) -> Iterator[LocalStack]:
    """Run the local stack for the duration of the ``with`` block.

    Parameters
    ----------
    edge_port, admin_port
        Loopback ports of the two apps; 0 picks free ones.
    consumers
        Logical queue name -> consumer (``"module:function"`` or a callable); defaults to
        :data:`eventface.local.pump.CONSUMERS`.
    functions_dir
        Where the Chalice projects ``edge_api`` and ``admin_api`` are.
    quiet
        Silence per-request lines and Powertools metrics (the demo and the tests).

    Yields
    ------
    LocalStack
        The apps' URLs, the user pool and the demo users' passwords, the notification queue.
    """
    from eventface.local.resources import create_resources

    with contextlib.ExitStack() as stack:
        stack.enter_context(_restored_environ())
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        os.environ.update(AWS_ENVIRONMENT)
        if quiet:
            os.environ.update(QUIET_ENVIRONMENT)
        _clear_caches()
        endpoint = stack.enter_context(_moto_server())
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        _clear_caches()
        resources = create_resources(TABLE_PREFIX)
        pool = create_user_pool(TABLE_PREFIX)
        users = _demo_users(pool)
        spill_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="eventface-spill-"))
        inbox_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="eventface-inbox-"))
        crm = stack.enter_context(CrmTestServer(SAMPLE_PROFILES, auth_value=CRM_AUTH_VALUE))
        secret_arn = _secret(CRM_SECRET_NAME, CRM_AUTH_VALUE)
        push_webhook = stack.enter_context(CrmTestServer({}, webhook_secret=PUSH_WEBHOOK_KEY.encode()))
        _secret(PUSH_WEBHOOK_SECRET_NAME, PUSH_WEBHOOK_KEY)
        sns = aws.client("sns")
        environment = {
            "EVENTFACE_STAGE": STAGE,
            "EVENTFACE_TABLE_PREFIX": resources.table_prefix,
            "EVENTFACE_GALLERY_BUCKET": resources.gallery_bucket,
            "EVENTFACE_NOTIFICATION_QUEUE_URL": resources.queue_urls["notifications"],
            "EVENTFACE_SIGHTING_QUEUE_URL": resources.queue_urls["sightings"],
            "EVENTFACE_SPILL_DIR": spill_dir,
            "EVENTFACE_PUSH_INBOX_DIR": inbox_dir,
            "EVENTFACE_PUSH_WEBHOOK_SECRET_ID": PUSH_WEBHOOK_SECRET_NAME,
            "EVENTFACE_EGRESS_ALLOW": f"{crm.egress_allow_entry},{push_webhook.egress_allow_entry}",
            "EVENTFACE_SNS_APNS_APPLICATION_ARN": create_platform_application(
                sns, f"{TABLE_PREFIX}-apns", "APNS"
            ),
            "EVENTFACE_SNS_FCM_APPLICATION_ARN": create_platform_application(
                sns, f"{TABLE_PREFIX}-fcm", "GCM"
            ),
            "EVENTFACE_OIDC_JWKS_URL": pool.jwks_url,
            "EVENTFACE_OIDC_ISSUER": pool.issuer,
            "EVENTFACE_OIDC_CLIENT_ID": pool.client_id,
            "EVENTFACE_USER_POOL_ID": pool.pool_id,
            "EVENTFACE_CURSOR_SECRET_ID": _cursor_secret(),
        }
        os.environ.update(environment)
        servers = {
            name: _load_app_server(functions_dir / name, port, quiet)
            for name, port in ((EDGE_APP, edge_port), (ADMIN_APP, admin_port))
        }
        # A project's config.json may name its own resources: the stack's win.
        os.environ.update(AWS_ENVIRONMENT)
        os.environ.update(environment)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        _clear_caches()
        edge_url = stack.enter_context(_serving(servers[EDGE_APP], EDGE_APP))
        admin_url = stack.enter_context(_serving(servers[ADMIN_APP], ADMIN_APP))
        pump = EventPump(
            _resolve_consumers(CONSUMERS if consumers is None else consumers, resources.queue_urls, "queue"),
            stream_consumers=_resolve_consumers(STREAM_CONSUMERS, resources.stream_arns, "stream"),
            schedules=_schedules(),
        )
        pump.start()
        stack.callback(pump.stop)
        yield LocalStack(
            edge_url=edge_url,
            admin_url=admin_url,
            user_pool=pool,
            users=users,
            queue_url=resources.queue_urls["notifications"],
            dlq_url=resources.dlq_urls["notifications"],
            sighting_queue_url=resources.queue_urls["sightings"],
            sighting_dlq_url=resources.dlq_urls["sightings"],
            inbox_dir=Path(inbox_dir),
            crm=crm,
            crm_secret_arn=secret_arn,
            crm_secret_id=CRM_SECRET_NAME,
            push_webhook=push_webhook,
            aws_endpoint=endpoint,
            tenant_id=TENANT_ID,
            gallery_bucket=resources.gallery_bucket,
            table_prefix=resources.table_prefix,
        )


def _schedules() -> dict[str, tuple[float, Handler]]:
    """The scheduled consumers with their periods (from the stack's settings)."""
    from eventface.settings import get_settings

    period = get_settings().gallery_sweep_minutes * 60.0
    return {name: (period, load_handler(handler)) for name, handler in SCHEDULED_CONSUMERS.items()}


def _secret(name: str, value: str) -> str:
    """A secret's ARN in Secrets Manager, set to ``value`` (kept from an earlier stack of this process)."""
    secrets_manager = aws.client("secretsmanager")
    try:
        return str(secrets_manager.create_secret(Name=name, SecretString=value)["ARN"])
    except secrets_manager.exceptions.ResourceExistsException:
        secrets_manager.put_secret_value(SecretId=name, SecretString=value)
        return str(secrets_manager.describe_secret(SecretId=name)["ARN"])


def _cursor_secret() -> str:
    """The ARN of the cursor-signing secret, with a new random value (cursors of an earlier
    stack of this process are then refused, as after a key rotation)."""
    return _secret(CURSOR_SECRET_NAME, secrets.token_urlsafe(32))


def _demo_users(pool: UserPool) -> dict[str, str]:
    """The demo tenant's users, each with a fresh password: one per authority (named after it,
    in its Cognito group) and ``owner`` with every authority."""
    users: dict[str, str] = {}
    for username, authorities in [
        *((a.value.replace("_", "-"), (a,)) for a in Authority),
        (OWNER, tuple(Authority)),
    ]:
        users[username] = _add_user(pool, TABLE_PREFIX, TENANT_ID, username, authorities)
    return users


def _add_user(
    pool: UserPool, table_prefix: str, tenant_id: str, username: str, authorities: Iterable[Authority]
) -> str:
    """A user created by the platform's own use case (Cognito user + membership); its password."""
    from eventface.bootstrap import bootstrap
    from eventface.services.memberships import NewUser
    from eventface.settings import from_environ

    platform = bootstrap(
        from_environ(
            {
                "EVENTFACE_TABLE_PREFIX": table_prefix,
                "EVENTFACE_USER_POOL_ID": pool.pool_id,
                "EVENTFACE_MEMBERSHIP_CACHE_SECONDS": "0",
            }
        )
    )
    password = f"Ef!{secrets.token_urlsafe(12)}9z"
    platform.add_user(
        NewUser(tenant_id, username, frozenset(authorities), password=password, granted_by=GRANTOR)
    )
    return password


def _wait_for_signal(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Callable[..., Any] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handle)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    """``make up``: run the stack until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m eventface.local", description="Run the local stack.")
    parser.add_argument("--edge-port", type=int, default=0, help="edge API port (default: a free one)")
    parser.add_argument("--admin-port", type=int, default=0, help="admin API port (default: a free one)")
    parser.add_argument("--quiet", action="store_true", help="no per-request lines or metrics")
    args = parser.parse_args(argv)
    try:
        with running_stack(edge_port=args.edge_port, admin_port=args.admin_port, quiet=args.quiet) as local:
            print(
                "eventface local stack is up (Ctrl-C to stop)\n"
                f"  edge API   {local.edge_url}   (header x-device-key)\n"
                f"  admin API  {local.admin_url}   (Authorization: Bearer <ID token>, or x-api-key)\n"
                f"  tenant     {local.tenant_id}   users (password):\n"
                + "".join(f"    {name:<13} {password}\n" for name, password in local.users.items())
                + f"  sign in    Cognito pool {local.user_pool.pool_id}, client {local.user_pool.client_id}\n"
                "             (InitiateAuth USER_PASSWORD_AUTH at the moto endpoint; use the IdToken)\n"
                f"  AWS (moto) {local.aws_endpoint}\n"
                f"  queues     {local.queue_url}\n"
                f"             {local.sighting_queue_url}\n"
                f"  DLQs       {local.dlq_url}\n"
                f"             {local.sighting_dlq_url}\n"
                f"  CRM        {local.crm.profile_url_template}   (secret {local.crm_secret_id})\n"
                f"  webhooks   {local.push_webhook.webhook_url}   (push receiver; egress allow-list:"
                " these two only)\n"
                f"  push inbox {local.inbox_dir}\n"
                f"  bucket     {local.gallery_bucket}   tables {local.table_prefix}-*\n"
                f"  e.g. curl -s {local.admin_url}/v1/health",
                flush=True,
            )
            _wait_for_signal(threading.Event())
            print("stopping...", flush=True)
    except (StackError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("stopped", flush=True)
    return 0

"""The ``eventface`` command: model preparation, benchmarks, and a tenant's users (operators)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventface.bootstrap import Services


def _models_prepare(args: argparse.Namespace) -> int:
    from face_engine import models

    for spec in models.MODELS:
        path = models.prepare(spec, args.dir)
        print(f"{spec.model_id}: {path}")
    return 0


def _bench_accuracy(args: argparse.Namespace) -> int:
    from eventface.bench import accuracy

    return accuracy.main(args)


def _bench_latency(args: argparse.Namespace) -> int:
    from eventface.bench import latency

    return latency.main(args)


def _bench_search(args: argparse.Namespace) -> int:
    from eventface.bench import search

    return search.main(args)


def _bench_scan(args: argparse.Namespace) -> int:
    from eventface.bench import scan

    return scan.main(args)


def _bench_vip(args: argparse.Namespace) -> int:
    from eventface.bench import vip

    return vip.main(args)


def _bench_calibrate(args: argparse.Namespace) -> int:
    from eventface.bench import calibrate

    return calibrate.main(args)


def _bench_fit_mask(args: argparse.Namespace) -> int:
    from eventface.bench import accuracy

    return accuracy.fit_mask_main(args)


def _platform() -> Services:
    """The services of the deployment the environment names (``EVENTFACE_TABLE_PREFIX``,
    ``EVENTFACE_USER_POOL_ID``, AWS credentials), with no membership cache."""
    from eventface.bootstrap import bootstrap
    from eventface.settings import MEMBERSHIP_CACHE_SECONDS, Settings, from_environ

    return bootstrap(Settings({**from_environ().environ, MEMBERSHIP_CACHE_SECONDS: "0"}))


def _users(command: Callable[[Services, argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    """Run a ``users`` command; a refusal (domain or settings error) is a message and exit code 2."""
    from eventface.domain.errors import EventfaceError
    from eventface.settings import SettingsError

    def run(args: argparse.Namespace) -> int:
        try:
            print(command(_platform(), args))
        except (EventfaceError, SettingsError) as exc:
            print(f"eventface: {exc}", file=sys.stderr)
            return 2
        return 0

    return run


def _users_add(platform: Services, args: argparse.Namespace) -> str:
    from eventface.domain.access import Authority
    from eventface.services.memberships import NewUser

    authorities = frozenset(Authority(a) for a in args.authority)
    membership = platform.add_user(
        NewUser(args.tenant, args.username, authorities, email=args.email, granted_by=args.by)
    )
    granted = ", ".join(sorted(a.value for a in authorities)) or "none"
    return (
        f"created user {membership.username} (sub {membership.user_sub}) in tenant "
        f"{membership.tenant_id} with authorities: {granted}; Cognito e-mailed the invitation "
        f"to {args.email}"
    )


def _users_grant(platform: Services, args: argparse.Namespace) -> str:
    membership = platform.grant_membership(args.tenant, args.username, args.by)
    return f"user {membership.username} (sub {membership.user_sub}) is a member of tenant {args.tenant}"


def _users_revoke(platform: Services, args: argparse.Namespace) -> str:
    removed = platform.revoke_membership(args.tenant, args.username)
    state = "revoked" if removed else "was not a member; nothing to revoke"
    return f"user {args.username} in tenant {args.tenant}: {state} (signed out everywhere)"


def _users_show(platform: Services, args: argparse.Namespace) -> str:
    found = platform.memberships_of(args.username)
    if not found:
        return f"user {args.username} is a member of no tenant"
    return "\n".join(
        f"{m.tenant_id}\t{m.username}\t{m.user_sub}\tgranted {m.granted_at.isoformat()} by "
        f"{m.granted_by or '-'}"
        for m in found
    )


def _add_users_commands(commands: Any) -> None:
    from eventface.domain.access import Authority

    users = commands.add_parser(
        "users",
        help="a tenant's users: Cognito user and membership record (needs EVENTFACE_TABLE_PREFIX, "
        "EVENTFACE_USER_POOL_ID and AWS credentials)",
    ).add_subparsers(dest="action", required=True)

    def command(name: str, help_text: str, func: Callable[[Services, argparse.Namespace], str]) -> Any:
        parser = users.add_parser(name, help=help_text)
        if name != "show":
            parser.add_argument("--tenant", required=True, help="the tenant id")
        parser.add_argument("--username", required=True, help="the user's sign-in name")
        if name in ("add", "grant"):
            parser.add_argument("--by", default="eventface-cli", help="who grants (kept in the record)")
        parser.set_defaults(func=_users(func))
        return parser

    add = command("add", "create a Cognito user of the tenant and record the membership", _users_add)
    add.add_argument("--email", required=True, help="where Cognito sends the invitation")
    add.add_argument(
        "--authority",
        action="append",
        default=[],
        choices=[a.value for a in Authority],
        help="an authority (Cognito group) to grant; repeat for more",
    )
    command("grant", "record the membership of an existing user created for the tenant", _users_grant)
    command("revoke", "remove a user's membership of the tenant and sign them out", _users_revoke)
    command("show", "the tenants a user is a member of", _users_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventface", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    models_cmd = commands.add_parser("models", help="model files").add_subparsers(
        dest="action", required=True
    )
    prepare = models_cmd.add_parser("prepare", help="verify, prepare and cache the YuNet and SFace models")
    prepare.add_argument("--dir", type=Path, default=None, help="models directory (default: per-user cache)")
    prepare.set_defaults(func=_models_prepare)

    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(dest="action", required=True)
    acc = bench.add_parser("accuracy", help="engine vs OpenCV's pipeline on a labelled face folder")
    acc.add_argument("--data", type=Path, required=True, help="folder with labels.csv (file,identity,masked)")
    acc.add_argument("--models-dir", type=Path, default=None)
    acc.set_defaults(func=_bench_accuracy)

    lat = bench.add_parser("latency", help="per-stage latency of the engine vs OpenCV's pipeline")
    lat.add_argument("--data", type=Path, default=None, help="face folder to take the test photos from")
    lat.add_argument("--runs", type=int, default=200, help="timed runs per cell, after warm-up")
    lat.add_argument("--models-dir", type=Path, default=None)
    lat.set_defaults(func=_bench_latency)

    srch = bench.add_parser("search", help="gallery index vs numpy and faiss, and the bandwidth floor")
    srch.add_argument("--n", type=int, default=1_000_000, help="gallery size (templates)")
    srch.add_argument("--load", action="store_true", help="also time loading 1M templates from S3 (moto)")
    srch.set_defaults(func=_bench_search)

    scn = bench.add_parser("scan", help="a checkpoint scan end to end through the edge API on moto")
    scn.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000], help="distractor templates")
    scn.add_argument("--runs", type=int, default=100, help="timed scans per gallery size")
    scn.set_defaults(func=_bench_scan)

    vip = bench.add_parser(
        "vip", help="VIP sighting to staff push on the local stack, CRM healthy and timing out"
    )
    vip.add_argument("--n", type=int, default=30, help="timed sightings per CRM condition, after warm-up")
    vip.add_argument("--deadline-ms", type=int, default=500, help="the venue's CRM deadline in ms (50-10000)")
    vip.set_defaults(func=_bench_vip)

    cal = bench.add_parser("calibrate", help="fit the impostor tail that sets open-set thresholds")
    cal.add_argument("--data", type=Path, required=True)
    cal.add_argument("--models-dir", type=Path, default=None)
    cal.set_defaults(func=_bench_calibrate)

    fit = bench.add_parser("fit-mask", help="fit the mask classifier and print its coefficients")
    fit.add_argument("--data", type=Path, required=True)
    fit.add_argument("--models-dir", type=Path, default=None)
    fit.set_defaults(func=_bench_fit_mask)

    _add_users_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"eventface: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

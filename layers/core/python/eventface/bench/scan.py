"""``eventface bench scan``: a checkpoint scan end to end, in process, against moto.

The edge API's Chalice app is driven through Chalice's test client with the real adapters
(DynamoDB, S3 gallery, SQS on moto in-process, the real face engine). The campaign gallery holds
``--n`` synthetic distractor templates plus the real registrations; probes are real camera-like
photos (the demo cast from the insightface wheel, or ``PHOTOS=DIR``). Beside the whole scan, the
same run times the two stages the platform cannot avoid: the engine's photo-to-probe and the
gallery search (``identify`` as the scan calls it: the revalidating conditional GET of the
manifest plus the index search), so ``ratio`` = scan p50 / (engine p50 + search p50) says what the
platform adds. ``ratio_index_only`` divides by the index search alone instead (in a scan the GET
overlaps the engine, so it is the stricter figure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from eventface.bench.synthetic import synthetic_shard

RUNS = 100
CHECKPOINTS = 60
WARMUP = 5
TENANT = "default"
CAMPAIGN = "bench-rally"


@contextmanager
def _moto_environment() -> Iterator[None]:
    from moto import mock_aws

    from eventface.local.moto_patches import patch_moto

    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "eventface-bench",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    saved = {name: os.environ.get(name) for name in (*fake, "AWS_ENDPOINT_URL")}
    os.environ.update(fake)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    patch_moto()  # the local stack's moto: transactions cost no more as the tables grow
    try:
        with mock_aws():
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ms(samples: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(samples, 50)), 2), round(float(np.percentile(samples, 95)), 2)


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000.0


def run(n: int, photos_dir: Path | None, runs: int = RUNS) -> dict[str, Any]:
    """One gallery size: build the world on moto, then time scans and their two core stages."""
    from chalice.test import Client

    from eventface import aws, bootstrap
    from eventface.adapters.gallery_cache import CachedGallery
    from eventface.adapters.s3_gallery import S3GalleryStore
    from eventface.demo.photos import load_cast
    from eventface.domain.errors import FaceQualityError
    from eventface.domain.model import Checkpoint
    from eventface.local.apps import EDGE_PROJECT, load_app
    from eventface.local.resources import create_resources
    from eventface.services.participants import Registration
    from eventface.settings import Settings

    cast = load_cast(photos_dir=photos_dir)
    with _moto_environment(), tempfile.TemporaryDirectory(prefix="eventface-scan-") as spill:
        aws.client.cache_clear()
        prefix = f"b{uuid.uuid4().hex[:10]}"
        resources = create_resources(prefix)
        settings = Settings(
            {
                "EVENTFACE_TABLE_PREFIX": prefix,
                "EVENTFACE_GALLERY_BUCKET": resources.gallery_bucket,
                "EVENTFACE_NOTIFICATION_QUEUE_URL": next(iter(resources.queue_urls.values())),
                "EVENTFACE_SPILL_DIR": spill,
                "EVENTFACE_STAGE": "local",
            }
        )
        services = bootstrap.bootstrap(settings)
        now = datetime.now(UTC)
        # Scan i is person i % P at checkpoint i // P: every recognised scan writes a new stamp (the
        # path of a visitor at a new checkpoint), not the cheaper "already stamped" answer.
        checkpoints = tuple(Checkpoint(f"cp{i}", f"Checkpoint {i}") for i in range(CHECKPOINTS))
        campaign = services.create_campaign(
            TENANT,
            CAMPAIGN,
            "Bench rally",
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=1),
            checkpoints=checkpoints,
            stamps_required=len(checkpoints),
            cooldown_seconds=0,
        )
        services.publish_campaign(TENANT, CAMPAIGN)
        # The distractors go in first as one base object, as a bulk import would write them.
        S3GalleryStore(resources.gallery_bucket).append(
            campaign.gallery_id, synthetic_shard(n, "sface-2021dec", seed=3), kind="base"
        )
        registered = []
        for person in cast.people:
            try:
                services.register_participant(
                    Registration(TENANT, CAMPAIGN, person.registration, person.name, consent=True)
                )
                registered.append(person)
            except FaceQualityError:
                continue
        keys = [
            services.activate_device(
                services.register_device(TENANT, CAMPAIGN, cp.checkpoint_id, cp.name).activation_code
            ).key
            for cp in checkpoints
        ]
        shots = [(shot, person.name) for person in registered for shot in person.camera_shots]
        people = len(registered)

        edge = load_app(EDGE_PROJECT, "eventface_bench_edge_app")
        original = bootstrap.services
        bootstrap.services = lambda: services  # type: ignore[assignment]
        try:
            client = Client(edge.app, stage_name="local", project_dir=str(EDGE_PROJECT))
            scan_ms: list[float] = []
            recognised = new_stamps = 0
            for i in range(WARMUP + runs):
                person = registered[i % people]
                photo, name = person.camera_shots[(i // people) % len(person.camera_shots)], person.name
                cp = (i // people) % len(checkpoints)
                start = time.perf_counter()
                response = client.http.post(
                    f"/v1/checkpoints/{checkpoints[cp].checkpoint_id}/scans",
                    headers={"x-device-key": keys[cp], "content-type": "image/jpeg"},
                    body=photo,
                )
                elapsed = (time.perf_counter() - start) * 1000.0
                if response.status_code != 200:
                    raise RuntimeError(f"scan failed with {response.status_code}: {response.body!r}")
                if i >= WARMUP:
                    scan_ms.append(elapsed)
                    recognised += int(response.json_body.get("nickname") == name)
                    new_stamps += int(bool(response.json_body.get("new_stamp")))
        finally:
            bootstrap.services = original

        faces, gallery = services.deps.faces, services.deps.gallery
        probes = [faces.probe(photo) for photo, _ in shots]
        gallery_id = campaign.gallery_id
        engine_ms = [_timed(partial(faces.probe, photo)) for photo, _ in shots * 8][:runs]
        search_ms = [_timed(partial(gallery.identify, gallery_id, probe, 1e-3)) for probe in probes * 8][
            :runs
        ]
        # The index alone (no revalidating GET of the manifest), for the stricter ratio.
        index = CachedGallery(S3GalleryStore(resources.gallery_bucket), gallery_id).index()
        vectors = [np.asarray(probe.vector, dtype=np.float32) for probe in probes]
        index_ms = [_timed(partial(index.identify, v, fmr_per_scan=1e-3)) for v in vectors * 8][:runs]
    scan_p50, scan_p95 = _ms(scan_ms)
    engine_p50, _ = _ms(engine_ms)
    search_p50, _ = _ms(search_ms)
    index_p50, _ = _ms(index_ms)
    return {
        "gallery_size": n + len(registered),
        "scan_ms_p50": scan_p50,
        "scan_ms_p95": scan_p95,
        "engine_ms_p50": engine_p50,
        "search_ms_p50": search_p50,
        "platform_ms_p50": round(scan_p50 - engine_p50 - search_p50, 2),
        "ratio": round(scan_p50 / (engine_p50 + search_p50), 3),
        "index_ms_p50": index_p50,
        "ratio_index_only": round(scan_p50 / (engine_p50 + index_p50), 3),
        "share_engine": round(engine_p50 / scan_p50, 3),
        "share_search": round(search_p50 / scan_p50, 3),
        "recognised_share": round(recognised / runs, 3),
        "new_stamp_share": round(new_stamps / runs, 3),
        "runs": runs,
    }


def main(args: argparse.Namespace) -> int:
    photos = Path(os.environ["PHOTOS"]) if os.environ.get("PHOTOS") else None
    results = [run(n, photos, args.runs) for n in args.n]
    print(
        f"{'gallery':>10} {'scan p50':>9} {'p95':>7} {'engine':>7} {'search':>7} {'platform':>9} {'ratio':>6}"
        f" {'index':>6} {'ratio(index)':>12}"
    )
    for r in results:
        print(
            f"{r['gallery_size']:>10,} {r['scan_ms_p50']:>9} {r['scan_ms_p95']:>7} {r['engine_ms_p50']:>7} "
            f"{r['search_ms_p50']:>7} {r['platform_ms_p50']:>9} {r['ratio']:>6} {r['index_ms_p50']:>6} "
            f"{r['ratio_index_only']:>12}"
        )
    last = dict(results[-1])
    last["sizes"] = results
    print(json.dumps(last))
    return 0


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace(n=[10_000, 100_000], runs=RUNS)))

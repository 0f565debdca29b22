"""Settings: typed accessors, defaults, and missing or bad variables named at first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventface.settings import Settings, SettingsError, from_environ


def test_settings_reads_values_and_defaults():
    # given
    settings = from_environ({"EVENTFACE_TABLE_PREFIX": "ef-dev", "EVENTFACE_SPILL_DIR": "/tmp/spill"})
    # then
    assert settings.table_prefix == "ef-dev" and settings.spill_dir == Path("/tmp/spill")
    assert (settings.engine_threads, settings.fmr_per_scan, settings.cooldown_seconds) == (1, 1e-3, 30)
    assert settings.history_ttl_hours == 72 and settings.models_dir is None and settings.stage == "local"


@pytest.mark.parametrize(
    ("attribute", "variable"),
    [
        ("table_prefix", "EVENTFACE_TABLE_PREFIX"),
        ("gallery_bucket", "EVENTFACE_GALLERY_BUCKET"),
        ("notification_queue_url", "EVENTFACE_NOTIFICATION_QUEUE_URL"),
        ("user_pool_id", "EVENTFACE_USER_POOL_ID"),
        ("cursor_secret_id", "EVENTFACE_CURSOR_SECRET_ID"),
    ],
)
def test_settings_missing_variable_fails_at_first_use_with_its_name(attribute, variable):
    # given: building the settings does not fail
    settings = Settings({})
    # when / then
    with pytest.raises(SettingsError, match=variable):
        getattr(settings, attribute)


@pytest.mark.parametrize(
    ("variable", "value", "attribute"),
    [
        ("EVENTFACE_ENGINE_THREADS", "two", "engine_threads"),
        ("EVENTFACE_ENGINE_THREADS", "0", "engine_threads"),
        ("EVENTFACE_FMR_PER_SCAN", "2", "fmr_per_scan"),
        ("EVENTFACE_COOLDOWN_SECONDS", "-1", "cooldown_seconds"),
        ("EVENTFACE_MEMBERSHIP_CACHE_SECONDS", "301", "membership_cache_seconds"),
    ],
)
def test_settings_bad_value_names_the_variable(variable, value, attribute):
    # given
    settings = Settings({variable: value})
    # when / then
    with pytest.raises(SettingsError, match=variable):
        getattr(settings, attribute)


def test_settings_membership_cache_is_a_minute_by_default_and_can_be_turned_off():
    # then
    assert Settings({}).membership_cache_seconds == 60.0
    assert Settings({"EVENTFACE_MEMBERSHIP_CACHE_SECONDS": "0"}).membership_cache_seconds == 0.0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, (5, 3600)),
        ({"EVENTFACE_GALLERY_SWEEP_MINUTES": "1", "EVENTFACE_GALLERY_RETIRED_GRACE_SECONDS": "60"}, (1, 60)),
    ],
)
def test_settings_erasure_sweep_period_and_grace(environ, expected):
    settings = from_environ(environ)
    assert (settings.gallery_sweep_minutes, settings.gallery_retired_grace_seconds) == expected


def test_settings_pixel_caps_default_to_12_mp_at_the_edge_and_24_mp_for_registration():
    # given
    settings = Settings({})
    # then
    assert (settings.edge_max_pixels, settings.registration_max_pixels) == (12_000_000, 24_000_000)


@pytest.mark.parametrize(
    ("variable", "value", "attribute"),
    [
        ("EVENTFACE_GALLERY_SWEEP_MINUTES", "0", "gallery_sweep_minutes"),
        ("EVENTFACE_GALLERY_SWEEP_MINUTES", "61", "gallery_sweep_minutes"),
        ("EVENTFACE_GALLERY_RETIRED_GRACE_SECONDS", "59", "gallery_retired_grace_seconds"),
    ],
)
def test_settings_erasure_sweep_values_out_of_range_name_the_variable(variable, value, attribute):
    with pytest.raises(SettingsError, match=variable):
        getattr(from_environ({variable: value}), attribute)


@pytest.mark.parametrize(
    ("variable", "value", "attribute"),
    [
        ("EVENTFACE_EDGE_MAX_PIXELS", "12MP", "edge_max_pixels"),
        ("EVENTFACE_EDGE_MAX_PIXELS", "100", "edge_max_pixels"),
        ("EVENTFACE_REGISTRATION_MAX_PIXELS", "50000000", "registration_max_pixels"),
    ],
)
def test_settings_pixel_cap_out_of_range_names_the_variable(variable, value, attribute):
    # given
    settings = Settings({variable: value})
    # when / then
    with pytest.raises(SettingsError, match=variable):
        getattr(settings, attribute)

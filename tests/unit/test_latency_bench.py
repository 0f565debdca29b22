"""Pure helpers of ``eventface bench latency``: percentiles, cells, the table, photo placement."""

from __future__ import annotations

import numpy as np
import pytest

from eventface.bench.latency import (
    FACE_FRACTION,
    NEUTRAL_GREY,
    cell_key,
    format_table,
    make_cell,
    percentiles_ms,
    place_face,
    ratio,
)


def test_percentiles_ms_interpolates_and_converts_from_nanoseconds() -> None:
    # given 1..100 ms in nanoseconds
    samples = [ms * 1_000_000 for ms in range(1, 101)]

    # when
    p50, p95 = percentiles_ms(samples)

    # then numpy's linear interpolation: p50 between 50 and 51, p95 at rank 94.05
    assert p50 == pytest.approx(50.5)
    assert p95 == pytest.approx(95.05)


def test_percentiles_ms_refuses_no_samples() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        percentiles_ms([])


def test_make_cell_gives_ratio_of_medians_engine_over_reference() -> None:
    # given an engine twice as fast as the reference
    engine = [10_000_000] * 5
    reference = [20_000_000] * 5

    # when
    cell = make_cell(engine, reference)

    # then
    assert cell == {
        "engine_ms_p50": 10.0,
        "engine_ms_p95": 10.0,
        "reference_ms_p50": 20.0,
        "reference_ms_p95": 20.0,
        "ratio_p50": 0.5,
    }


def test_make_cell_without_reference_stage_leaves_reference_empty() -> None:
    cell = make_cell([3_000_000], None)

    assert cell["engine_ms_p50"] == 3.0
    assert cell["reference_ms_p50"] is None
    assert cell["ratio_p50"] is None


def test_ratio_of_a_zero_denominator_is_none() -> None:
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, 4.0) == 0.25


def test_format_table_shows_every_cell_and_dashes_for_missing_reference() -> None:
    # given one size, one thread setting, a stage with and one without an OpenCV counterpart
    cells = {
        cell_key("640x480", 1, "detect"): make_cell([10_000_000], [20_000_000]),
        cell_key("640x480", 1, "refine"): make_cell([2_000_000], None),
    }

    # when
    table = format_table(cells, ["640x480"], [1])

    # then
    rows = table.splitlines()[2:]
    assert len(rows) == 2
    assert rows[0].split()[-5:] == ["10.00", "10.00", "20.00", "20.00", "0.50"]
    assert rows[1].split()[-5:] == ["2.00", "2.00", "-", "-", "-"]


def test_place_face_scales_the_face_to_a_third_of_the_height_and_centres_it() -> None:
    # given a 100 px white square "face" at (50, 50) on a black 300x200 photo
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[50:150, 50:150] = 255

    # when placed on a 640x480 canvas
    canvas = place_face(image, (50.0, 50.0, 100.0, 100.0), 640, 480)

    # then the square is 160 px tall, centred, and the canvas outside the photo is grey
    assert canvas.shape == (480, 640, 3)
    rows = np.flatnonzero(canvas[:, 320, 0] > 200)
    cols = np.flatnonzero(canvas[240, :, 0] > 200)
    assert rows.size == pytest.approx(480 * FACE_FRACTION, abs=2)
    assert (rows[0] + rows[-1]) / 2 == pytest.approx(240, abs=1.5)
    assert (cols[0] + cols[-1]) / 2 == pytest.approx(320, abs=1.5)
    assert tuple(canvas[0, 0]) == NEUTRAL_GREY

"""Open-set thresholds on synthetic impostor scores whose tail is known exactly."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from face_engine import open_set
from face_engine.errors import ModelMismatchError
from face_engine.open_set import (
    OpenSetThreshold,
    TailModel,
    comparison_rate,
    decide_threshold,
    fit_tail,
    match_threshold,
    tail_check,
)
from face_engine.thresholds import threshold_for

MODEL = "sface-2021dec"
FLOOR = threshold_for(MODEL, 1e-3)

# Tails that start above the 1:1 floor and stay below 1.0 up to 10M templates, so that neither
# clamp hides the solver: (xi, sigma) with a finite endpoint, the exponential limit, a heavy tail.
TAILS = [(-0.1, 0.03), (0.0, 0.02), (0.1, 0.008)]
U, P_U = 0.40, 0.05


def _model(xi: float, sigma: float, *, u: float = U, p_u: float = P_U) -> TailModel:
    return TailModel(MODEL, u, p_u, xi, sigma, 1_000_000, "synthetic")


def _gpd_survival(t: float, xi: float, sigma: float, u: float = U, p_u: float = P_U) -> float:
    """P(score > t) of the synthetic distribution, written out independently of ``p_exceed``."""
    if xi == 0.0:
        return p_u * math.exp(-(t - u) / sigma)
    base = max(1.0 + xi * (t - u) / sigma, 0.0)
    return p_u * math.pow(base, -1.0 / xi)


def _gpd_sample(rng: np.random.Generator, n: int, xi: float, sigma: float) -> np.ndarray:
    """GPD(xi, sigma) excesses by inverse CDF."""
    tail = rng.random(n)  # survival probabilities, uniform on (0, 1)
    if xi == 0.0:
        return -sigma * np.log(tail)
    return sigma / xi * (tail ** (-xi) - 1.0)


def _impostor_sample(rng: np.random.Generator, n: int, xi: float, sigma: float) -> np.ndarray:
    """Scores uniform on (-0.2, U) with mass 1 - P_U, GPD above U with mass P_U."""
    in_tail = rng.random(n) < P_U
    scores = rng.uniform(-0.2, U, n)
    scores[in_tail] = U + _gpd_sample(rng, int(in_tail.sum()), xi, sigma)
    return scores


@pytest.mark.parametrize(("xi", "sigma"), [(-0.2, 0.05), (-0.1, 0.035), (0.0, 0.03), (0.2, 0.04)])
def test_fit_tail_recovers_known_gpd_parameters(xi: float, sigma: float) -> None:
    # given a million draws of a GPD starting at 0 (10,000 of them above the 0.99 quantile)
    scores = _gpd_sample(np.random.default_rng(7), 1_000_000, xi, sigma)
    # when
    model = fit_tail(scores, tail_fraction=0.01, model_id=MODEL, source="synthetic")
    # then: a GPD's excess over a higher start u is GPD with the same xi and scale sigma + xi * u
    assert model.xi == pytest.approx(xi, abs=0.04)
    assert model.sigma == pytest.approx(sigma + xi * model.u, rel=0.05)
    assert model.p_u == pytest.approx(0.01, rel=1e-3)
    assert model.n_impostor == 1_000_000


def test_fit_tail_with_fixed_shape_takes_scale_from_the_mean_excess() -> None:
    # given exponential excesses with scale 0.03 (mean excess 0.03 over any start)
    scores = _gpd_sample(np.random.default_rng(3), 500_000, 0.0, 0.03)
    # when the shape is fixed to a heavier tail than the data's
    model = fit_tail(scores, model_id=MODEL, source="synthetic", shape=0.05)
    # then: sigma = mean excess * (1 - xi)
    assert model.xi == 0.05
    assert model.sigma == pytest.approx(0.03 * 0.95, rel=0.05)


@pytest.mark.parametrize(("xi", "sigma"), TAILS)
def test_threshold_increases_with_gallery_size(xi: float, sigma: float) -> None:
    # given
    model = _model(xi, sigma)
    sizes = [1, 10, 1_000, 100_000, 1_000_000, 10_000_000]
    # when
    values = [model.threshold(n) for n in sizes]
    # then
    assert all(a < b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(("xi", "sigma"), TAILS)
def test_threshold_decreases_as_fmr_per_scan_grows(xi: float, sigma: float) -> None:
    # given
    model = _model(xi, sigma)
    rates = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.5]
    # when
    values = [model.threshold(100_000, fmr) for fmr in rates]
    # then
    assert all(a > b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(("xi", "sigma"), TAILS)
@pytest.mark.parametrize("gallery_size", [10, 1_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("fmr", [1e-3, 1e-2, 0.1])
def test_threshold_gives_the_requested_fmr_per_scan(
    xi: float, sigma: float, gallery_size: int, fmr: float
) -> None:
    # given impostor scores whose tail above U is exactly GPD(xi, sigma)
    model = _model(xi, sigma)
    # when
    t = model.threshold(gallery_size, fmr)
    # then: a scan of N independent impostors matches somebody with probability fmr
    p = _gpd_survival(t, xi, sigma)
    per_scan = -math.expm1(gallery_size * math.log1p(-p))
    assert per_scan == pytest.approx(fmr, rel=0.01)


@pytest.mark.parametrize(("xi", "sigma"), TAILS)
def test_threshold_fmr_per_scan_holds_in_simulated_scans(xi: float, sigma: float) -> None:
    # given 400,000 simulated scans of 20 impostor templates each
    rng = np.random.default_rng(11)
    scans, gallery_size, fmr = 400_000, 20, 0.05
    best = _impostor_sample(rng, scans * gallery_size, xi, sigma).reshape(scans, gallery_size).max(axis=1)
    # when
    t = _model(xi, sigma).threshold(gallery_size, fmr)
    # then: the share of scans with a false match is fmr within 4 binomial standard errors
    observed = float(np.mean(best >= t))
    assert abs(observed - fmr) < 4.0 * math.sqrt(fmr * (1.0 - fmr) / scans)


@pytest.mark.parametrize("gallery_size", [1, 100, 10_000])
def test_threshold_never_below_one_to_one_floor(gallery_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a light tail that would put the threshold far under the 1:1 value at FAR 1e-3
    light = TailModel(MODEL, 0.10, 0.01, 0.0, 0.01, 100_000, "synthetic")
    monkeypatch.setitem(open_set.TAIL_MODELS, MODEL, light)
    # when
    decided = decide_threshold(MODEL, gallery_size)
    # then
    assert light.threshold(gallery_size) == FLOOR
    assert decided.value == FLOOR
    assert decided.method == "far-1e-3-floor"


@pytest.mark.parametrize("gallery_size", [1, 1_000, 1_000_000, 10**9])
@pytest.mark.parametrize("fmr", [1e-6, 1e-3, 0.5, 0.999])
def test_match_threshold_of_stored_model_stays_between_floor_and_one(gallery_size: int, fmr: float) -> None:
    # when
    value = match_threshold(MODEL, gallery_size, fmr)
    # then
    assert FLOOR <= value <= 1.0


def test_threshold_is_capped_at_one_for_a_tail_that_asks_for_more() -> None:
    # given a very heavy tail
    heavy = TailModel(MODEL, 0.40, 0.05, 0.5, 0.2, 100_000, "synthetic")
    # when
    value = heavy.threshold(10_000_000)
    # then
    assert value == 1.0


def test_threshold_uses_tail_start_when_target_rate_is_above_p_u() -> None:
    # given a tail model of the top 1 % and a scan whose per-comparison target is 5 %
    model = _model(0.0, 0.02, u=0.45, p_u=0.01)
    # when
    value = model.threshold(2, 0.1)
    # then: at u the rate is p_u, below the target, so u is safe; the model says nothing lower
    assert value == 0.45


def test_p_exceed_is_an_upper_bound_below_u_and_zero_past_the_endpoint() -> None:
    # given a tail with a finite endpoint u - sigma / xi = 0.7
    model = _model(-0.1, 0.03)
    # when / then
    assert model.p_exceed(0.2) == 1.0
    assert model.p_exceed(U) == P_U
    assert model.p_exceed(0.7) == pytest.approx(0.0, abs=1e-100)
    assert model.p_exceed(0.7001) == 0.0
    assert model.p_exceed(0.9) == 0.0


def test_p_exceed_tends_to_the_exponential_limit_as_xi_goes_to_zero() -> None:
    # given
    exponential, tiny, small = _model(0.0, 0.02), _model(1e-12, 0.02), _model(1e-6, 0.02)
    # when / then
    assert tiny.p_exceed(0.6) == exponential.p_exceed(0.6)
    assert small.p_exceed(0.6) == pytest.approx(exponential.p_exceed(0.6), rel=1e-4)


@pytest.mark.parametrize("gallery_size", [1_000, 1_000_000, 10**9])
def test_comparison_rate_keeps_its_digits_for_large_galleries(gallery_size: int) -> None:
    # when
    rate = comparison_rate(gallery_size, 1e-3)
    # then: -log(1 - fmr) / N to first order in 1/N
    assert rate == pytest.approx(-math.log1p(-1e-3) / gallery_size, rel=1e-6)


def test_tail_check_compares_model_and_empirical_rates_where_there_are_scores() -> None:
    # given 200,000 scores with an exponential tail above U and the model that made them
    scores = _impostor_sample(np.random.default_rng(5), 200_000, 0.0, 0.02)
    # when
    rows = tail_check(_model(0.0, 0.02), scores, levels=(1e-2, 1e-3, 1e-4, 1e-6))
    # then: 1e-6 of 200,000 is under 5 scores and is skipped; the rest agree within noise
    assert len(rows) == 3
    for t, empirical, model_p in rows:
        assert t > U
        assert model_p == pytest.approx(empirical, rel=0.5)


@pytest.mark.parametrize("gallery_size", [0, -5, True])
def test_threshold_rejects_gallery_size_below_one(gallery_size: int) -> None:
    # when / then
    with pytest.raises(ValueError, match="number of templates searched, an integer of at least 1"):
        _model(0.0, 0.02).threshold(gallery_size)


@pytest.mark.parametrize("fmr", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_threshold_rejects_fmr_outside_zero_one(fmr: float) -> None:
    # when / then
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        decide_threshold(MODEL, 1_000, fmr)


@pytest.mark.parametrize(
    ("scores", "kwargs", "message"),
    [
        (np.linspace(0.0, 1.0, 5_000), {}, "pass at least 10,000 impostor scores or a larger tail_fraction"),
        (np.linspace(0.0, 1.0, 50_000), {"tail_fraction": 0.0}, "strictly between 0 and 0.5"),
        (np.linspace(0.0, 1.0, 50_000), {"tail_fraction": 0.5}, "strictly between 0 and 0.5"),
        (np.r_[np.linspace(0.0, 1.0, 50_000), -np.inf], {}, "drop them before fitting"),
        (np.r_[np.zeros(99_000), np.ones(1_000)], {}, "check that the scores are real comparisons"),
        (np.linspace(0.0, 1.0, 50_000), {"shape": 1.0}, "finite number below 1"),
        (np.array([]), {}, "pass at least"),
    ],
)
def test_fit_tail_rejects_unusable_input_and_says_what_to_do(
    scores: np.ndarray, kwargs: dict[str, float], message: str
) -> None:
    # when / then
    with pytest.raises(ValueError, match=message):
        fit_tail(scores, model_id=MODEL, source="synthetic", **kwargs)


def test_decide_threshold_reports_model_size_rate_and_method() -> None:
    # when
    decided = decide_threshold(MODEL, 1_000_000, 1e-3)
    # then
    assert isinstance(decided, OpenSetThreshold)
    assert (decided.model_id, decided.gallery_size, decided.fmr_per_scan) == (MODEL, 1_000_000, 1e-3)
    assert decided.method == "gpd-tail"
    assert decided.value == match_threshold(MODEL, 1_000_000, 1e-3)
    assert decided.value == open_set.TAIL_MODELS[MODEL].threshold(1_000_000, 1e-3)


@pytest.mark.parametrize("model_id", ["arcface-r100", ""])
def test_decide_threshold_rejects_unknown_model(model_id: str) -> None:
    # when / then
    with pytest.raises(ModelMismatchError, match="eventface bench calibrate"):
        decide_threshold(model_id, 1_000)


def test_tail_model_without_one_to_one_thresholds_raises_model_mismatch() -> None:
    # given a tail model of a model thresholds.py does not know
    model = TailModel("arcface-r100", 0.3, 0.01, 0.0, 0.03, 100_000, "synthetic")
    # when / then
    with pytest.raises(ModelMismatchError, match="no thresholds"):
        model.threshold(1_000)

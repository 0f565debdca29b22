"""Open-set identification thresholds: how high the best match must score in a gallery of N templates.

A search compares a probe with every template in the gallery. If one impostor comparison scores
above ``t`` with probability ``p(t)``, a scan of N templates of other people produces at least one
false match with probability ``1 - (1 - p(t))^N``. A fixed threshold therefore lets more strangers
through as the gallery grows, so the threshold is chosen per model, gallery size and false-match
rate per scan: ``p(t) = 1 - (1 - fmr)^(1/N)``, about ``fmr / N`` (1e-9 for 1M templates at 1e-3).

Such rates lie far below anything the dev set's ~10^5 impostor pairs can show, so ``p(t)`` above a
high empirical quantile ``u`` comes from a generalized Pareto (GPD) model of the impostor tail
(peaks over threshold): ``p(t) = p_u * (1 + xi * (t - u) / sigma) ** (-1 / xi)``.

Every number here is an extrapolation and should be read as one: see ``fit_tail`` for the method
and its assumptions, and ``TAIL_MODELS`` for how the stored constants were made conservative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from face_engine.errors import ModelMismatchError
from face_engine.thresholds import threshold_for

#: The false-match rate per scan used when a caller does not choose: one scan in a thousand of a
#: face that is not enrolled returns somebody.
DEFAULT_FMR_PER_SCAN = 1e-3

#: No open-set threshold goes below the model's 1:1 threshold at this FAR: a gallery of one is
#: still a 1:1 comparison, and the tail model is not trusted to loosen a measured operating point.
FLOOR_FAR = 1e-3

#: Fewest exceedances over ``u`` that ``fit_tail`` accepts. PWM needs far fewer to run, but with
#: under ~100 points the shape estimate is mostly noise.
MIN_EXCEEDANCES = 100

#: Below this |xi| the GPD is evaluated as its exponential limit, where ``1/xi`` loses precision.
_XI_ZERO = 1e-9

#: ``method`` values of ``OpenSetThreshold``: which constraint set the value.
METHOD_TAIL = "gpd-tail"
METHOD_TAIL_START = "tail-start"
METHOD_FLOOR = "far-1e-3-floor"
METHOD_CEILING = "ceiling"


@dataclass(frozen=True, slots=True)
class TailModel:
    """GPD model of a face model's impostor score tail above the empirical quantile ``u``.

    Attributes
    ----------
    model_id
        The face model whose cosine scores were fitted.
    u
        Tail start: the (1 - tail_fraction) empirical quantile of the impostor scores.
    p_u
        Empirical P(impostor score > u).
    xi, sigma
        GPD shape and scale of the excess ``score - u``. ``xi < 0`` means a finite endpoint
        ``u - sigma / xi``.
    n_impostor
        Number of impostor scores the fit used.
    source
        Where the scores came from and how the constants were chosen.
    """

    model_id: str
    u: float
    p_u: float
    xi: float
    sigma: float
    n_impostor: int
    source: str

    def p_exceed(self, t: float) -> float:
        """P(one impostor comparison scores above ``t``) according to the model.

        Below ``u`` the model describes nothing: the result is 1.0, an upper bound, so that no
        caller builds a looser threshold on it. At and above ``u`` it is the GPD survival. With
        ``xi < 0`` it is exactly 0.0 at and beyond the endpoint ``u - sigma / xi``; no floor is needed
        because ``threshold`` inverts the GPD in closed form and so always lands below the endpoint.
        Safety against an endpoint that is too low comes from the stored ``xi``, not from here.
        """
        if t < self.u:
            return 1.0
        z = (t - self.u) / self.sigma
        if abs(self.xi) < _XI_ZERO:
            return self.p_u * math.exp(-z)
        base = 1.0 + self.xi * z
        if base <= 0.0:
            return 0.0
        return self.p_u * math.exp(-math.log(base) / self.xi)

    def threshold(self, gallery_size: int, fmr_per_scan: float = DEFAULT_FMR_PER_SCAN) -> float:
        """The match threshold for a scan of ``gallery_size`` templates at ``fmr_per_scan``.

        Parameters
        ----------
        gallery_size
            Templates searched, not people: every template is one comparison and so one chance of
            a false match, so a person with three templates counts three times.
        fmr_per_scan
            Allowed probability that a probe of someone not enrolled matches anybody.

        Returns
        -------
        float
            The solution of ``p_exceed(t) = 1 - (1 - fmr)^(1/N)``, raised to the model's 1:1
            threshold at FAR 1e-3 if below it, and capped at 1.0 (a cosine cannot exceed 1).
        """
        return _solve(self, gallery_size, fmr_per_scan)[0]


@dataclass(frozen=True, slots=True)
class OpenSetThreshold:
    """A threshold with what it was computed for, so that a search result can cite it.

    ``method`` is ``"gpd-tail"`` (solved in the tail model), ``"tail-start"`` (the target rate is
    above ``p_u``, so the tail start ``u`` is used), ``"far-1e-3-floor"`` (the 1:1 threshold at
    FAR 1e-3 was higher) or ``"ceiling"`` (the model asked for more than 1.0).
    """

    value: float
    model_id: str
    gallery_size: int
    fmr_per_scan: float
    method: str


def comparison_rate(gallery_size: int, fmr_per_scan: float = DEFAULT_FMR_PER_SCAN) -> float:
    """Per-comparison false-match rate ``1 - (1 - fmr)^(1/N)`` that gives ``fmr_per_scan`` over N.

    Computed with log1p/expm1: the naive form loses all digits when ``fmr / N`` is near 1e-16.
    """
    _check_scan(gallery_size, fmr_per_scan)
    return -math.expm1(math.log1p(-fmr_per_scan) / gallery_size)


def _check_scan(gallery_size: int, fmr_per_scan: float) -> None:
    if isinstance(gallery_size, bool) or not isinstance(gallery_size, int) or gallery_size < 1:
        raise ValueError(
            f"gallery_size must be the number of templates searched, an integer of at least 1; "
            f"got {gallery_size!r}"
        )
    if not (0.0 < fmr_per_scan < 1.0):
        raise ValueError(
            f"fmr_per_scan must lie strictly between 0 and 1 (for example {DEFAULT_FMR_PER_SCAN} for "
            f"one false match per thousand scans of unknown faces); got {fmr_per_scan!r}"
        )


def _solve(model: TailModel, gallery_size: int, fmr_per_scan: float) -> tuple[float, str]:
    target = comparison_rate(gallery_size, fmr_per_scan)
    if target >= model.p_u:
        # The model cannot place t below u; at u the rate is p_u <= target, which is safe.
        t, method = model.u, METHOD_TAIL_START
    else:
        # Closed-form GPD inverse, written with log/expm1 so that tiny targets keep their digits.
        log_ratio = math.log(target / model.p_u)
        if abs(model.xi) < _XI_ZERO:
            t = model.u - model.sigma * log_ratio
        else:
            t = model.u + model.sigma * math.expm1(-model.xi * log_ratio) / model.xi
        method = METHOD_TAIL
    floor = threshold_for(model.model_id, FLOOR_FAR)
    if t < floor:
        return floor, METHOD_FLOOR
    if t > 1.0:
        return 1.0, METHOD_CEILING
    return t, method


def fit_tail(
    impostor_scores: np.ndarray,
    *,
    tail_fraction: float = 0.01,
    model_id: str,
    source: str,
    shape: float | None = None,
) -> TailModel:
    """Fit a GPD to the impostor scores above their (1 - tail_fraction) quantile.

    Method: peaks over threshold. ``u`` is the empirical (1 - tail_fraction) quantile; the excesses
    ``y = score - u`` of the scores above it are fitted by the probability-weighted moments of
    Hosking & Wallis (1987, Technometrics 29:339): with ``y`` sorted ascending, plotting positions
    ``p_j = (j - 0.35) / n``, ``a0 = mean(y)`` and ``a1 = mean((1 - p_j) * y)``, the shape is
    ``xi = 2 - a0 / (a0 - 2 a1)`` and the scale ``sigma = 2 a0 a1 / (a0 - 2 a1)``. It is closed form,
    needs no optimiser and is well behaved for ``xi < 0.5``, which covers cosine tails.

    With ``shape`` given, ``xi`` is fixed to it and the scale comes from the mean excess
    (``E[y] = sigma / (1 - xi)``): this is how a conservative, heavier-tailed model is stored.

    Assumptions, each a reason to read the result as an estimate:

    - the scores are treated as independent, though each image takes part in hundreds of pairs
      and a dev set has few identities (the stored model accounts for this with an identity
      bootstrap, see ``eventface.bench.calibrate``);
    - the excess over ``u`` follows one GPD from ``u`` out to the rates being extrapolated to;
      for Gaussian-like tails the fitted ``xi`` drifts towards 0 at higher ``u``, so a ``xi < 0``
      fitted at 1 % extrapolates to thresholds that are too low;
    - the people in a real gallery resemble each other no more than the dev set's do.

    Raises
    ------
    ValueError
        If the scores are not finite, ``tail_fraction`` is outside (0, 0.5), fewer than
        ``MIN_EXCEEDANCES`` scores exceed ``u``, the top scores are all equal, or ``shape`` is not
        below 1.
    """
    scores = np.asarray(impostor_scores, dtype=np.float64).ravel()
    if not (0.0 < tail_fraction < 0.5):
        raise ValueError(
            f"tail_fraction must lie strictly between 0 and 0.5 (the share of highest scores the tail "
            f"model describes, typically 0.01); got {tail_fraction!r}"
        )
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        raise ValueError(
            f"{bad} impostor scores are not finite (score_matrices marks a missing face with -inf): "
            "drop them before fitting"
        )
    if shape is not None and not (math.isfinite(shape) and shape < 1.0):
        raise ValueError(f"shape must be a finite number below 1 (the mean excess must exist); got {shape!r}")
    u = float(np.quantile(scores, 1.0 - tail_fraction)) if scores.size else 0.0
    excess = np.sort(scores[scores > u] - u)
    n = int(excess.size)
    if n < MIN_EXCEEDANCES:
        need = math.ceil(MIN_EXCEEDANCES / tail_fraction)
        raise ValueError(
            f"only {n} of {scores.size} scores lie above the {1.0 - tail_fraction:g} quantile and a tail "
            f"fit needs at least {MIN_EXCEEDANCES}: pass at least {need:,} impostor scores or a larger "
            "tail_fraction"
        )
    a0 = float(excess.mean())
    plotting = (np.arange(1, n + 1) - 0.35) / n
    a1 = float(np.mean((1.0 - plotting) * excess))
    if float(excess[-1] - excess[0]) <= 0.0 or a0 - 2.0 * a1 <= 0.0:
        raise ValueError(
            "the scores above the tail start are (nearly) all equal, so no tail shape can be fitted: "
            "check that the scores are real comparisons and not a constant or a copy"
        )
    if shape is None:
        xi = 2.0 - a0 / (a0 - 2.0 * a1)
        sigma = 2.0 * a0 * a1 / (a0 - 2.0 * a1)
    else:
        xi = float(shape)
        sigma = a0 * (1.0 - xi)
    return TailModel(
        model_id=model_id,
        u=u,
        p_u=n / scores.size,
        xi=xi,
        sigma=sigma,
        n_impostor=int(scores.size),
        source=source,
    )


def tail_check(
    model: TailModel,
    scores: np.ndarray,
    levels: Sequence[float] = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5),
    *,
    min_count: int = 5,
) -> list[tuple[float, float, float]]:
    """Goodness of fit: ``(t, empirical p, model p)`` at the empirical (1 - level) quantiles.

    Levels that fewer than ``min_count`` scores would exceed are skipped: an empirical rate
    resting on one or two scores says little. Agreement here shows only that the model fits the
    data it saw; it says nothing about the rates it extrapolates to.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    rows: list[tuple[float, float, float]] = []
    for level in levels:
        if level * values.size < min_count:
            continue
        t = float(np.quantile(values, 1.0 - level))
        rows.append((t, float(np.mean(values > t)), model.p_exceed(t)))
    return rows


#: Fitted impostor tail of each model, printed by ``eventface bench calibrate --data DIR``.
#:
#: The stored shape is deliberately heavier than the point fit (xi -0.1095, sigma 0.0350, which puts
#: a hard ceiling on impostor scores at 0.62): it is the 95th percentile of an identity bootstrap,
#: because the dev set has only 102 people and because on the uniform sphere, whose tail is known,
#: the point fit from as many scores put the 1M-template threshold 0.005-0.08 too low in 5 of 5
#: samples. The price: at N = 1M and 1e-3 per scan the threshold is 0.690 instead of 0.568, and
#: dev-set TAR falls from 0.74 to 0.40.
TAIL_MODELS: dict[str, TailModel] = {
    "sface-2021dec": TailModel(
        model_id="sface-2021dec",
        u=0.302425,
        p_u=0.01000249,
        xi=-0.040948,
        sigma=0.032863,
        n_impostor=233142,
        source=(
            "eventface bench calibrate on ../shared/data/faces (494 images, 102 identities, 233,142 "
            "directional probe-vs-template impostor scores); PWM fit above the 0.99 quantile gave xi "
            "-0.1095, sigma 0.0350; stored xi is the 95% point of a 200-rep identity bootstrap (seed 0), "
            "sigma from the mean excess"
        ),
    ),
}


def tail_model(model_id: str) -> TailModel:
    """The stored tail model of ``model_id``."""
    model = TAIL_MODELS.get(model_id)
    if model is None:
        raise ModelMismatchError(
            f"no open-set tail model for {model_id!r}: known models are {sorted(TAIL_MODELS)}; fit one "
            "with `eventface bench calibrate --data DIR` and add it to TAIL_MODELS"
        )
    return model


def decide_threshold(
    model_id: str, gallery_size: int, fmr_per_scan: float = DEFAULT_FMR_PER_SCAN
) -> OpenSetThreshold:
    """The open-set threshold of ``model_id`` for ``gallery_size`` templates, with its provenance.

    Raises ``ModelMismatchError`` for a model without a tail model and ``ValueError`` for a
    gallery size below 1 or a rate outside (0, 1).
    """
    value, method = _solve(tail_model(model_id), gallery_size, fmr_per_scan)
    return OpenSetThreshold(value, model_id, gallery_size, fmr_per_scan, method)


def match_threshold(model_id: str, gallery_size: int, fmr_per_scan: float = DEFAULT_FMR_PER_SCAN) -> float:
    """Just the value of ``decide_threshold``."""
    return decide_threshold(model_id, gallery_size, fmr_per_scan).value

"""The level, trend and weekly rhythm of a scope's spend: its totals of consecutive 24 hours
(days, counted back from the forecast's hour) regressed on the day of the week and a linear
trend, with errors that carry over from day to day as an AR(1) process.

Each model is fitted by feasible GLS (Prais-Winsten): ordinary least squares first, the lag-one
autocorrelation of its residuals (with Kendall's small-sample correction), then least squares
on the rows with that correlation taken out, each weighted down by its age (half-life
`HALF_LIFE_DAYS`), so a level that moved, a feature launched, is followed within weeks. Of the
models with and without the weekdays and the trend (`TERMS`), each forecasts in proportion
to its Akaike weight (AICc; Burnham and Anderson's model averaging), so a flat scope is not
given a trend its noise made up, nor four weeks' worth of one weekday's noise as that
weekday's level, while a scope that grows keeps its trend. Under `WEEKLY_DAYS` of history,
the level alone.

A day ahead is its fitted value plus the last day's residual decayed by rho a day (the best
linear predictor with AR(1) errors), so a busy spell is expected to run on a while. The error
of a sum of days ahead is exact for the model: the innovations to come, each carried into the
days after it, and the parameters' error (a weighted least squares sandwich), the last
residual's carried along; and, averaged over the models and rho's own error (quadrature), how
far each model's forecast is from theirs together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WEEKLY_DAYS = 14  # two of each weekday, to tell a weekday's level from the trend
HALF_LIFE_DAYS = 28.0
MAX_RHO = 0.9
TERMS = ((), ("trend",), ("weekday",), ("weekday", "trend"))


@dataclass(frozen=True, slots=True)
class DayFit:
    terms: tuple[str, ...]
    beta: np.ndarray
    covariance: np.ndarray  # of beta
    rho: float  # how much of a day's residual carries over to the next
    innovation_var: float  # of the part of a day's residual that is new
    last_residual: float  # of the day just ended
    last_row: np.ndarray  # its design row
    level: float  # the recent days' fitted total, which the noise is in proportion to
    aicc: float

    def totals(self, ahead: int) -> np.ndarray:
        """The forecast totals of the next `ahead` days (below 0 for a falling trend: the
        caller clips)."""
        return _design(np.arange(ahead), self.terms) @ self.beta + self.rho ** np.arange(1, ahead + 1) * self.last_residual

    def variance(self, shares: np.ndarray, totals: np.ndarray) -> float:
        """The error variance of `shares` @ the days ahead (whose forecast is `totals`): the
        innovations to come, in proportion to the level forecast, and the parameters' error
        through each day's forecast (its row, less the last day's decayed)."""
        ahead = len(shares)
        if not ahead:
            return 0.0
        gaps = np.subtract.outer(np.arange(ahead), np.arange(ahead))  # a later day less an innovation's
        reach = np.where(gaps >= 0, self.rho ** np.maximum(gaps, 0), 0.0).T @ shares
        scale = np.clip(totals / self.level, 0.25, 4.0) if self.level > 0 else np.ones(ahead)
        rows = _design(np.arange(ahead), self.terms) - np.outer(self.rho ** np.arange(1, ahead + 1), self.last_row)
        gradient = rows.T @ shares
        return float(self.innovation_var * ((reach * scale) ** 2).sum() + gradient @ self.covariance @ gradient)


def _design(t: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """A column per day of the week (by t mod 7: t is days from the forecast's hour, so the
    past is negative) or one for the level, and the trend in days if asked."""
    base = np.eye(7)[t % 7] if "weekday" in terms else np.ones((len(t), 1))
    return np.column_stack([base, t.astype(float)]) if "trend" in terms else base


@dataclass(frozen=True, slots=True)
class Days:
    """The fits, each with its weight (the weights add up to 1), forecasting together."""

    fits: tuple[tuple[float, DayFit], ...]

    @property
    def level(self) -> float:
        return sum(weight * fit.level for weight, fit in self.fits)

    def totals(self, ahead: int) -> np.ndarray:
        return sum((weight * fit.totals(ahead) for weight, fit in self.fits), np.zeros(ahead))

    def variance(self, shares: np.ndarray) -> float:
        """Each fit's error variance and how far its forecast is from theirs together."""
        each = [(weight, fit, fit.totals(len(shares))) for weight, fit in self.fits]
        mean = sum(weight * (totals @ shares) for weight, _, totals in each)
        return sum(weight * (fit.variance(shares, totals) + (totals @ shares - mean) ** 2)
                   for weight, fit, totals in each)


def fit_days(totals: np.ndarray) -> Days:
    """The days' totals, oldest first, the last ending at the forecast's hour, fitted by each
    model in `TERMS`, weighted by their Akaike weights, and each at three values of rho."""
    t = np.arange(-len(totals), 0)
    w = 0.5 ** (-t / HALF_LIFE_DAYS)
    models = [_fit(t, totals, w, terms) for terms in (TERMS if len(totals) >= WEEKLY_DAYS else TERMS[:1])]
    best = min(fit.aicc for fit in models)
    akaike = np.array([math.exp((best - fit.aicc) / 2) for fit in models])
    fits = []
    for share, model in zip(akaike / akaike.sum(), models):
        # rho's error is about sqrt((1 - rho^2) / n), and a long sum's variance grows fast
        # with rho: three-point Gauss-Hermite quadrature over it.
        step = math.sqrt(3 * (1 - model.rho ** 2) / len(totals))
        fits.append((share * 2 / 3, model))
        fits += [(share / 6, _gls(t, totals, w, model.terms, min(max(model.rho + side, 0.0), MAX_RHO)))
                 for side in (-step, step)]
    return Days(tuple(fits))


def _fit(t: np.ndarray, totals: np.ndarray, w: np.ndarray, terms: tuple[str, ...]) -> DayFit:
    x = _design(t, terms)
    return _gls(t, totals, w, terms, _rho(totals - x @ _wls(x, totals, w)[0]))


def _gls(t: np.ndarray, totals: np.ndarray, w: np.ndarray, terms: tuple[str, ...], rho: float) -> DayFit:
    x = _design(t, terms)
    keep = math.sqrt(1 - rho ** 2)  # Prais-Winsten: the first day scaled, each later one less rho times the one before
    xt = np.vstack([keep * x[:1], x[1:] - rho * x[:-1]])
    yt = np.concatenate([keep * totals[:1], totals[1:] - rho * totals[:-1]])
    beta, bread = _wls(xt, yt, w)
    innovation = yt - xt @ beta
    n_eff = w.sum() ** 2 / (w ** 2).sum()
    k = x.shape[1] + 1  # and rho
    mean_square = float((w * innovation ** 2).sum() / w.sum())
    innovation_var = mean_square * n_eff / max(n_eff - k, 1.0)
    covariance = innovation_var * bread @ (xt.T @ (xt * (w ** 2)[:, None])) @ bread
    fitted = x @ beta
    # -2 log-likelihood of a regression with AR(1) errors (the first day's Jacobian too), plus AICc's penalty
    aicc = n_eff * math.log(max(mean_square, 1e-300)) - math.log(1 - rho ** 2) + 2 * k + 2 * k * (k + 1) / max(n_eff - k - 1, 1.0)
    return DayFit(terms, beta, covariance, rho, innovation_var, float(totals[-1] - fitted[-1]), x[-1],
                  float((w * fitted).sum() / w.sum()), aicc)


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares: (beta, the inverse of X'WX)."""
    gram = x.T @ (x * w[:, None])
    try:
        bread = np.linalg.inv(gram)
    except np.linalg.LinAlgError:  # singular (a degenerate series): the least-norm solution instead
        bread = np.linalg.pinv(gram)
    return bread @ (x.T @ (w * y)), bread


def _rho(residual: np.ndarray) -> float:
    """Lag-one autocorrelation, plus Kendall's correction of its bias, (1 + 3 rho) / n."""
    square = float((residual ** 2).sum())
    if square <= 0:
        return 0.0
    rho = float((residual[1:] * residual[:-1]).sum() / square)
    return min(max(rho + (1 + 3 * rho) / len(residual), 0.0), MAX_RHO)

"""Paired statistics of two models' errors on the same test configurations (``mlffbench compare``).

Every compared run is evaluated on the same held-out configurations, so two models can be
compared configuration by configuration: the difference ``d_c = err_A(c) - err_B(c)`` of their
errors on configuration ``c`` removes the variation of difficulty between configurations,
which dominates the spread of an unpaired comparison.

Per-configuration errors (:func:`per_config_errors`): force MAE over the configuration's atoms
and components (eV/Å), absolute energy error per atom (eV/atom), stress MAE over the 9
components (eV/Å³, periodic configurations with a reference stress only).

:func:`paired_comparison` of two models with ``S_A`` and ``S_B`` seeds (training seeds are a
random effect: seed 0 of A has nothing in common with seed 0 of B):

- the estimate: the mean over configurations of (the mean over A's seeds) - (the mean over B's
  seeds) of the per-configuration errors; negative: A has the lower error;
- a bootstrap confidence interval (95 %, percentile): a two-level bootstrap, each replicate
  first resampling the seeds of each model (with replacement, independently), then the
  configurations (with replacement, the same ones for both models: paired). With one seed per
  model the first level does nothing and the interval covers the configurations only (it
  cannot see the seed-to-seed spread, hence compare's warning);
- the Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`, two-sided) of the seed-averaged
  per-configuration differences;
- the verdict: "A better" / "B better" where the interval excludes 0 *and* the Wilcoxon
  p-value is below ``alpha``; otherwise "tied within the noise";
- the minimum detectable difference: ``MDD = (z_{1-alpha/2} + z_{power}) * SE`` with ``SE`` the
  bootstrap standard error of the estimate; for ``alpha = 0.05`` and 80 % power
  ``(1.960 + 0.842) * SE = 2.80 * SE``: the smallest true mean difference this test set (and
  these seeds) would detect four times in five.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS = ("force_mae", "energy_mae_per_atom", "stress_mae")
A_BETTER, B_BETTER, TIED = "A better", "B better", "tied within the noise"
METHOD = (
    "paired per-configuration differences A - B on the same test configurations; 95 % two-level bootstrap "
    "interval (seeds of each model, then configurations, resampled); two-sided Wilcoxon signed-rank test of the "
    "seed-averaged differences; a verdict where the interval excludes 0 and p < 0.05; minimum detectable "
    "difference 2.80 x bootstrap SE (alpha 0.05, power 80 %)"
)


def per_config_errors(pred: dict[str, np.ndarray], has_energy: bool = True, has_forces: bool = True) -> dict[str, Any]:
    """Per-configuration errors of predictions (:meth:`mlffbench.runs.trained.TrainedModel.predictions`),
    sorted by configuration index: ``{"config": (C,), metric: (C,) or absent}`` (NaN where a
    configuration has no reference, e.g. stress of a molecule)."""
    config = np.asarray(pred["config"], dtype=np.int64)
    order = np.argsort(config, kind="stable")
    n = config.size
    out: dict[str, Any] = {"config": config[order]}
    if has_energy and n:
        out["energy_mae_per_atom"] = (np.abs(pred["energy_pred"] - pred["energy_ref"]) / pred["n_atoms"])[order]
    if has_forces and n:
        diff = np.abs(np.asarray(pred["force_pred"], float) - np.asarray(pred["force_ref"], float))
        per_atom = diff.reshape(diff.shape[0], -1).mean(axis=1)
        sums = np.bincount(pred["atom_config"], weights=per_atom, minlength=n)
        counts = np.bincount(pred["atom_config"], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["force_mae"] = (sums / counts)[order]
    if "stress_pred" in pred and n:
        mask = np.asarray(pred["stress_mask"]).astype(bool)
        s = np.abs(np.asarray(pred["stress_pred"], float) - np.asarray(pred["stress_ref"], float)).reshape(n, -1)
        values = np.where(mask, s.mean(axis=1), np.nan)
        if mask.any():
            out["stress_mae"] = values[order]
    return out


def minimum_detectable(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """``(z_{1-alpha/2} + z_{power}) * se``: 2.80 × SE for alpha 0.05 and 80 % power."""
    from scipy.stats import norm

    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def paired_comparison(
    a: Sequence[np.ndarray] | np.ndarray,
    b: Sequence[np.ndarray] | np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    power: float = 0.8,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of per-configuration errors ``a`` (seeds × configurations, model A)
    and ``b`` (seeds × the same configurations, model B); configurations that are NaN for any
    seed of either model are left out. See the module's docstring for the method.

    Returns ``mean_diff`` (A - B; negative: A better), ``ci`` (low, high), ``se``, ``mdd``,
    ``wilcoxon_p``, ``verdict``, ``configs``, ``seeds_a``, ``seeds_b``, ``relative`` (mean_diff
    / mean error of B)."""
    from scipy.stats import wilcoxon

    a2, b2 = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a2.shape[1] != b2.shape[1]:
        raise ValueError(f"the two models were evaluated on different configurations ({a2.shape[1]} vs {b2.shape[1]})")
    keep = np.isfinite(a2).all(axis=0) & np.isfinite(b2).all(axis=0)
    a2, b2 = a2[:, keep], b2[:, keep]
    (sa, n), sb = a2.shape, b2.shape[0]
    base = {"configs": int(n), "seeds_a": int(sa), "seeds_b": int(sb), "alpha": alpha, "power": power}
    if n < 2:
        return {**base, "mean_diff": None, "ci": None, "se": None, "mdd": None, "wilcoxon_p": None, "verdict": TIED}
    d = a2.mean(axis=0) - b2.mean(axis=0)
    mean_diff = float(d.mean())
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, sa, size=(n_boot, sa))
    ib = rng.integers(0, sb, size=(n_boot, sb))
    ic = rng.integers(0, n, size=(n_boot, n))
    boot = np.empty(n_boot)
    for k in range(n_boot):
        dk = a2[ia[k]].mean(axis=0) - b2[ib[k]].mean(axis=0)
        boot[k] = dk[ic[k]].mean()
    lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    se = float(boot.std(ddof=1))
    if np.all(d == 0):
        p = 1.0
    else:
        with warnings.catch_warnings():  # few configurations or ties: scipy warns about its approximation
            warnings.simplefilter("ignore")
            p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    significant = (lo > 0 or hi < 0) and p < alpha
    verdict = TIED if not significant else (A_BETTER if mean_diff < 0 else B_BETTER)
    mean_b = float(b2.mean())
    return {
        **base,
        "mean_diff": mean_diff,
        "ci": [lo, hi],
        "se": se,
        "mdd": minimum_detectable(se, alpha, power),
        "wilcoxon_p": p,
        # the smallest two-sided p the signed-rank test can give with n configurations (>= alpha
        # for n <= 5: then no verdict is possible whatever the errors)
        "wilcoxon_min_p": min(1.0, 2.0 / 2.0 ** int(n)),
        "verdict": verdict,
        "relative": mean_diff / mean_b if mean_b > 0 else None,
    }


def pairwise(
    errors: dict[str, list[dict[str, Any]]], order: Sequence[str], n_boot: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Every pair (A, B) of ``order`` (A before B), every metric that both have: model ->
    its runs' :func:`per_config_errors` (one per seed, on the same configurations)."""
    out = []
    for i, ma in enumerate(order):
        for mb in order[i + 1 :]:
            ra, rb = errors[ma], errors[mb]
            if not ra or not rb:
                continue
            configs = ra[0]["config"]
            if any(not np.array_equal(r["config"], configs) for r in [*ra, *rb]):
                raise ValueError(f"'{ma}' and '{mb}' were evaluated on different configurations")
            for metric in METRICS:
                if all(metric in r for r in [*ra, *rb]):
                    res = paired_comparison([r[metric] for r in ra], [r[metric] for r in rb], n_boot=n_boot, seed=seed)
                    verdict = {A_BETTER: f"{ma} better", B_BETTER: f"{mb} better"}.get(res["verdict"], res["verdict"])
                    out.append({"a": ma, "b": mb, "metric": metric, **res, "verdict": verdict})
    return out

"""Paired statistics of compare (mlffbench.speed.statistics) on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.speed import statistics as st


def _difficulty(n=60, seed=0):
    return np.random.default_rng(seed).lognormal(mean=-3.0, sigma=0.7, size=n)  # varies a lot between configs


def test_clear_difference_is_detected():
    rng = np.random.default_rng(1)
    base = _difficulty()
    a = [base * 0.8 + rng.normal(0, 1e-4, base.size) for _ in range(3)]  # 20 % lower error
    b = [base + rng.normal(0, 1e-4, base.size) for _ in range(3)]
    r = st.paired_comparison(a, b, n_boot=500)
    assert r["verdict"] == st.A_BETTER and r["mean_diff"] < 0
    assert r["ci"][0] < r["mean_diff"] < r["ci"][1] < 0 and r["wilcoxon_p"] < 1e-6
    assert r["mean_diff"] == pytest.approx(-0.2 * base.mean(), rel=0.05)
    assert r["relative"] == pytest.approx(-0.2, abs=0.02)
    assert st.paired_comparison(b, a, n_boot=500)["verdict"] == st.B_BETTER


def test_identical_errors_are_tied():
    base = _difficulty()
    r = st.paired_comparison([base, base], [base, base], n_boot=200)
    assert r["verdict"] == st.TIED and r["mean_diff"] == 0 and r["wilcoxon_p"] == 1.0
    assert r["ci"] == [0.0, 0.0] and r["mdd"] == 0.0
    few = st.paired_comparison([base[:4] * 0.5], [base[:4]], n_boot=100)  # a clear difference, 4 configurations
    assert few["wilcoxon_min_p"] == 0.125 and few["verdict"] == st.TIED  # too few to tell


def test_noise_only_is_tied_and_mdd_is_2_8_se():
    rng = np.random.default_rng(2)
    base = _difficulty()
    a = [base + rng.normal(0, 2e-3, base.size)]
    b = [base + rng.normal(0, 2e-3, base.size)]
    r = st.paired_comparison(a, b, n_boot=1000)
    assert r["verdict"] == st.TIED and r["ci"][0] < 0 < r["ci"][1]
    assert r["mdd"] == pytest.approx(2.8 * r["se"], rel=0.01)
    # the bootstrap SE is close to the analytic SE of a paired mean
    d = a[0] - b[0]
    assert r["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(d.size), rel=0.15)


def test_seed_spread_widens_the_interval():
    """A difference that is small against the seed-to-seed spread: the two-level bootstrap
    (seeds resampled) gives a wider interval than one seed alone would suggest."""
    rng = np.random.default_rng(3)
    base = _difficulty()
    a = [base * (0.97 + 0.05 * rng.normal()) + rng.normal(0, 1e-4, base.size) for _ in range(3)]
    b = [base * (1.0 + 0.05 * rng.normal()) + rng.normal(0, 1e-4, base.size) for _ in range(3)]
    many = st.paired_comparison(a, b, n_boot=1000)
    one = st.paired_comparison(a[:1], b[:1], n_boot=1000)
    assert (many["ci"][1] - many["ci"][0]) > 3 * (one["ci"][1] - one["ci"][0])
    assert many["seeds_a"] == 3 and one["seeds_a"] == 1


def test_per_config_errors_and_pairwise():
    # two configurations: 2 atoms and 1 atom
    pred = {
        "config": np.array([7, 3]),
        "n_atoms": np.array([2, 1]),
        "atom_config": np.array([0, 0, 1]),
        "energy_ref": np.array([0.0, 0.0]),
        "energy_pred": np.array([0.2, -0.1]),
        "force_ref": np.zeros((3, 3)),
        "force_pred": np.array([[0.3, 0.0, 0.0], [0.0, 0.3, 0.0], [0.6, 0.6, 0.6]]),
    }
    e = st.per_config_errors(pred)
    assert list(e["config"]) == [3, 7]  # sorted by configuration index
    assert e["energy_mae_per_atom"] == pytest.approx([0.1, 0.1])
    assert e["force_mae"] == pytest.approx([0.6, 0.1])
    rng = np.random.default_rng(4)
    base = _difficulty(40)
    good = {"config": np.arange(40), "force_mae": base * 0.5, "energy_mae_per_atom": base}
    bad = {"config": np.arange(40), "force_mae": base, "energy_mae_per_atom": base + rng.normal(0, 1e-3, 40)}
    rows = st.pairwise({"x": [good], "y": [bad]}, ["x", "y"], n_boot=300)
    verdicts = {r["metric"]: r["verdict"] for r in rows}
    assert verdicts == {"force_mae": "x better", "energy_mae_per_atom": st.TIED}
    with pytest.raises(ValueError, match="different configurations"):
        st.pairwise({"x": [good], "y": [{**bad, "config": np.arange(1, 41)}]}, ["x", "y"])


def test_minimum_detectable_formula():
    assert st.minimum_detectable(1.0) == pytest.approx(1.95996 + 0.84162, rel=1e-4)

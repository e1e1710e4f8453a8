"""ACE configuration: one-line errors for bad values, the basis sizes, the search space."""

from __future__ import annotations

import pytest

from mlffbench.errors import ConfigError
from mlffbench.plugin.manager import get_registry
from mlffbench_ace.config import SEARCH_SPACE, AceConfig
from mlffbench_ace.model import Basis


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ridge": -1.0}, "ridge must be a finite number >= 0"),
        ({"body_order": 5}, "body_order must be an integer from 2 to 4"),
        ({"cutoff": 0}, "cutoff must be a positive finite length"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_bad_values_are_one_line_errors(values, message):
    with pytest.raises(ConfigError, match=message) as err:
        AceConfig(**values)
    assert "\n" not in str(err.value)


def test_basis_sizes_follow_the_body_order():
    """2-body: K = species × n_radial channels; 3-body adds K(K+1)/2 per l; 4-body adds the
    coupled triples (even l sum, triangle), which exist only from body order 4."""
    two = Basis.of(AceConfig(n_radial=3, l_max=2, body_order=2), 2)
    three = Basis.of(AceConfig(n_radial=3, l_max=2, body_order=3), 2)
    four = Basis.of(AceConfig(n_radial=3, l_max=2, body_order=4, n_radial_high=2, l_max_high=1), 2)
    k = 2 * 3
    assert two.size == k
    assert three.size == k + k * (k + 1) // 2 * 3
    assert four.size > three.size and not three.triples
    for (l1, l2, l3), chans in four.triples:
        assert (l1 + l2 + l3) % 2 == 0 and abs(l1 - l2) <= l3 <= l1 + l2
        assert chans.max() < k


def test_specs_are_registered_with_their_kind():
    registry = get_registry()
    linear, gnn = registry.model("ace-linear"), registry.model("ace-gnn")
    assert linear.fit == "least-squares" and linear.backend == "jax"
    assert gnn.fit == "" and gnn.backend == "jax"
    assert linear.fit_options is not None and linear.fit_options(AceConfig(ridge=1e-3)) == {"ridge": 1e-3}


class _Trial:
    """The parts of an Optuna trial a search space uses: the lowest value of every dimension."""

    def suggest_float(self, name, low, high, log=False):
        return low

    def suggest_int(self, name, low, high, step=1, log=False):
        return low

    def suggest_categorical(self, name, choices):
        return choices[0]


def test_search_space_gives_valid_configs():
    model, train = SEARCH_SPACE.overrides(SEARCH_SPACE.sample(_Trial()))
    config = AceConfig(**model)
    assert config.n_radial_high <= config.n_radial and config.l_max_high <= config.l_max
    assert train == {}

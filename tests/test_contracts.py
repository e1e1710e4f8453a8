"""The typed contracts: the loop's structured stop reason, the Backend base, the stats
protocol and the validated model-config base the plugins share."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import pytest

from mlffbench.backends.base import Backend
from mlffbench.data.stats import DatasetStats, ModelStats, SpeciesStats
from mlffbench.errors import ConfigError
from mlffbench.plugin.config import Flag, Integer, Length, ModelConfig, OneOf, PositiveInts, option
from mlffbench.training.callbacks import Callback, StopKind, StopReason, StopTraining, stop_kind
from mlffbench.training.config import TrainConfig
from mlffbench.training.loop import fit


class _Batch:
    graph_mask = np.array([True])
    atom_mask = np.array([True])
    energy = np.array([0.0])
    n_atoms = np.array([1])
    forces = np.zeros((1, 3))


class _Batcher:
    def n_batches(self, n, batch_size, drop_remainder=False):
        return n // batch_size if drop_remainder else -(-n // batch_size)

    def batches(self, indices, rng=None, batch_size=1, drop_remainder=False):
        for _ in range(self.n_batches(len(indices), batch_size, drop_remainder)):
            yield _Batch()


class _Split:
    train = np.arange(4)
    val = np.arange(4, 6)


class _Backend(Backend[int]):
    """A state is the step count; the loss is ``losses[step]`` (1.0 beyond), forces are 1."""

    name = "fake"

    def __init__(self, potential, train_config, force_rms=1.0, losses=()):
        super().__init__(potential, train_config, force_rms)
        self.losses = list(losses)

    def init(self, seed, example):
        return 0

    def train_step(self, state, batch, lr):
        return state + 1, self.losses[state] if state < len(self.losses) else 1.0

    def loss_value(self, loss):
        return float(loss)

    def predict(self, state, batch):
        return np.zeros(1), np.ones((1, 3))

    def state_to_bytes(self, state):
        return str(state).encode()

    def state_from_bytes(self, template, data):
        return int(data)

    def with_params(self, state, params):
        return state

    def n_params(self, state):
        return 1

    def environment(self):
        return {"backend": "fake"}


def _fit(tmp_path, callbacks=(), losses=(), **train):
    config = TrainConfig(**{"epochs": 5, "batch_size": 2, "eval_batch_size": 2, **train})
    backend = _Backend(None, config, losses=losses)
    return fit(backend, _Batcher(), _Split(), config, tmp_path, True, True, callbacks=list(callbacks))


def test_backend_base_declares_the_constructor_both_backends_use():
    params = list(inspect.signature(Backend.__init__).parameters)
    assert params == ["self", "potential", "train_config", "force_rms"]
    backend = _Backend("pot", TrainConfig(), force_rms=2)
    assert (backend.potential, backend.config, backend.force_rms) == ("pot", TrainConfig(), 2.0)
    assert (backend.compile_count, backend.compile_seconds) == (0, 0.0)


def test_backends_subclass_the_base():
    from mlffbench.backends.base import get_backend_class

    for name in ("jax", "torch"):
        cls = get_backend_class(name)
        assert issubclass(cls, Backend)
        assert list(inspect.signature(cls.__init__).parameters)[:4] == [
            "self",
            "potential",
            "train_config",
            "force_rms",
        ]


def test_the_loop_returns_a_structured_reason_and_records_its_text(tmp_path):
    done = _fit(tmp_path / "a")
    assert done.stop is None and done.loop.stopped == "" and done.loop.epoch == 5
    early = _fit(tmp_path / "b", patience=2)  # the validation error never improves after epoch 1
    assert early.stop == StopReason(StopKind.EARLY_STOP, "early stop: no better validation force_mae for 2 epochs")
    assert early.loop.stopped == early.stop.message and early.loop.epoch == 3
    diverged = _fit(tmp_path / "c", losses=[1.0, 1.0, math.nan])
    assert diverged.stop.kind is StopKind.DIVERGED
    assert diverged.loop.stopped == "diverged: non-finite training loss at epoch 2"
    # a resumed run that had stopped: its reason from the recorded text
    config = TrainConfig(epochs=5, batch_size=2, eval_batch_size=2, patience=2)
    resumed = fit(_Backend(None, config), _Batcher(), _Split(), config, tmp_path / "b", True, True, resume=True)
    assert resumed.stop == early.stop and resumed.loop.epoch == 3


def test_a_callbacks_stop_keeps_its_kind(tmp_path):
    class Pruner(Callback):
        def on_epoch_end(self, epoch, record):
            if epoch == 1:
                raise StopTraining("no more, please", kind=StopKind.PRUNED)

    class Quiet(Callback):
        def on_epoch_end(self, epoch, record):
            raise StopTraining()

    pruned = _fit(tmp_path / "a", callbacks=[Pruner()])
    assert pruned.stop == StopReason(StopKind.PRUNED, "no more, please") and pruned.loop.epoch == 2
    quiet = _fit(tmp_path / "b", callbacks=[Quiet()])
    assert quiet.stop == StopReason(StopKind.CALLBACK, "stopped by Quiet") and quiet.loop.stopped == "stopped by Quiet"


def test_recorded_texts_classify_by_prefix():
    assert StopReason.parse("") is None and stop_kind(None) is None
    assert stop_kind("diverged: non-finite validation force_mae at epoch 1") is StopKind.DIVERGED
    assert stop_kind("pruned at epoch 1 step 3/5: validation force_mae 0.1") is StopKind.PRUNED
    assert stop_kind("early stop: no better validation force_mae for 3 epochs") is StopKind.EARLY_STOP
    assert stop_kind("time budget of 20 s reached") is StopKind.TIME_BUDGET
    assert stop_kind("ValueError: boom") is StopKind.CALLBACK
    assert str(StopReason(StopKind.PRUNED, "pruned at epoch 2")) == "pruned at epoch 2"
    # a callback's StopTraining without a kind takes the one its message names
    assert StopTraining("diverged: nan").reason("x") == StopReason(StopKind.DIVERGED, "diverged: nan")


def test_stats_protocol():
    def species_of(stats: ModelStats) -> tuple[int, ...]:
        return tuple(stats.species)

    full = DatasetStats((1, 8), (-13.6, -2041.0), 0.0, 1.0, 1.0, 0.0, 3)
    assert species_of(full) == species_of(SpeciesStats((1, 8), np.zeros(2))) == (1, 8)
    assert isinstance(SpeciesStats((1,), (0.0,)).reference_energies, tuple)


@dataclass(frozen=True)
class _Demo(ModelConfig, label="demo config", order=("widths",)):
    n: int = option(2, Integer(0, 4))
    cutoff: float = option(5.0, Length())
    on: bool = option(True, Flag())
    kind: str = option("a", OneOf(("a", "b")))
    widths: tuple[int, ...] = option((8,), PositiveInts(empty="must name at least one width"))
    gauss: int = option(50, Integer(1, at_least=2))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n": 5}, "demo config: n must be an integer from 0 to 4, got 5"),
        ({"n": True}, "demo config: n must be an integer from 0 to 4, got True"),
        ({"cutoff": "5"}, "demo config: cutoff must be a number (Å), got '5'"),
        ({"cutoff": -1}, "demo config: cutoff must be a positive finite length (Å), got -1"),
        ({"on": 1}, "demo config: on must be true or false, got 1"),
        ({"kind": "c"}, "demo config: kind must be one of a, b, got 'c'"),
        ({"widths": "8"}, "demo config: widths must be a sequence of positive integers, got '8'"),
        ({"widths": (8, 0)}, "demo config: widths must contain positive integers, got (8, 0)"),
        ({"widths": ()}, "demo config: widths must name at least one width"),
        ({"gauss": 0}, "demo config: gauss must be a positive integer, got 0"),
        ({"gauss": 1}, "demo config: gauss must be at least 2, got 1"),
        ({"n": -1, "widths": ()}, "demo config: widths must name at least one width"),  # order: widths first
    ],
)
def test_model_config_base_checks_each_field_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        _Demo(**overrides)
    assert str(err.value) == message


def test_model_config_base_converts_and_names_unknown_keys():
    c = _Demo.from_dict({"cutoff": 4, "widths": [4, 2]})
    assert c.cutoff == 4.0 and isinstance(c.cutoff, float) and c.widths == (4, 2)
    assert c == _Demo(cutoff=4.0, widths=(4, 2)) and hash(c) == hash(_Demo(cutoff=4.0, widths=(4, 2)))
    with pytest.raises(
        ConfigError, match=r"^demo config: unknown option 'm' \(known: cutoff, gauss, kind, n, on, widths\)$"
    ):
        _Demo.from_dict({"m": 1, "z": 2})

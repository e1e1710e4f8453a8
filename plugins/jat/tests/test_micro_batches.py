"""Micro-batched training steps (``TrainConfig.micro_batch_size``): a batch trained as parts
whose gradients are summed gives the whole batch's loss and update."""

from __future__ import annotations

import jax
import numpy as np

from mlffbench.backends.jax.trainer import JaxBackend
from mlffbench.data.stats import compute_stats
from mlffbench.graph.batching import GraphBatcher
from mlffbench.graph.neighbors import compute_neighbors
from mlffbench.training.config import TrainConfig
from mlffbench_jat.config import JatConfig
from mlffbench_jat.model import build


def test_micro_batches_give_the_whole_batch_step(ean):
    ds = ean.select(np.arange(5))
    neighbors = compute_neighbors(ds, 4.0)
    stats = compute_stats(ds, np.arange(5), neighbors)
    config = JatConfig(layer_dims=(16, 16), embed_d=16, cutoff=4.0, readout_dims=(8,))
    batch = GraphBatcher(ds, neighbors, stats.species, 5).make_batch(np.arange(5))
    results = []
    for micro in (0, 2):
        train = TrainConfig(batch_size=5, micro_batch_size=micro, optimizer="yogi", energy_weight=0.1)
        backend = JaxBackend(build(config, stats), train, force_rms=stats.force_rms)
        state = backend.init(0, batch)
        new, loss = backend.train_step(state, batch, 1e-3)
        results.append((backend, state, new, float(loss)))
    (_full, state0, step_full, loss_full), (micro, _, step_micro, loss_micro) = results
    assert len(micro._train) == 2 + 1  # parts of 2, 2 and 1 configurations (two shapes) + the update
    assert abs(loss_micro - loss_full) < 1e-5 * abs(loss_full)
    moved = jax.tree_util.tree_map(
        lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), step_full.params, state0.params
    )
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-4  # the step did move the parameters
    diff = jax.tree_util.tree_map(
        lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), step_full.params, step_micro.params
    )
    assert max(jax.tree_util.tree_leaves(diff)) < 1e-7
    assert int(step_micro.step) == int(step_full.step) == 1

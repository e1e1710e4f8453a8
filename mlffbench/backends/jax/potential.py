"""From a model's per-atom energies to energy, forces and stress (JAX).

A JAX model plugin provides a flax module whose ``__call__(graph: EdgeGraph)``
returns per-atom energies of shape (N,). Everything else lives here: edge vectors
from positions (so forces are ``-dE/dr`` by autodiff), the per-species reference
energies, and stress as the strain derivative.

Edge convention (the core's neighbour lists): an edge e goes from ``senders[e]``
to ``receivers[e]`` and its vector is
``positions[receivers] - positions[senders] + shifts @ cell``.
Padding edges (``edge_mask`` False) get a fixed vector longer than any cutoff so
that no model divides by zero on them; padding atoms sit in a padding graph.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mlffbench.backends.base import Outputs

PAD_EDGE_LENGTH = 1.0e3  # Å; any padding edge is this long, far beyond every cutoff


class EdgeGraph(NamedTuple):
    """What a model sees. N atoms, E edges, G graphs (all padded, static shapes)."""

    species: jax.Array  # (N,) int32, index into the dataset's sorted element list
    atom_mask: jax.Array  # (N,) bool, False for padding atoms
    vectors: jax.Array  # (E, 3) edge vectors, Å
    senders: jax.Array  # (E,) int32
    receivers: jax.Array  # (E,) int32
    edge_mask: jax.Array  # (E,) bool
    graph_index: jax.Array  # (N,) int32
    n_graphs: int  # static


class Batch(NamedTuple):
    """Device-side batch (see :class:`mlffbench.graph.batching.GraphBatch`)."""

    positions: jax.Array
    species: jax.Array
    atom_mask: jax.Array
    graph_index: jax.Array
    senders: jax.Array
    receivers: jax.Array
    shifts: jax.Array
    edge_mask: jax.Array
    cell: jax.Array
    energy: jax.Array
    forces: jax.Array
    graph_mask: jax.Array
    n_atoms: jax.Array


def edge_vectors(batch: Batch, positions: jax.Array, cell: jax.Array) -> jax.Array:
    """Edge vectors from positions and cell (both may carry a strain for the stress)."""
    edge_graph = batch.graph_index[batch.senders]
    shift_vec = jnp.einsum("ei,eij->ej", batch.shifts.astype(positions.dtype), cell[edge_graph])
    vec = positions[batch.receivers] - positions[batch.senders] + shift_vec
    pad = jnp.zeros_like(vec).at[:, 0].set(PAD_EDGE_LENGTH)
    return jnp.where(batch.edge_mask[:, None], vec, pad)


def make_graph(batch: Batch, vectors: jax.Array) -> EdgeGraph:
    return EdgeGraph(
        species=batch.species,
        atom_mask=batch.atom_mask,
        vectors=vectors,
        senders=batch.senders,
        receivers=batch.receivers,
        edge_mask=batch.edge_mask,
        graph_index=batch.graph_index,
        n_graphs=batch.cell.shape[0],
    )


class Potential:
    """Wraps a per-atom energy module into energy / forces / stress functions.

    ``reference_energies`` (one per species, eV) is added per atom; zeros disable it.
    ``output_scale`` multiplies the module's per-atom energies (1 = the module as it is;
    the backend may calibrate it at initialisation, see ``TrainConfig.calibrate_output``).
    """

    def __init__(self, module, reference_energies, output_scale: float = 1.0):
        self.module = module
        self.reference_energies = jnp.asarray(reference_energies)
        self.output_scale = float(output_scale)

    def atomic_energies(self, params, batch: Batch, positions=None, cell=None) -> jax.Array:
        positions = batch.positions if positions is None else positions
        cell = batch.cell if cell is None else cell
        graph = make_graph(batch, edge_vectors(batch, positions, cell))
        e = self.module.apply({"params": params}, graph) * self.output_scale
        e = e + self.reference_energies.astype(e.dtype)[batch.species]
        return jnp.where(batch.atom_mask, e, 0.0)

    def energy(self, params, batch: Batch, positions=None, cell=None) -> jax.Array:
        """Total energy per graph, (G,)."""
        e = self.atomic_energies(params, batch, positions, cell)
        return jax.ops.segment_sum(e, batch.graph_index, num_segments=batch.cell.shape[0])

    def evaluate(self, params, batch: Batch, forces: bool = True, stress: bool = False, atomic: bool = False):
        """:class:`~mlffbench.backends.base.Outputs` of one batch: energies (G,), and where asked
        for forces (N, 3) = -dE/dr, stress (G, 3, 3) = (1/V) dE/dε at a symmetric strain ε = 0
        (zero for free molecules) and atomic energies (N,), all from one gradient of the energy.
        Training's losses and the backend's predictions are this function."""
        if not (forces or stress):
            e = self.atomic_energies(params, batch)
            energies = jax.ops.segment_sum(e, batch.graph_index, num_segments=batch.cell.shape[0])
            return Outputs(energies, atomic=e if atomic else None)
        n_graphs = batch.cell.shape[0]

        def total(pos, strain):
            cell = None
            if stress:
                sym = 0.5 * (strain + jnp.swapaxes(strain, 1, 2))
                deform = jnp.eye(3, dtype=strain.dtype)[None] + sym
                pos = jnp.einsum("ni,nij->nj", pos, deform[batch.graph_index])
                cell = jnp.einsum("gki,gij->gkj", batch.cell, deform)
            e = self.atomic_energies(params, batch, positions=pos, cell=cell)
            energies = jax.ops.segment_sum(e, batch.graph_index, num_segments=n_graphs)
            return energies.sum(), (energies, e if atomic else None)

        strain0 = jnp.zeros((n_graphs, 3, 3), batch.positions.dtype) if stress else None
        argnums = (0, 1) if forces and stress else (0 if forces else 1)
        (_, (energies, e)), grads = jax.value_and_grad(total, argnums=argnums, has_aux=True)(batch.positions, strain0)
        grads = list(grads) if forces and stress else [grads]
        out = Outputs(energies, atomic=e)
        if forces:
            out = out._replace(forces=jnp.where(batch.atom_mask[:, None], -grads.pop(0), 0.0))
        if stress:
            (de,) = grads
            volume = jnp.abs(jnp.linalg.det(batch.cell))
            safe = jnp.where(volume > 0, volume, 1.0)
            out = out._replace(stress=jnp.where((volume > 0)[:, None, None], de / safe[:, None, None], 0.0))
        return out

    def energy_and_forces(self, params, batch: Batch):
        """(energies (G,), forces (N, 3)): :meth:`evaluate`'s."""
        out = self.evaluate(params, batch)
        return out.energy, out.forces

    def energy_forces_stress(self, params, batch: Batch):
        """(energies (G,), forces (N, 3), stress (G, 3, 3)): :meth:`evaluate`'s."""
        out = self.evaluate(params, batch, stress=True)
        return out.energy, out.forces, out.stress

    def add_energy_offsets(self, offsets) -> None:
        """Add per-species energy offsets (eV) to the reference energies (fitted after training;
        functions compiled before see the old values: compile again)."""
        self.reference_energies = self.reference_energies + jnp.asarray(offsets, self.reference_energies.dtype)

    def stress(self, params, batch: Batch) -> jax.Array:
        """Stress per graph, (G, 3, 3), eV/Å³: (1/V) dE/dε at ε = 0 (zero for free molecules)."""
        return self.evaluate(params, batch, forces=False, stress=True).stress

"""From a model's per-atom energies to energy, forces and stress (PyTorch).

The PyTorch twin of :mod:`mlffbench.backends.jax.potential`. A torch model plugin provides
an ``nn.Module`` whose ``forward(graph: EdgeGraph)`` returns per-atom energies of shape
(N,). Everything else lives here: edge vectors from positions (so forces are ``-dE/dr`` by
autograd), the per-species reference energies, and stress as the strain derivative.

Edge convention (the core's neighbour lists): an edge e goes from ``senders[e]`` to
``receivers[e]`` and its vector is ``positions[receivers] - positions[senders] + shifts @ cell``.

Eager PyTorch needs no static shapes, so :func:`to_device` drops the padding edges of a
:class:`mlffbench.graph.batching.GraphBatch` (they are last): a model sees real edges only
(``edge_mask`` is all True). Padding atoms are kept, so that predictions line up with the
numpy batch; they sit in the last (padding) graph, have no edges, and their energies are
masked out here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from mlffbench.backends.base import Outputs


class EdgeGraph(NamedTuple):
    """What a model sees. N atoms, E real edges, G graphs."""

    species: torch.Tensor  # (N,) int64, index into the dataset's sorted element list
    numbers: torch.Tensor  # (N,) int64, atomic numbers (0 for padding atoms)
    atom_mask: torch.Tensor  # (N,) bool, False for padding atoms
    vectors: torch.Tensor  # (E, 3) edge vectors, Å
    senders: torch.Tensor  # (E,) int64
    receivers: torch.Tensor  # (E,) int64, sorted
    edge_mask: torch.Tensor  # (E,) bool (all True: padding edges are dropped)
    graph_index: torch.Tensor  # (N,) int64
    n_graphs: int


class Batch(NamedTuple):
    """Device-side batch (see :class:`mlffbench.graph.batching.GraphBatch`), padding edges dropped.

    ``shift_vectors`` = ``shifts @ cell`` per edge (constant unless the cell is strained).
    """

    positions: torch.Tensor
    species: torch.Tensor
    numbers: torch.Tensor
    atom_mask: torch.Tensor
    graph_index: torch.Tensor
    senders: torch.Tensor
    receivers: torch.Tensor
    shifts: torch.Tensor
    shift_vectors: torch.Tensor
    edge_mask: torch.Tensor
    cell: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    graph_mask: torch.Tensor
    n_atoms: torch.Tensor

    @property
    def n_graphs(self) -> int:
        return int(self.cell.shape[0])


def to_device(batch, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Batch:
    """A numpy GraphBatch as a torch Batch on ``device``, floats in ``dtype``, real edges only."""
    edge_mask = np.asarray(batch.edge_mask)
    n_edges = int(edge_mask.sum())
    if not edge_mask[:n_edges].all():
        raise ValueError("padding edges must come after the real edges")
    device = torch.device(device)

    def floats(arr):
        return torch.as_tensor(np.asarray(arr), dtype=dtype, device=device)

    def ints(arr):
        return torch.as_tensor(np.asarray(arr), dtype=torch.int64, device=device)

    def bools(arr):
        return torch.as_tensor(np.asarray(arr), dtype=torch.bool, device=device)

    senders = np.asarray(batch.senders)[:n_edges]
    shifts = np.asarray(batch.shifts)[:n_edges]
    cell = np.asarray(batch.cell, np.float64)
    graph_of_edge = np.asarray(batch.graph_index)[senders]
    shift_vectors = np.einsum("ei,eij->ej", shifts, cell[graph_of_edge]) if n_edges else np.zeros((0, 3))
    return Batch(
        positions=floats(batch.positions),
        species=ints(batch.species),
        numbers=ints(batch.numbers),
        atom_mask=bools(batch.atom_mask),
        graph_index=ints(batch.graph_index),
        senders=ints(senders),
        receivers=ints(np.asarray(batch.receivers)[:n_edges]),
        shifts=floats(shifts),
        shift_vectors=floats(shift_vectors),
        edge_mask=bools(edge_mask[:n_edges]),
        cell=floats(cell),
        energy=floats(batch.energy),
        forces=floats(batch.forces),
        graph_mask=bools(batch.graph_mask),
        n_atoms=floats(batch.n_atoms),
    )


def edge_vectors(batch: Batch, positions: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
    """Edge vectors from positions (and, for a strained cell, the cell)."""
    if cell is None:
        shift_vec = batch.shift_vectors
    else:
        shift_vec = torch.einsum("ei,eij->ej", batch.shifts, cell[batch.graph_index[batch.senders]])
    return positions.index_select(0, batch.receivers) - positions.index_select(0, batch.senders) + shift_vec


def make_graph(batch: Batch, vectors: torch.Tensor) -> EdgeGraph:
    return EdgeGraph(
        species=batch.species,
        numbers=batch.numbers,
        atom_mask=batch.atom_mask,
        vectors=vectors,
        senders=batch.senders,
        receivers=batch.receivers,
        edge_mask=batch.edge_mask,
        graph_index=batch.graph_index,
        n_graphs=batch.n_graphs,
    )


class Potential:
    """Wraps a per-atom energy module into energy / forces / stress functions.

    ``reference_energies`` (one per species, eV) is added per atom; zeros disable it.
    ``output_scale`` multiplies the module's per-atom energies (1 = the module as it is;
    the backend may calibrate it at initialisation, see ``TrainConfig.calibrate_output``).
    ``params`` of every method: a mapping name → tensor used instead of the module's own
    parameters (``torch.func.functional_call``), or None for the module's own.
    """

    def __init__(self, module: torch.nn.Module, reference_energies, output_scale: float = 1.0):
        self.module = module
        self.reference_energies = torch.as_tensor(np.asarray(reference_energies, np.float64))
        self.output_scale = float(output_scale)
        self._refs: dict[tuple[Any, Any], torch.Tensor] = {}

    def _reference(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.dtype, like.device)
        if key not in self._refs:
            self._refs[key] = self.reference_energies.to(dtype=like.dtype, device=like.device)
        return self._refs[key]

    def _call(self, params, graph: EdgeGraph) -> torch.Tensor:
        if params is None:
            return self.module(graph)
        return torch.func.functional_call(self.module, params, (graph,))

    def atomic_energies(self, params, batch: Batch, positions=None, cell=None) -> torch.Tensor:
        positions = batch.positions if positions is None else positions
        graph = make_graph(batch, edge_vectors(batch, positions, cell))
        e = self._call(params, graph).reshape(-1)
        if self.output_scale != 1.0:
            e = e * self.output_scale
        e = e + self._reference(e)[batch.species]
        return torch.where(batch.atom_mask, e, torch.zeros_like(e))

    @staticmethod
    def _per_graph(e: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.zeros(batch.n_graphs, dtype=e.dtype, device=e.device).index_add(0, batch.graph_index, e)

    def energy(self, params, batch: Batch, positions=None, cell=None) -> torch.Tensor:
        """Total energy per graph, (G,)."""
        return self._per_graph(self.atomic_energies(params, batch, positions, cell), batch)

    def evaluate(
        self,
        params,
        batch: Batch,
        forces: bool = True,
        stress: bool = False,
        atomic: bool = False,
        create_graph: bool = False,
    ) -> Outputs:
        """:class:`~mlffbench.backends.base.Outputs` of one batch: energies (G,), and where asked
        for forces (N, 3) = -dE/dr, stress (G, 3, 3) = (1/V) dE/dε at a symmetric strain ε = 0
        (zero for free molecules) and atomic energies (N,), from one gradient of the energy.
        ``create_graph`` keeps the graph for a parameter gradient (training's losses); without
        it every output is detached. Training's losses and the backend's predictions are this."""
        if not (forces or stress):
            e = self.atomic_energies(params, batch)
            energies = self._per_graph(e, batch)
            if not create_graph:
                e, energies = e.detach(), energies.detach()
            return Outputs(energies, atomic=e if atomic else None)
        dtype, device = batch.positions.dtype, batch.positions.device
        with torch.enable_grad():
            positions = batch.positions.detach().requires_grad_(forces)
            pos, cell, inputs = positions, None, [positions] if forces else []
            if stress:
                strain = torch.zeros((batch.n_graphs, 3, 3), dtype=dtype, device=device, requires_grad=True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                deform = torch.eye(3, dtype=dtype, device=device)[None] + sym
                pos = torch.einsum("ni,nij->nj", positions, deform[batch.graph_index])
                cell = torch.einsum("gki,gij->gkj", batch.cell, deform)
                inputs.append(strain)
            e = self.atomic_energies(params, batch, positions=pos, cell=cell)
            energies = self._per_graph(e, batch)
            grads = list(torch.autograd.grad(energies.sum(), inputs, create_graph=create_graph))
        out = Outputs(energies, atomic=e if atomic else None)
        if forces:
            grad = grads.pop(0)
            out = out._replace(forces=torch.where(batch.atom_mask[:, None], -grad, torch.zeros_like(grad)))
        if stress:
            (de,) = grads
            volume = torch.linalg.det(batch.cell).abs()
            safe = torch.where(volume > 0, volume, torch.ones_like(volume))
            out = out._replace(
                stress=torch.where((volume > 0)[:, None, None], de / safe[:, None, None], torch.zeros_like(de))
            )
        if not create_graph:
            out = Outputs(*(None if v is None else v.detach() for v in out))
        return out

    def energy_and_forces(self, params, batch: Batch, create_graph: bool = False):
        """(energies (G,), forces (N, 3)): :meth:`evaluate`'s."""
        out = self.evaluate(params, batch, create_graph=create_graph)
        return out.energy, out.forces

    def energy_forces_stress(self, params, batch: Batch, create_graph: bool = False):
        """(energies (G,), forces (N, 3), stress (G, 3, 3)): :meth:`evaluate`'s."""
        out = self.evaluate(params, batch, stress=True, create_graph=create_graph)
        return out.energy, out.forces, out.stress

    def add_energy_offsets(self, offsets) -> None:
        """Add per-species energy offsets (eV) to the reference energies (fitted after training)."""
        self.reference_energies = self.reference_energies + torch.as_tensor(np.asarray(offsets, np.float64))
        self._refs.clear()

    def stress(self, params, batch: Batch) -> torch.Tensor:
        """Stress per graph, (G, 3, 3), eV/Å³: (1/V) dE/dε at ε = 0 (zero for free molecules)."""
        return self.evaluate(params, batch, forces=False, stress=True).stress

"""SchNet from torch-geometric's components, fed by the core's periodic neighbour lists.

What differs from ``torch_geometric.nn.models.SchNet`` (the graph, the species embedding, the
per-atom output, the pair-symmetric interaction blocks): docs/models/schnet.md §5.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from torch.nn import Embedding, Linear, ModuleList
from torch_geometric.nn.models.schnet import GaussianSmearing, InteractionBlock, ShiftedSoftplus

from mlffbench.backends.torch.potential import EdgeGraph, Potential
from mlffbench.data.stats import ModelStats
from mlffbench_schnet.config import SchnetConfig


class SchNetEnergy(torch.nn.Module):
    """Per-atom SchNet energies of an :class:`~mlffbench.backends.torch.potential.EdgeGraph`."""

    def __init__(self, config: SchnetConfig, n_species: int):
        super().__init__()
        self.cutoff = float(config.cutoff)
        self.pair_symmetry = bool(config.pair_symmetry)
        self.embedding = Embedding(n_species, config.hidden_channels)
        self.distance_expansion = GaussianSmearing(0.0, config.cutoff, config.num_gaussians)
        self.interactions = ModuleList(
            InteractionBlock(config.hidden_channels, config.num_gaussians, config.num_filters, config.cutoff)
            for _ in range(config.num_interactions)
        )
        self.lin1 = Linear(config.hidden_channels, config.readout_channels)
        self.act = ShiftedSoftplus()
        self.lin2 = Linear(config.readout_channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyG's initialisation: embedding N(0, 1), Linear weights Xavier-uniform, biases 0."""
        self.embedding.reset_parameters()
        for block in self.interactions:
            cast(InteractionBlock, block).reset_parameters()
        for lin in (self.lin1, self.lin2):
            torch.nn.init.xavier_uniform_(lin.weight)
            lin.bias.data.fill_(0)

    def forward(self, graph: EdgeGraph) -> torch.Tensor:
        senders, receivers, vectors = graph.senders, graph.receivers, graph.vectors
        if self.pair_symmetry:
            # one edge of each pair (j→i, shift S) / (i→j, −S): they share distance and filter
            keep = (senders < receivers) | ((senders == receivers) & _lexicographically_positive(vectors.detach()))
            keep = torch.nonzero(keep).squeeze(-1)
            senders, receivers = senders.index_select(0, keep), receivers.index_select(0, keep)
            vectors = vectors.index_select(0, keep)
        distance = torch.clamp(torch.linalg.vector_norm(vectors, dim=-1), max=self.cutoff)
        rbf = self.distance_expansion(distance)
        h = self.embedding(graph.species)
        if not self.pair_symmetry:
            # PyG's flow "source_to_target": messages x_j of edge_index[0] are summed at edge_index[1]
            edge_index = torch.stack([senders, receivers])
            for block in self.interactions:
                h = h + block(h, edge_index, distance, rbf)
        else:
            envelope = (0.5 * (torch.cos(distance * (math.pi / self.cutoff)) + 1.0))[:, None]
            for t, block in enumerate(self.interactions):
                if t == 0:  # h is still the species embedding
                    h = h + self._first_interaction(block, graph.species, senders, receivers, rbf, envelope)
                else:
                    h = h + self._interaction(block, h, senders, receivers, rbf, envelope)
        return self.lin2(self.act(self.lin1(h))).squeeze(-1)

    @staticmethod
    def _interaction(block: InteractionBlock, h, senders, receivers, rbf, envelope) -> torch.Tensor:
        """``InteractionBlock.forward`` on half of a full edge list: each filter W(d) is computed
        once per pair and carries the message both ways (the same sums as CFConv's)."""
        conv = block.conv
        W = conv.nn(rbf) * envelope
        x = conv.lin1(h)
        m = torch.zeros_like(x).index_add_(0, receivers, x.index_select(0, senders) * W)
        m = m.index_add_(0, senders, x.index_select(0, receivers) * W)
        return block.lin(block.act(conv.lin2(m)))

    def _first_interaction(self, block: InteractionBlock, species, senders, receivers, rbf, envelope) -> torch.Tensor:
        """:meth:`_interaction` where h = embedding[species]: x_j = lin1(embedding)[species_j]
        takes S values, so Σ_j x_j ⊙ W_ij = Σ_k x_k ⊙ (Σ_{j of species k} W_ij): the filters
        are summed per (atom, neighbour species) and the S rows multiplied afterwards (no
        per-edge gather or product)."""
        conv = block.conv
        W = conv.nn(rbf) * envelope
        x_of = conv.lin1(self.embedding.weight)  # (S, F)
        n, n_kinds = species.shape[0], x_of.shape[0]
        sums = torch.zeros((n * n_kinds, W.shape[1]), dtype=W.dtype, device=W.device)
        sums = sums.index_add_(0, receivers * n_kinds + species.index_select(0, senders), W)
        sums = sums.index_add_(0, senders * n_kinds + species.index_select(0, receivers), W)
        m = (sums.view(n, n_kinds, -1) * x_of[None]).sum(1)
        return block.lin(block.act(conv.lin2(m)))


def _lexicographically_positive(v: torch.Tensor) -> torch.Tensor:
    """v > 0 in lexicographic order (x, then y, then z): picks one of each self-image pair ±S·cell."""
    x, y, z = v.unbind(-1)
    return (x > 0) | ((x == 0) & ((y > 0) | ((y == 0) & (z > 0))))


def build(config: SchnetConfig, stats: ModelStats) -> Potential:
    """The SchNet potential for a dataset with ``stats.species`` (and reference energies)."""
    n_species = len(stats.species)
    if config.species_energy_shift:
        references = np.asarray(stats.reference_energies, np.float64)
    else:
        references = np.zeros(n_species)
    return Potential(SchNetEnergy(config, n_species), references)

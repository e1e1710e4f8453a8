"""MACE from mace-torch's own modules, fed by the core's periodic neighbour lists.

:class:`MaceEnergy` holds a ``mace.modules.MACE`` (its node embedding, radial embedding,
spherical harmonics, interaction and product blocks and readouts, with zero atomic energies E0)
and runs those blocks on an :class:`~mlffbench.backends.torch.potential.EdgeGraph`: the core's edge
vectors (already ``positions[receiver] - positions[sender] + shift``, mace's convention with
``edge_index = (sender, receiver)``), one-hot species as node attributes. It returns per-atom
energies; the per-species reference energies, forces (autograd), stress, loss and loop are the
framework's. What differs from mace-torch's own pipeline: docs/models/mace.md §5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlffbench.backends.torch.potential import EdgeGraph, Potential
from mlffbench.data.stats import ModelStats
from mlffbench_mace.config import MaceConfig
from mlffbench_mace.upstream import upstream


def build_mace(config: MaceConfig, atomic_numbers) -> torch.nn.Module:
    """mace-torch's ``MACE`` for ``config`` and the species table ``atomic_numbers`` (E0 = 0),
    built in float64 (see :mod:`mlffbench_mace.upstream`)."""
    with upstream() as up:
        modules, o3 = up.mace.modules, up.o3
        gates = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "abs": torch.abs}
        return modules.MACE(
            r_max=float(config.r_max),
            num_bessel=int(config.num_bessel),
            num_polynomial_cutoff=int(config.num_polynomial_cutoff),
            max_ell=int(config.max_ell),
            interaction_cls=modules.interaction_classes[config.interaction],
            interaction_cls_first=modules.interaction_classes[config.interaction_first],
            num_interactions=int(config.num_interactions),
            num_elements=len(atomic_numbers),
            hidden_irreps=o3.Irreps(config.hidden_irreps()),
            MLP_irreps=o3.Irreps(f"{config.mlp_channels}x0e"),
            atomic_energies=np.zeros(len(atomic_numbers)),
            avg_num_neighbors=float(config.avg_num_neighbors),
            atomic_numbers=[int(z) for z in atomic_numbers],
            correlation=int(config.correlation),
            gate=gates[config.gate],
            radial_MLP=list(config.radial_mlp),
            use_reduced_cg=False,  # mace-torch's training-script default (the class's is True)
        )


class MaceEnergy(torch.nn.Module):
    """Per-atom MACE energies of an :class:`~mlffbench.backends.torch.potential.EdgeGraph`."""

    def __init__(self, config: MaceConfig, atomic_numbers):
        super().__init__()
        self.n_species = len(atomic_numbers)
        self.mace = build_mace(config, atomic_numbers)
        # float64 copies of the constant floating buffers (Wigner-3j blocks, U matrices, Bessel
        # frequencies, ...): a cast (float32 and back, as the backend initialises) restores them
        # from these, so float64 never carries float32-rounded constants
        self._constants: dict[str, torch.Tensor] = {
            name: b.detach().clone() for name, b in self.mace.named_buffers() if b.is_floating_point()
        }

    def _apply(self, fn: Any, recurse: bool = True):
        out = super()._apply(fn, recurse)
        with torch.no_grad():
            for name, buf in self.mace.named_buffers():
                master = self._constants.get(name)
                if master is not None and buf.is_floating_point():
                    buf.copy_(master.to(device=buf.device, dtype=buf.dtype))
        return out

    def reset_parameters(self) -> None:
        """New weights from the global RNG, drawn as mace-torch's constructors draw them: standard
        normal (e3nn linears, tensor products, radial MLPs), divided by the number of coupling
        paths for the symmetric contractions' weights (e3nn's biases are empty here)."""
        with torch.no_grad():
            for name, p in self.mace.named_parameters():
                w = torch.randn(p.shape, dtype=torch.float32).to(dtype=p.dtype, device=p.device)
                if ".symmetric_contractions." in name:
                    w = w / p.shape[1]
                p.copy_(w)

    def forward(self, graph: EdgeGraph) -> torch.Tensor:
        m: Any = self.mace  # mace-torch's MACE: its blocks, called one by one
        vectors = graph.vectors
        node_attrs = torch.nn.functional.one_hot(graph.species, self.n_species).to(vectors.dtype)
        edge_index = torch.stack([graph.senders, graph.receivers])
        lengths = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
        heads = torch.zeros(node_attrs.shape[0], dtype=torch.int64, device=vectors.device)

        node_feats = m.node_embedding(node_attrs)
        edge_attrs = m.spherical_harmonics(vectors)
        edge_feats, cutoff = m.radial_embedding(lengths, node_attrs, edge_index, m.atomic_numbers)
        per_layer = []
        for i, (interaction, product) in enumerate(zip(m.interactions, m.products, strict=True)):
            node_feats, sc = interaction(
                node_attrs=node_attrs,
                node_feats=node_feats,
                edge_attrs=edge_attrs,
                edge_feats=edge_feats,
                edge_index=edge_index,
                cutoff=cutoff,
                first_layer=(i == 0),
            )
            node_feats = product(node_feats=node_feats, sc=sc, node_attrs=node_attrs)
            per_layer.append(node_feats)
        # one readout per interaction (linear, the last one an MLP); their sum is the atom's energy
        energy = torch.zeros(node_attrs.shape[0], dtype=vectors.dtype, device=vectors.device)
        for i, readout in enumerate(m.readouts):
            feats = per_layer[-1] if len(m.readouts) == 1 else per_layer[i]
            energy = energy + readout(feats, heads)[:, 0]
        return energy


def build(config: MaceConfig, stats: ModelStats) -> Potential:
    """The MACE potential for a dataset with ``stats.species`` (and its reference energies)."""
    references = np.asarray(stats.reference_energies, np.float64)
    return Potential(MaceEnergy(config, tuple(stats.species)), references)

"""Bridges to ``torch_geometric.nn.models.SchNet``: its weights, and its radius graph.

``params_from_pyg`` turns a PyG SchNet state dict into parameters of
:class:`mlffbench_schnet.model.SchNetEnergy` (the plugin's ``--init-from`` reads such a
file). ``radius_interaction_graph`` gives PyG's own ``RadiusInteractionGraph`` where
torch-geometric can build radius graphs (it needs the compiled ``pyg-lib`` package), else a
plain-torch graph with the same semantics, so that a stock PyG SchNet runs here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mlffbench.errors import ConfigError

_OWN_PREFIXES = ("interactions.", "lin1.", "lin2.")


def params_from_pyg(state_dict: Mapping[str, torch.Tensor], species: Sequence[int]) -> dict[str, torch.Tensor]:
    """Parameters of ``SchNetEnergy`` from a ``torch_geometric.nn.models.SchNet`` state dict.

    ``species``: the atomic numbers of the dataset's species table (row i of our embedding is
    row ``species[i]`` of PyG's atomic-number embedding). PyG's ``atomref`` and ``mean``/``std``
    have no counterpart (the backend adds per-species reference energies instead).
    """
    if "embedding.weight" not in state_dict:
        raise ConfigError("not a torch_geometric SchNet state dict (no 'embedding.weight')")
    if any(k.startswith("atomref") for k in state_dict):
        raise ConfigError(
            "PyG SchNet weights with an atomref are not supported (reference energies come from the data)"
        )
    table = state_dict["embedding.weight"]
    bad = [int(z) for z in species if not 0 < int(z) < table.shape[0]]
    if bad:
        raise ConfigError(f"atomic number {bad[0]} is outside the PyG embedding table ({table.shape[0]} rows)")
    out = {"embedding.weight": table[[int(z) for z in species]].clone()}
    for key, value in state_dict.items():
        # CFConv's filter network is the block's ``mlp`` (one module, two names): keep ``mlp``
        if key.startswith(_OWN_PREFIXES) and ".conv.nn." not in key:
            out[key] = value.clone()
    return out


def load_pyg_weights(path: Path, config, species: Sequence[int]) -> dict[str, torch.Tensor]:
    """``--init-from``: a file written by ``torch.save(pyg_schnet.state_dict(), path)``."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - one user-facing line for any unreadable file
        raise ConfigError(
            f"cannot read PyG SchNet weights from '{path}': not a file written by torch.save(state_dict) "
            f"({type(exc).__name__})"
        ) from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"'{path}' does not hold a state dict")
    params = params_from_pyg(state, species)
    blocks = {k.split(".")[1] for k in params if k.startswith("interactions.")}
    if len(blocks) != config.num_interactions:
        raise ConfigError(
            f"'{path}' has {len(blocks)} interaction blocks, the config asks for {config.num_interactions}"
        )
    return params


class DenseRadiusGraph(torch.nn.Module):
    """``RadiusInteractionGraph`` in plain torch: all pairs of one graph closer than ``cutoff``
    (no PBC, no self loops); per target atom only the first ``max_num_neighbors`` sources in
    index order are kept. Returns ``(edge_index, edge_weight)`` as PyG's does."""

    def __init__(self, cutoff: float = 10.0, max_num_neighbors: int = 32):
        super().__init__()
        self.cutoff = float(cutoff)
        self.max_num_neighbors = int(max_num_neighbors)

    def forward(self, pos: torch.Tensor, batch: torch.Tensor):
        counts = torch.bincount(batch)
        sources, targets = [], []
        start = 0
        for n in counts.tolist():
            if n:
                p = pos[start : start + n].detach()
                close = torch.linalg.vector_norm(p[:, None, :] - p[None, :, :], dim=-1) < self.cutoff
                close.fill_diagonal_(False)
                keep = close & (torch.cumsum(close, dim=1) <= self.max_num_neighbors)
                target, source = keep.nonzero(as_tuple=True)
                sources.append(source + start)
                targets.append(target + start)
            start += n
        edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
        row, col = edge_index
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)


def radius_interaction_graph(cutoff: float, max_num_neighbors: int = 32) -> torch.nn.Module:
    """PyG's ``RadiusInteractionGraph`` when pyg-lib is installed, else :class:`DenseRadiusGraph`."""
    import torch_geometric.typing
    from torch_geometric.nn.models.schnet import RadiusInteractionGraph

    if getattr(torch_geometric.typing, "WITH_RADIUS", False):
        return RadiusInteractionGraph(cutoff, max_num_neighbors)
    return DenseRadiusGraph(cutoff, max_num_neighbors)

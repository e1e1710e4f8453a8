"""mlip's own MACE / NequIP / ViSNet flax modules on mlffbench's edge graph.

:class:`MlipModel` turns the core's :class:`EdgeGraph` into an mlip ``Graph`` and runs the
mlip network on it; the network's per-node energies come back (padding atoms 0).

* Edge vectors: the core's (positions[receiver] − positions[sender] + shift), handed to mlip
  through its ``displ_fun`` hook, so mlip's ``graph.edge_vectors()`` returns exactly them and
  the core differentiates through them (forces, stress). Node positions are zeros (no mlip
  network reads them otherwise).
* Edge order: the core sorts edges by receiver; mlip's message-passing blocks want them sorted
  by sender (its default ``EdgeOrdering.SENDER``). The edges are permuted by a stable argsort
  of the senders inside the module (a gather, differentiable in the vectors).
* Padding: mlip's masks take the last graph of ``n_node`` as the padding graph, which is the
  core's convention (the last graph owns all padding atoms; padding edges join the last atom
  to itself). ``n_node`` is counted from ``graph_index``.
* Species: the core's species index i is atomic number ``species[i]`` (sorted, as mlip's
  ``allowed_atomic_numbers``); mlip maps atomic numbers back to the same indices.
* mlip's atomic energies and energy scaling are off (identity); the framework's per-species
  reference energies are added by :class:`Potential`.
* Parameters: mlip creates float32 parameters even with 64-bit JAX. They are held here as one
  pytree under ``mlip_network`` (the same tree as mlip's own ``{"params": {"mlip_network":
  …}}``), created in the config's dtype and cast to it at every call.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from mlffbench.backends.jax.models import init_params, make_module, param_shapes, reference_energies  # noqa: F401
from mlffbench.backends.jax.models import param_dtype as _param_dtype
from mlffbench.backends.jax.potential import EdgeGraph, Potential
from mlffbench.data.stats import ModelStats
from mlffbench.errors import ConfigError
from mlffbench_mlip.config import MaceJaxConfig, NequipJaxConfig, VisnetJaxConfig

CONFIGS = {"mace-jax": MaceJaxConfig, "nequip-jax": NequipJaxConfig, "visnet-jax": VisnetJaxConfig}


def _import_mlip():
    """mlip's models, imported on first use (building a model). Its dependencies (sympy, scipy)
    add warning filters of their own when imported: the filters are restored afterwards."""
    with warnings.catch_warnings():
        import mlip.data
        import mlip.graph
        import mlip.models
        import mlip.models.options
        import mlip.models.visnet.visnet_helpers
        from mlip.graph.graph import GraphEdges  # noqa: F401

    return mlip


# With 64-bit JAX, mlip's species lookup (mlip.models.blocks.SpeciesAssignmentBlock) scatters an
# int64 range into an int32 table; JAX warns about it at trace time. Nothing else is silenced.
_UPSTREAM_WARNINGS = (
    (
        r"scatter inputs have incompatible types: cannot safely cast value from dtype=int64 to dtype=int32",
        FutureWarning,
        r"jax\._src\.ops\.scatter",
    ),
)


@contextlib.contextmanager
def _quiet_upstream():
    """Ignores the known upstream warnings above (exact message and module) while mlip traces."""
    with warnings.catch_warnings():
        for message, category, module in _UPSTREAM_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


def model_name(config) -> str:
    for name, cls in CONFIGS.items():
        if type(config) is cls:
            return name
    raise TypeError(f"not an mlip plugin config: {type(config).__name__}")


def mlip_network(config, species) -> Any:
    """mlip's own network (``Mace`` / ``Nequip`` / ``Visnet``) for ``config`` and the atomic
    numbers ``species``: atomic energies off, no energy scaling."""
    mlip = _import_mlip()
    from mlip.models.options import Activation, RadialBasis, RadialEnvelope

    dataset_info = mlip.data.DatasetInfo(
        atomic_energies_map={int(z): 0.0 for z in species},
        graph_cutoff_angstrom=float(config.cutoff),
        avg_num_neighbors=float(getattr(config, "avg_num_neighbors", 1.0)),
        avg_r_min_angstrom=None,
        scaling_mean=0.0,
        scaling_stdev=1.0,
    )
    envelope = {"polynomial": RadialEnvelope.POLYNOMIAL, "soft": RadialEnvelope.SOFT}
    if isinstance(config, MaceJaxConfig):
        cfg = mlip.models.Mace.Config(
            num_layers=config.num_layers,
            num_channels=config.num_channels,
            l_max=config.l_max,
            node_symmetry=config.node_symmetry,
            correlation=config.correlation,
            residual_connection_first_layer=config.residual_connection_first_layer,
            num_rbf=config.num_rbf,
            readout_irreps=(f"{config.readout_hidden}x0e", "0e"),
            radial_mlp_hidden=list(config.radial_mlp_hidden),
            radial_envelope=envelope[config.radial_envelope],
            activation=Activation(config.activation),
            avg_num_neighbors=config.avg_num_neighbors,
            add_atomic_energies=False,
        )
        return mlip.models.Mace(config=cfg, dataset_info=dataset_info)
    if isinstance(config, NequipJaxConfig):
        cfg = mlip.models.Nequip.Config(
            num_layers=config.num_layers,
            target_irreps=config.target_irreps,
            l_max=config.l_max,
            num_rbf=config.num_rbf,
            radial_mlp_hidden=list(config.radial_mlp_hidden),
            radial_envelope=envelope[config.radial_envelope],
            avg_num_neighbors=config.avg_num_neighbors,
            add_atomic_energies=False,
        )
        return mlip.models.Nequip(config=cfg, dataset_info=dataset_info)
    if isinstance(config, VisnetJaxConfig):
        from mlip.models.visnet.visnet_helpers import VecNormType

        cfg = mlip.models.Visnet.Config(
            num_layers=config.num_layers,
            num_channels=config.num_channels,
            l_max=config.l_max,
            num_heads=config.num_heads,
            num_rbf=config.num_rbf,
            radial_basis=RadialBasis(config.radial_basis),
            vecnorm_type=VecNormType(config.vecnorm_type),
            activation=Activation(config.activation),
            add_atomic_energies=False,
        )
        return mlip.models.Visnet(config=cfg, dataset_info=dataset_info)
    raise TypeError(f"not an mlip plugin config: {type(config).__name__}")


def _given_vectors(vectors, senders_positions, receivers_positions, cell):
    """mlip's ``displ_fun``: the edge vectors the core computed."""
    del senders_positions, receivers_positions, cell
    return vectors


def to_mlip_graph(graph: EdgeGraph, atomic_numbers: jax.Array):
    """The mlip ``Graph`` of the core's edge graph, edges sorted by sender."""
    mlip = _import_mlip()
    from mlip.graph.graph import GraphEdges, GraphGlobals, GraphNodes

    order = jnp.argsort(graph.senders, stable=True)
    vectors = graph.vectors[order]
    n = graph.species.shape[0]
    if isinstance(graph.n_graphs, int):
        g = graph.n_graphs
        n_node = jax.ops.segment_sum(jnp.ones(n, jnp.int32), graph.graph_index, num_segments=g)
        n_edge = jax.ops.segment_sum(
            jnp.ones(graph.senders.shape[0], jnp.int32), graph.graph_index[graph.senders], num_segments=g
        )
    else:  # a traced graph count (e.g. a jitted init on a small example graph): one graph, all real
        g = 1
        n_node = jnp.asarray([n], jnp.int32)
        n_edge = jnp.asarray([graph.senders.shape[0]], jnp.int32)
    return mlip.graph.Graph(
        nodes=GraphNodes(atomic_numbers=atomic_numbers, positions=jnp.zeros((n, 3), vectors.dtype)),
        edges=GraphEdges(shifts=None, displ_fun=jax.tree_util.Partial(_given_vectors, vectors)),
        globals=GraphGlobals(cell=jnp.zeros((g, 3, 3), vectors.dtype), weight=jnp.ones(g, vectors.dtype)),
        n_node=n_node,
        n_edge=n_edge,
        senders=graph.senders[order],
        receivers=graph.receivers[order],
        ordering=mlip.graph.EdgeOrdering.SENDER,
    )


class MlipModel(nn.Module):
    """Per-atom energies (N,) of mlip's network for ``config`` on an :class:`EdgeGraph`.

    ``species``: the atomic numbers of the species indices (the dataset's sorted elements).
    """

    n_species: int
    config: Any
    species: tuple[int, ...] = ()
    sorted_receivers: bool = False  # unused: the edges are re-sorted by sender here

    @nn.compact
    def __call__(self, graph: EdgeGraph) -> jax.Array:
        pdt = _param_dtype(self.config)
        species = self.species or tuple(range(1, self.n_species + 1))
        network = mlip_network(self.config, species)
        table = jnp.asarray(species, jnp.int32)
        numbers = jnp.where(graph.atom_mask, table[jnp.clip(graph.species, 0, len(species) - 1)], 0)
        mlip_graph = to_mlip_graph(graph, numbers)

        def init(key):
            with _quiet_upstream():
                params = network.init(key, mlip_graph)["params"]
            return jax.tree_util.tree_map(
                lambda p: p.astype(pdt) if jnp.issubdtype(p.dtype, jnp.floating) else p, params
            )

        params = self.param("mlip_network", init)
        params = jax.tree_util.tree_map(lambda p: p.astype(pdt) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
        with _quiet_upstream():
            out = network.apply({"params": params}, mlip_graph)
        energy = out.nodes.features["energy"]
        return jnp.where(graph.atom_mask, energy, 0.0)


def make_model(config, species, sorted_receivers: bool = False) -> MlipModel:
    name = model_name(config)
    module = make_module(MlipModel, CONFIGS[name], name, config, len(species), sorted_receivers)
    return module.clone(species=tuple(int(z) for z in species))


def build(config, stats: ModelStats) -> Potential:
    """The backend-level potential: mlip's network on the core's graph, plus the dataset's
    per-species reference energies (``stats.reference_energies``)."""
    species = tuple(int(z) for z in stats.species)
    module = make_model(config, species, sorted_receivers=True)
    try:  # imports mlip and lets it validate its config now, not at the first trace
        mlip_network(config, species)
    except ValueError as bad:  # pydantic's ValidationError is a ValueError
        errors = getattr(bad, "errors", None)
        why = errors()[0]["msg"] if callable(errors) else str(bad)
        raise ConfigError(f"{model_name(config)}: mlip rejects the config: {' '.join(why.split())}") from None
    return Potential(module, reference_energies(stats, len(species), True, model_name(config)))

"""Specs that plugins register, and the registry that collects them from the hooks.

Hooks return specs, never instances: a model spec builds its model on demand, a
dataset card names files and a format, a format spec reads files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

from mlffbench.errors import UnknownNameError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from mlffbench.backends.jax.potential import Potential as JaxPotential
    from mlffbench.backends.torch.potential import Potential as TorchPotential
    from mlffbench.data.stats import ModelStats
    from mlffbench.data.structures import StructureSet
    from mlffbench.plugin.search_space import SearchSpace
    from mlffbench.tasks.base import TaskSpec

    # what a model spec's build returns: the potential of its backend
    BackendPotential: TypeAlias = JaxPotential | TorchPotential

FIT_KINDS = ("least-squares",)  # the fitted model kinds (ModelSpec.fit)

Config = TypeVar("Config", bound="DataclassInstance")  # a model's frozen config dataclass
Config_contra = TypeVar("Config_contra", bound="DataclassInstance", contravariant=True)


class WeightImporter(Protocol[Config_contra]):
    """``import_weights(path, config, species=...)``: released parameters (in the backend's
    form) for a model of ``config``, their species rows ordered as ``species`` (atomic
    numbers, the dataset statistics' species table; None: the file's own order)."""

    def __call__(
        self, path: Path, config: Config_contra, *, species: Sequence[int] | None = None
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ModelSpec(Generic[Config]):
    """A model a plugin offers.

    ``build(config, stats)`` returns the backend-level model (for the ``jax`` backend a
    :class:`mlffbench.backends.jax.potential.Potential`, for ``torch`` a
    :class:`mlffbench.backends.torch.potential.Potential`); ``stats`` is a
    :class:`mlffbench.data.stats.ModelStats` (the species table and reference energies).
    ``import_weights(path, config, species=stats.species)`` reads released parameters,
    ordered for the dataset's species. ``presets`` maps a dataset
    family (e.g. ``"ean"``, ``"ani1"``) to overrides of the model config and of the
    training config (keys ``"model"`` and ``"train"``). ``search_space`` is a
    :class:`mlffbench.plugin.search_space.SearchSpace` (typed dimensions and their mapping to model
    and training overrides) that ``mlffbench tune`` samples.

    ``fit``: "" for a model trained by the shared loop; ``"least-squares"`` for a fitted model,
    whose predictions are affine in its parameters: ``mlffbench run`` then solves the weighted
    linear least-squares problem on the training part in closed form (one step, see
    :mod:`mlffbench.training.fitted`) and writes the same run record. ``fit_options(config)``:
    the fit's settings from the model config (``ridge``: the relative ridge λ, default 1e-8).
    """

    name: str
    backend: str
    config_class: type[Config]
    build: Callable[[Config, ModelStats], BackendPotential]
    cutoff: Callable[[Config], float]
    description: str = ""
    presets: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    model_defaults: Mapping[str, Any] = field(default_factory=dict)
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: SearchSpace | None = None  # what `mlffbench tune` explores
    import_weights: WeightImporter[Config] | None = None
    # hard_cutoff(config): True where the model's energy is meant to jump when a pair crosses
    # its cutoff (a faithful hard cutoff); the conformance suite then reports the jump
    # instead of failing on it. None: the energy must be smooth.
    hard_cutoff: Callable[[Config], bool] | None = None
    fit: str = ""  # "" (trained) or one of FIT_KINDS (fitted in closed form)
    fit_options: Callable[[Config], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.fit and self.fit not in FIT_KINDS:
            raise ValueError(f"model '{self.name}': unknown fit '{self.fit}' (known: {', '.join(FIT_KINDS)})")

    def default_config(self, **overrides: Any) -> Config:
        return self.config_class(**overrides)


@dataclass(frozen=True)
class DataFile:
    """One original file of a dataset: path relative to the data directory."""

    path: str
    sha256: str
    url: str = ""
    role: str = ""  # "train" / "test" for datasets shipped with their own split


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is and where its files come from (one TOML card per dataset)."""

    name: str
    format: str
    files: tuple[DataFile, ...]
    units: Mapping[str, str]
    description: str = ""
    license: str = ""
    citation: str = ""
    family: str = ""
    split: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # where the card was defined (plugin or file)
    root: str = ""  # folder the file paths are relative to (a user's card); "" = the data directory

    def replace(self, **changes: Any) -> DatasetCard:
        return dataclasses.replace(self, **changes)

    def to_dict(self, record: bool = True) -> dict[str, Any]:
        """The card as a TOML-like table (``[units]``, ``[[files]]``, ...); ``record`` adds
        ``root`` and ``source`` so that :meth:`from_dict` gives the same card back (run records)."""
        out: dict[str, Any] = {"name": self.name, "format": self.format}
        for key in ("description", "license", "citation", "family"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["units"] = dict(self.units)
        if self.options:
            out["options"] = dict(self.options)
        if self.split:
            out["split"] = dict(self.split)
        out["files"] = [
            {k: v for k, v in dataclasses.asdict(f).items() if v or k in ("path", "sha256")} for f in self.files
        ]
        if record:
            out["root"], out["source"] = self.root, self.source
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<recorded card>") -> DatasetCard:
        """A card from :meth:`to_dict`'s table, validated like a card file."""
        from mlffbench.data.cards import card_from_dict

        return card_from_dict(dict(raw), source)


@dataclass(frozen=True)
class FormatSpec:
    """A file-format adapter: ``read(paths, card)`` returns a StructureSet in the card's units."""

    name: str
    read: Callable[[Sequence[Path], DatasetCard], StructureSet]
    description: str = ""


@dataclass
class Registry:
    """Everything registered by the loaded plugins, plus the problems met on the way."""

    models: dict[str, ModelSpec[Any]] = field(default_factory=dict)
    datasets: dict[str, DatasetCard] = field(default_factory=dict)
    formats: dict[str, FormatSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    provider: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, spec: ModelSpec[Any] | DatasetCard | FormatSpec | TaskSpec, plugin: str) -> None:
        table: dict[str, Any] = getattr(self, kind)
        if not getattr(spec, "name", None):
            self.problems.append(f"plugin '{plugin}' registered a {kind[:-1]} without a name")
            return
        if spec.name in table:
            first = self.provider[(kind, spec.name)]
            self.problems.append(
                f"plugin '{plugin}' registered duplicate {kind[:-1]} '{spec.name}' "
                f"(already registered by '{first}'); ignored"
            )
            return
        table[spec.name] = spec
        self.provider[(kind, spec.name)] = plugin

    def model(self, name: str) -> ModelSpec[Any]:
        return _lookup(self.models, name, "model")

    def dataset(self, name: str) -> DatasetCard:
        return _lookup(self.datasets, name, "dataset")

    def format(self, name: str) -> FormatSpec:
        return _lookup(self.formats, name, "format")

    def task(self, name: str) -> TaskSpec:
        return _lookup(self.tasks, name, "task")


_Entry = TypeVar("_Entry")


def _lookup(table: Mapping[str, _Entry], name: str, kind: str) -> _Entry:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none registered"
        raise UnknownNameError(f"unknown {kind} '{name}' (known: {known})") from None

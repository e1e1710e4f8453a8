"""Plugin discovery: entry points in the group ``mlffbench``, loaded lazily, once.

Built-in plugins (datasets, formats, the model packages under ``plugins/``) register
through the same entry-point group as third-party packages. ``MLFFBENCH_PLUGINS``
(comma-separated entry-point names) is an allow-list; ``MLFFBENCH_BLOCK_PLUGINS`` a
block-list. A plugin that fails to import is reported by name; the others still load.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from mlffbench.plugin import hookspecs
from mlffbench.plugin.registry import Registry

GROUP = "mlffbench"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...] = ()
    error: str = ""
    blocked: bool = False


@dataclass
class Plugins:
    manager: pluggy.PluginManager
    info: list[PluginInfo] = field(default_factory=list)
    registry: Registry = field(default_factory=Registry)


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _discover() -> Plugins:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allowed = _names_from_env("MLFFBENCH_PLUGINS")
    blocked = _names_from_env("MLFFBENCH_BLOCK_PLUGINS") or set()
    plugins = Plugins(manager=pm)
    seen: set[str] = set()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if ep.name in blocked or (allowed is not None and ep.name not in allowed):
            pm.set_blocked(ep.name)
            plugins.info.append(PluginInfo(ep.name, dist, version, blocked=True))
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            plugins.info.append(PluginInfo(ep.name, dist, version, error=message))
            plugins.registry.problems.append(f"plugin '{ep.name}' failed to load: {message}")
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(module) or ()))
        plugins.info.append(PluginInfo(ep.name, dist, version, hooks=hooks))
    pm.check_pending()
    _collect(plugins)
    return plugins


def _collect(plugins: Plugins) -> None:
    pm, registry = plugins.manager, plugins.registry
    for hook_name, kind in (
        ("mlffbench_formats", "formats"),
        ("mlffbench_datasets", "datasets"),
        ("mlffbench_models", "models"),
        ("mlffbench_tasks", "tasks"),
    ):
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            name = pm.get_name(impl.plugin) or "?"

            def register(spec, _kind=kind, _name=name):
                registry.add(_kind, spec, _name)

            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001 - reported by name, the other plugins go on
                message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                registry.problems.append(f"plugin '{name}' failed in {hook_name}: {message}")


@functools.cache
def get_plugins() -> Plugins:
    """Discover and load all plugins (once per process)."""
    return _discover()


def get_registry() -> Registry:
    return get_plugins().registry


def reset() -> None:
    """Forget loaded plugins (tests that install a package call this)."""
    get_plugins.cache_clear()

"""The plugin manager: built-in and third-party plugins load through one entry-point group.

Every plugin, including the ones shipped in ``plugins/``, is a ``keras_edge`` entry
point naming a module or a class (a class is instantiated once per run). Set
``KERAS_EDGE_PLUGINS`` to a comma-separated list of names to load only those, or to
an empty string to load none. The run's own features (``keras_edge.builtins``:
checkpoints, metrics.csv, TensorBoard, progress, early stopping, summary, plots) are
registered the same way, always, and turned off per recipe with ``plugins.disable``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import inspect
import os
import re
import sys

import pluggy

from keras_edge import __version__, _compat, hookspecs
from keras_edge.builtins import BUILTIN_PLUGINS
from keras_edge.errors import KerasEdgeError, PluginError, location
from keras_edge.fielddoc import describe_fields

GROUP = "keras_edge"


def entry_points() -> dict:
    """Installed plugins: name -> entry point (filtered by ``KERAS_EDGE_PLUGINS``)."""
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
    allowed = os.environ.get("KERAS_EDGE_PLUGINS")
    if allowed is not None:
        wanted = {n.strip() for n in allowed.split(",") if n.strip()}
        found = {n: ep for n, ep in found.items() if n in wanted}
    return found


BROKEN: dict = {}
"""Installed plugins that cannot be imported: name -> the reason (they are skipped)."""


@functools.cache
def _load(name: str, ep) -> object | None:
    """The plugin an entry point names, or None (recorded in BROKEN, warned once) when it cannot be imported."""
    try:
        return ep.load()
    except Exception as exc:
        BROKEN[name] = (f"plugin {name!r} cannot be imported: {type(exc).__name__}: {exc} at {location(exc)}; "
                        f"fix it, or uninstall the package providing entry point {ep.value!r}")
        print(f"warning: {BROKEN[name]} (skipped)", file=sys.stderr)
        return None


def builtin_plugins() -> dict:
    """Name -> class of each built-in plugin."""
    loaded = {}
    for name, target in BUILTIN_PLUGINS.items():
        module, _, attr = target.partition(":")
        loaded[name] = getattr(importlib.import_module(module), attr)
    return loaded


def plugin_objects(extra=None) -> dict:
    """Built-in, installed and ``extra`` plugins by name (classes not yet instantiated)."""
    objects = builtin_plugins()
    for name, ep in entry_points().items():
        if name in objects:
            raise PluginError(name, "load", f"the name is taken by a built-in plugin; rename entry point "
                              f"{ep.value!r} (to replace the built-in, disable it with plugins.disable)")
        loaded = _load(name, ep)
        if loaded is not None:
            objects[name] = loaded
    objects.update(extra or {})
    return objects


def plugin_catalog(extra=None) -> dict:
    """Plugin name -> its ``Options`` dataclass or ``None``, for recipe validation."""
    return {name: getattr(obj, "Options", None) for name, obj in plugin_objects(extra).items()}


def get_plugin_manager(extra=None) -> pluggy.PluginManager:
    """A fresh manager with every installed plugin (classes instantiated) registered.

    ``extra`` maps names to further plugin objects (as tests and library users add
    them). A hook implementation that matches no hook is an error (``check_pending``).
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name, obj in plugin_objects(extra).items():
        plugin = obj() if isinstance(obj, type) else obj
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise _validation_error(name, plugin, exc) from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise _validation_error(pm.get_name(exc.plugin) or "?", exc.plugin, exc) from exc
    _report_plugin_errors(pm)
    return pm


def _validation_error(name: str, plugin, exc) -> PluginError:
    """One line for a hook implementation pluggy refuses: a misspelt hook or a wrong argument."""
    hook = re.search(r"hook '(\w+)'", str(exc))
    hook = hook.group(1) if hook else "?"
    function = getattr(plugin, hook, None)
    where = f"{inspect.getsourcefile(function)}:{inspect.getsourcelines(function)[1]}" if callable(function) else "?"
    spec = getattr(hookspecs, hook, None)
    if spec is None:
        near = difflib.get_close_matches(hook, [h for h in dir(hookspecs) if hasattr(getattr(hookspecs, h), "keras_edge_spec")])
        hint = f"did you mean {near[0]!r}?" if near else "see docs/hooks.md for the hooks"
        return PluginError(name, hook, f"no such hook ({where}); {hint}")
    wrong = re.search(r"Argument\(s\) (\{.*?\})", str(exc))
    return PluginError(name, hook, f"argument(s) {wrong.group(1) if wrong else '?'} are not offered by this hook "
                       f"({where}); it offers {tuple(inspect.signature(spec).parameters)}")


def _report_plugin_errors(pm: pluggy.PluginManager) -> None:
    """Wrap every hook implementation so an exception names its plugin and hook."""
    for name in dir(pm.hook):
        caller = getattr(pm.hook, name)
        if not isinstance(caller, pluggy.HookCaller):
            continue
        for impl in caller.get_hookimpls():
            _compat.replace_hookimpl_function(impl, _named_errors(impl.function, impl.plugin_name, name))


def _named_errors(function, plugin: str, hook: str):
    if getattr(function, "_keras_edge_wrapped", False):
        return function
    source = getattr(getattr(function, "__code__", None), "co_filename", None)

    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except KerasEdgeError:
            raise  # already a message for the user (a plugin may raise RecipeError, say)
        except Exception as exc:
            raise PluginError(plugin, hook, f"{type(exc).__name__}: {exc} at {location(exc, source)}") from exc

    # No functools.wraps: its __wrapped__ makes autograph convert the wrong source when a
    # hook (loss_terms) is traced into the train step ("closure mismatch").
    wrapper.__name__, wrapper.__doc__ = function.__name__, function.__doc__
    wrapper._keras_edge_wrapped = True
    return wrapper


def call_impl(impl, **kwargs):
    """Call one hook implementation with just the keyword arguments it accepts."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def autouse_names(pm: pluggy.PluginManager) -> tuple[str, ...]:
    """Plugins that are active in every stage unless disabled (``autouse = True``)."""
    return tuple(n for n, p in pm.list_name_plugin() if getattr(p, "autouse", False))


def describe(pm: pluggy.PluginManager) -> list[dict]:
    """Name, hooks, version and options (type, default, help) of each plugin, and the
    installed ones that cannot be imported (``keras-edge plugins``)."""
    eps = entry_points()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin()):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        ep = eps.get(name)
        dist = getattr(ep, "dist", None)
        options = getattr(plugin, "Options", None)
        builtin = name in BUILTIN_PLUGINS
        rows.append({
            "name": name,
            "hooks": hooks,
            "version": __version__ if builtin else dist.version if dist else None,
            "package": "keras-edge" if builtin else dist.name if dist else None,
            "builtin": builtin,
            "autouse": bool(getattr(plugin, "autouse", False)),
            "options": describe_fields(options) if options else [],
            "uses_options": list(getattr(plugin, "uses_options", ())),
        })
    rows += [{"name": name, "broken": reason, "hooks": [], "version": None, "options": []}
             for name, reason in sorted(BROKEN.items())]
    return rows

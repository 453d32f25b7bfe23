"""Hook dispatch: the one place that calls hook implementations and checks what they return.

Only the plugins active in the current stage are called (``Recipe.active_plugins``).
Each implementation gets just the keyword arguments it names, plus ``options``: its
own plugin's validated ``Options`` instance (``None`` for a plugin without options).
"""

from __future__ import annotations

from typing import Any

import pluggy

from keras_edge import plugins as plugin_lib
from keras_edge.errors import PluginError


class Hooks:
    """Calls hooks on the plugins active in the stage set by ``for_stage``."""

    def __init__(self, pm: pluggy.PluginManager, recipe):
        self.pm, self.recipe = pm, recipe
        self.autouse = plugin_lib.autouse_names(pm)
        self.stage, self.options = None, {}
        self._impls: dict = {}
        self._defaults = {name: plugin.Options() for name, plugin in pm.list_name_plugin()
                          if isinstance(getattr(plugin, "Options", None), type)}

    def for_stage(self, stage) -> None:
        self.stage, self.options = stage, stage.options
        self._impls = {}

    def impls(self, name: str) -> list:
        """Active implementations of hook ``name`` in call order (tryfirst first, trylast last)."""
        if name not in self._impls:
            active = self.recipe.active_plugins(self.stage, self.autouse) if self.stage else ()
            self._impls[name] = [i for i in self.installed(name) if i.plugin_name in active]
        return self._impls[name]

    def installed(self, name: str) -> list:
        """Implementations of every installed plugin, active or not, in call order."""
        return list(reversed(getattr(self.pm.hook, name).get_hookimpls()))

    def has(self, name: str) -> bool:
        return bool(self.impls(name))

    def call(self, name: str, **kwargs) -> None:
        """Call every active implementation (lifecycle hooks)."""
        for impl in self.impls(name):
            self.call_impl(impl, kwargs)

    def each(self, name: str, **kwargs) -> list[tuple[str, Any]]:
        """``(plugin name, result)`` of each active implementation that returned something."""
        return self._results(self.impls(name), kwargs)

    def every(self, name: str, **kwargs) -> list[tuple[str, Any]]:
        """Like ``each``, on every installed plugin, active or not (``evaluate_extra``, resume)."""
        return self._results(self.installed(name), kwargs)

    def _results(self, impls: list, kwargs: dict) -> list[tuple[str, Any]]:
        results = [(impl.plugin_name, self.call_impl(impl, kwargs)) for impl in impls]
        return [(plugin, result) for plugin, result in results if result is not None]

    def first(self, name: str, **kwargs) -> tuple[str, Any] | None:
        """``(plugin name, result)`` of the first implementation that returns something."""
        for impl in self.impls(name):
            result = self.call_impl(impl, kwargs)
            if result is not None:
                return impl.plugin_name, result
        return None

    def load_states(self, states: dict, ctx) -> None:
        """Give each installed plugin its state saved by ``state_dict`` (resume)."""
        for impl in self.installed("load_state_dict"):
            if impl.plugin_name in states:
                self.call_impl(impl, {"ctx": ctx, "state": states[impl.plugin_name]})

    def call_impl(self, impl, kwargs: dict):
        name = impl.plugin_name
        options = self.options.get(name) or self._defaults.get(name)  # defaults: a recipe parsed elsewhere
        return plugin_lib.call_impl(impl, options=options, **kwargs)


def checked(plugin: str, hook: str, result, expected, fix: str):
    """``result`` if it is an instance of ``expected``; else a PluginError naming plugin and hook."""
    if not isinstance(result, expected):
        raise PluginError(plugin, hook, f"returned {type(result).__name__}; {fix}")
    return result

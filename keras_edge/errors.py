"""Errors that the CLI reports as one line and exit code 2."""


class KerasEdgeError(Exception):
    """A problem the user can fix; the message names it and says how."""


class RecipeError(KerasEdgeError):
    """A recipe or override is invalid."""


class DataError(KerasEdgeError):
    """A dataset cannot be found, read or downloaded."""


class PluginError(KerasEdgeError):
    """A plugin failed inside a hook, or returned something the loop cannot use."""

    def __init__(self, plugin: str, hook: str, problem: str):
        self.plugin, self.hook = plugin, hook
        super().__init__(f"plugin {plugin!r} failed in hook {hook!r}: {problem}")


class TrainingError(KerasEdgeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped a run; the CLI says how to resume and exits with 130.

    Not a ``KeyboardInterrupt``, which click would turn into a bare "Aborted"."""

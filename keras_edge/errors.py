"""Errors that the CLI reports as one line and exit code 2."""

import traceback


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


def user_error(exc: BaseException) -> "KerasEdgeError | None":
    """The KerasEdgeError that ``exc`` is or was raised from (TensorFlow wraps errors raised
    while it traces a hook into ``StagingError`` and the like), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KerasEdgeError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def location(exc: BaseException, prefer_file: str | None = None) -> str:
    """``file:line`` where ``exc`` arose: its deepest frame in ``prefer_file`` if any, else its deepest."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    from keras_edge._compat import traced_frames

    frames = traced_frames(exc) or [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
    own = [f for f in frames if f[0] == prefer_file]
    frame = (own or frames or [None])[-1]
    return f"{frame[0]}:{frame[1]}" if frame else "?"

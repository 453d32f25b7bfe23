"""keras-edge: a plugin-based Keras 3 trainer for edge devices."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("keras_edge")
"""Marker for hook implementations: decorate a function or method with ``@hookimpl``."""

"""Every use of a private API of Keras, TensorFlow or pluggy, in one place.

Each function has a test in ``tests/test_compat.py`` that fails loudly when an upgrade
removes or changes what it relies on.
"""

from __future__ import annotations


def all_layers(model) -> list:
    """Every layer of ``model``, nested ones included (Keras: ``Layer._flatten_layers``)."""
    return list(model._flatten_layers())


def nodes_by_depth(model) -> dict:
    """A functional model's graph nodes by depth (Keras: ``Functional._nodes_by_depth``)."""
    return model._nodes_by_depth


def is_functional_graph(model) -> bool:
    """Whether ``model`` is a Keras functional graph that ``run_through_graph`` can run."""
    return hasattr(model, "_run_through_graph") and hasattr(model, "_nodes_by_depth")


def sequential_graph(model):
    """The functional graph a built ``keras.Sequential`` runs (Keras: ``Sequential._functional``);
    ``None`` before it is built."""
    return getattr(model, "_functional", None)


def run_through_graph(model, inputs, operation_fn):
    """Run a functional model's graph, calling ``operation_fn(op)`` for each operation
    (Keras: ``Functional._run_through_graph``)."""
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def producer(tensor):
    """The layer that produced a symbolic Keras tensor (Keras: ``KerasTensor._keras_history``)."""
    return tensor._keras_history.operation


def replace_hookimpl_function(impl, function) -> None:
    """Make pluggy call ``function`` for the hook implementation ``impl``
    (pluggy: ``HookImpl.function`` is a plain attribute the caller reads at each call)."""
    impl.function = function


def traced_frames(exc) -> list[tuple[str, int]]:
    """``(file, line)`` frames of the user's code where ``exc`` arose inside a function that
    TensorFlow's autograph converted (its traceback shows generated files instead);
    empty for other exceptions (autograph: ``ag_error_metadata.translated_stack``)."""
    metadata = getattr(exc, "ag_error_metadata", None)
    stack = getattr(metadata, "translated_stack", None) or ()
    return [(frame.filename, frame.lineno) for frame in stack]


def tflite_schema():
    """TensorFlow's generated Python reader of the TFLite flatbuffer schema."""
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def op_determinism_enabled() -> bool:
    """Whether ``tf.config.experimental.enable_op_determinism()`` is in effect (TensorFlow has
    no public getter: ``tensorflow.python.framework.config.is_op_determinism_enabled``)."""
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()

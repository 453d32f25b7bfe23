"""Each private API keras-edge relies on (all in keras_edge/_compat.py) still works:
these fail loudly after a Keras, TensorFlow or pluggy upgrade that changes one."""

import keras
import pluggy

from keras_edge import _compat


def functional():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    inner = keras.Sequential([keras.layers.Dense(2, name="inner")], name="block")
    return keras.Model(inputs, inner(hidden)), hidden


def test_all_layers_includes_nested_ones():
    model, _ = functional()
    names = {layer.name for layer in _compat.all_layers(model)}
    assert {"hidden", "block", "inner"} <= names


def test_nodes_by_depth_and_run_through_graph():
    model, _ = functional()
    assert _compat.is_functional_graph(model) and len(_compat.nodes_by_depth(model)) >= 3
    seen = []

    def operation_fn(op):
        seen.append(op.name)
        return op

    out = _compat.run_through_graph(model, keras.ops.ones((1, 4)), operation_fn)
    assert tuple(out.shape) == (1, 2) and {"hidden", "block"} <= set(seen)


def test_producer_of_a_symbolic_tensor():
    _, hidden = functional()
    assert _compat.producer(hidden).name == "hidden"


def test_a_hookimpl_function_can_be_replaced():
    spec = pluggy.HookspecMarker("t")
    impl = pluggy.HookimplMarker("t")

    class Specs:
        @spec
        def ping(self, x):
            pass

    class Plugin:
        @impl
        def ping(self, x):
            return x

    pm = pluggy.PluginManager("t")
    pm.add_hookspecs(Specs)
    pm.register(Plugin())
    (hookimpl,) = pm.hook.ping.get_hookimpls()
    _compat.replace_hookimpl_function(hookimpl, lambda x: x * 10)
    assert pm.hook.ping(x=2) == [20]


def test_tflite_schema_reads_models():
    schema = _compat.tflite_schema()
    assert hasattr(schema, "Model") and hasattr(schema, "BuiltinOperator")


def test_traced_frames_point_at_the_users_code():
    import tensorflow as tf

    def user_code(x):
        raise ValueError("in user code")

    try:
        tf.function(user_code)(tf.constant(1.0))
    except ValueError as exc:
        frames = _compat.traced_frames(exc)
    assert frames and frames[-1] == (__file__, user_code.__code__.co_firstlineno + 1)


def test_a_built_sequential_runs_through_its_functional_graph():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="only")])
    graph = _compat.sequential_graph(model)
    assert _compat.is_functional_graph(graph)
    seen = []
    out = _compat.run_through_graph(graph, keras.ops.ones((1, 4)), lambda op: seen.append(op.name) or op)
    assert tuple(out.shape) == (1, 2) and seen == ["only"]



def test_op_determinism_is_read():
    import subprocess
    import sys

    code = ("import tensorflow as tf; from keras_edge import _compat; before = _compat.op_determinism_enabled(); "
            "tf.config.experimental.enable_op_determinism(); print(before, _compat.op_determinism_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]

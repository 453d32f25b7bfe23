"""TrainerModule -> TFLite flatbuffer, and what ops a flatbuffer uses."""

from __future__ import annotations

import collections
import contextlib
import tempfile

import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from keras_edge._compat import tflite_schema
from keras_edge.errors import KerasEdgeError

schema = tflite_schema()

_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


@contextlib.contextmanager
def saved_model_converter(module, signatures):
    """A TFLite converter for ``module`` saved with ``signatures`` (name -> concrete function)."""
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures=signatures,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        yield tf.lite.TFLiteConverter.from_saved_model(saved)


def to_tflite(module, flex=False) -> bytes:
    """Convert ``module``'s signatures; builtin ops only unless ``flex``."""
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS] + ([tf.lite.OpsSet.SELECT_TF_OPS] if flex else [])
    with saved_model_converter(module, module.signatures(flex=flex)) as converter:
        converter.target_spec.supported_ops = ops
        converter.experimental_enable_resource_variables = True
        try:
            tflite = converter.convert()
        except Exception as exc:  # the converter raises several types; all mean the same here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KerasEdgeError(f"TFLite conversion failed: {first}; try --flex to allow TensorFlow ops") from exc
    empty = [name for name, inputs in signature_inputs(tflite).items() if not inputs]
    if empty:  # TFLite's Java runSignature throws for an empty input map
        raise KerasEdgeError(f"signatures {empty} have no input; Android apps could not call them")
    return tflite


def signature_inputs(tflite: bytes) -> dict[str, list[str]]:
    """The input names of each signature of a flatbuffer."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    return {_text(sig.signatureKey): [_text(t.name) for t in sig.inputs or []] for sig in model.signatureDefs or []}


def min_runtime_version(tflite: bytes) -> str:
    """The converter's ``min_runtime_version`` metadata: the oldest TFLite runtime that
    has every operator version the flatbuffer uses."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    for entry in model.metadata or []:
        if _text(entry.name) == "min_runtime_version":
            return bytes(model.buffers[entry.buffer].data).rstrip(b"\0").decode()
    return ""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def op_counts(tflite: bytes) -> collections.Counter:
    """How many times each operator occurs in a flatbuffer (all subgraphs): builtins by
    name, custom (Flex) ops by their code."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    names = []
    for code in model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode))
        else:
            names.append(_BUILTIN_NAMES[builtin])
    return collections.Counter(names[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators or [])


def op_names(tflite: bytes) -> set[str]:
    """Names of the operators a flatbuffer uses."""
    return set(op_counts(tflite))


def flex_ops(tflite: bytes) -> set[str]:
    """The Flex (Select TensorFlow) ops a flatbuffer needs."""
    return {name for name in op_names(tflite) if name.startswith("Flex")}

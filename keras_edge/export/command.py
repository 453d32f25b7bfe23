"""``keras-edge export RUN_DIR``: a finished run's model as a TFLite on-device trainer."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

import keras_edge.models  # noqa: F401  (registers the zoo's BatchNorm class, so saved zoo models load)
from keras_edge import io
from keras_edge.errors import KerasEdgeError


def load_selection(path) -> dict:
    """``{variable.path: 0/1 mask}`` from a selection ``.npz`` (written by the NEq plugins)."""
    try:
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as exc:
        raise KerasEdgeError(f"cannot read the selection {path}: {exc}; pass an .npz of 0/1 masks "
                             "keyed by Keras variable path, or --no-selection") from exc


def export_run(run_dir, out=None, *, batch_size=32, learning_rate=0.0001, momentum=0.9, selection="auto",
               runtime_masks=False, flex=False, int8=False, calibration_size=256, qat_epochs=0) -> dict:
    """Export RUN_DIR/model.keras; returns the report also written to ``<out>.json``.

    ``selection``: ``"auto"`` (RUN_DIR/selection.npz when present), ``None`` (train
    everything) or a path. ``qat_epochs`` > 0 (with ``int8``) also fine-tunes a
    quantisation-aware tf_keras twin for that many epochs and writes ``<out>_qat_int8.tflite``.
    """
    import keras

    from keras_edge.export.convert import flex_ops, min_runtime_version, op_names, signature_inputs, to_tflite
    from keras_edge.export.trainer_module import TrainerModule

    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise KerasEdgeError(f"{model_path} not found; pass the folder of a finished `keras-edge run`")
    out = Path(out) if out else run_dir / "model.tflite"
    if out.is_dir():
        raise KerasEdgeError(f"--out {out} is a folder; give a file name such as {out / 'model.tflite'}")
    try:  # before the conversion, so an impossible --out fails at once
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KerasEdgeError(f"cannot write {out}: {exc.strerror}; choose another --out") from None
    if selection == "auto":
        selection = run_dir / "selection.npz" if (run_dir / "selection.npz").is_file() else None
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as exc:  # Keras raises many types for unreadable or custom models
        raise KerasEdgeError(f"cannot load {model_path}: {exc}; export a model built from keras_edge.models") from exc
    module = TrainerModule(model, batch_size=batch_size, learning_rate=learning_rate, momentum=momentum,
                           selection=None if selection is None else load_selection(selection),
                           runtime_masks=runtime_masks)
    tflite = to_tflite(module, flex=flex)
    io.write_bytes(out, tflite)
    report = {**module.describe(), "file": str(out), "bytes": len(tflite), "selection": str(selection or ""),
              "signatures": signature_inputs(tflite), "min_runtime_version": min_runtime_version(tflite),
              "flex_ops": sorted(flex_ops(tflite)), "ops": sorted(op_names(tflite))}
    if int8:
        report["int8"] = _export_int8(module, tflite, run_dir, out, calibration_size, model, qat_epochs)
    io.write_text(Path(f"{out}.json"), json.dumps(report, indent=2) + "\n")
    return report


def _export_int8(module, tflite, run_dir, out, calibration_size, model, qat_epochs):
    """Write the int8 inference model (and with ``qat_epochs`` the QAT one) and compare
    their test accuracy in LiteRT with the float model's."""
    from keras_edge.data import load_data, to_float
    from keras_edge.export.quantize import inference_model, litert_accuracy
    from keras_edge.recipe import load_recipe

    data_config = load_recipe(run_dir / "recipe.toml").stages[-1].data
    data = load_data(data_config)
    pick = np.random.default_rng(0).permutation(len(data.x_train))[:calibration_size]
    int8 = inference_model(module, to_float(data.x_train[pick]))
    path = out.with_name(f"{out.stem}_int8.tflite")
    io.write_bytes(path, int8)
    x_test = to_float(data.x_test)
    float_acc, int8_acc = litert_accuracy(tflite, x_test, data.y_test), litert_accuracy(int8, x_test, data.y_test)
    report = {"file": str(path), "bytes": len(int8), "float_inference_bytes": len(inference_model(module)),
              "float_test_accuracy": float_acc, "int8_test_accuracy": int8_acc,
              "accuracy_change": int8_acc - float_acc, "calibration_images": int(len(pick)),
              "test_images": int(len(x_test))}
    if qat_epochs:
        from keras_edge.export.qat import QAT_LEARNING_RATE, qat_int8_model

        qat, gap = qat_int8_model(model, to_float(data.x_train), data.y_train, epochs=qat_epochs,
                                  batch_size=data_config.batch_size, check_images=x_test[:64])
        qat_path = out.with_name(f"{out.stem}_qat_int8.tflite")
        io.write_bytes(qat_path, qat)
        qat_acc = litert_accuracy(qat, x_test, data.y_test)
        report["qat"] = {"file": str(qat_path), "bytes": len(qat), "epochs": qat_epochs,
                         "learning_rate": QAT_LEARNING_RATE, "twin_max_abs_difference": gap,
                         "test_accuracy": qat_acc, "accuracy_change": qat_acc - float_acc}
    return report


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output .tflite (default: RUN_DIR/model.tflite); a .json report is written beside it.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Fixed batch size of the train signature.")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=0.0001, show_default=True,
              help="Default rate of train (an app may pass another per step); see docs/deploy.md before raising it.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True)
@click.option("--selection", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Train only these neurons: .npz of 0/1 masks by variable path (default: RUN_DIR/selection.npz if present).")
@click.option("--no-selection", is_flag=True, help="Train every weight even if RUN_DIR/selection.npz exists.")
@click.option("--runtime-masks", is_flag=True, help="Add a `masks` input to train so the device can change the selection.")
@click.option("--flex", is_flag=True, help="Also add the official guide's save/restore signatures (need the Flex delegate).")
@click.option("--int8", is_flag=True, help="Also write <out>_int8.tflite (post-training quantised inference) and report its accuracy.")
@click.option("--qat-epochs", type=click.IntRange(0), default=0, show_default=True,
              help="With --int8: also fine-tune a quantisation-aware tf_keras twin (tensorflow-model-optimization) "
                   "for N epochs on the run's data and write <out>_qat_int8.tflite.")
def export(run_dir, out, batch_size, learning_rate, momentum, selection, no_selection, runtime_masks, flex, int8,
           qat_epochs):
    """Export RUN_DIR's model as a TFLite model that trains on the device.

    Signatures: train(x, y, sample_weight, learning_rate[, masks]), infer(x),
    get_weights(dummy), set_weights(weights, fingerprint); builtin ops only unless
    --flex. See docs/deploy.md.
    """
    if no_selection and selection:
        raise KerasEdgeError("--selection and --no-selection contradict each other; pass one")
    if qat_epochs and not int8:
        raise KerasEdgeError("--qat-epochs needs --int8 (quantisation-aware training makes an int8 model); add --int8")
    report = export_run(run_dir, out, batch_size=batch_size, learning_rate=learning_rate, momentum=momentum,
                        selection=None if no_selection else (selection or "auto"),
                        runtime_masks=runtime_masks, flex=flex, int8=int8, qat_epochs=qat_epochs)
    click.echo(f"wrote {report['file']} ({report['bytes']:,} bytes, {len(report['flex_ops'])} Flex ops, "
               f"{report['trained_parameters']:,} of {report['trainable_parameters']:,} parameters train on the device)")
    if int8:
        q = report["int8"]
        click.echo(f"wrote {q['file']} ({q['bytes']:,} bytes): test accuracy {q['float_test_accuracy']:.4f} float, "
                   f"{q['int8_test_accuracy']:.4f} int8 ({q['accuracy_change']:+.4f})")
        if "qat" in q:
            a = q["qat"]
            click.echo(f"wrote {a['file']} ({a['bytes']:,} bytes): test accuracy {a['test_accuracy']:.4f} after "
                       f"{a['epochs']} QAT epoch(s) ({a['accuracy_change']:+.4f} against float)")

"""The run's own features as plugins on the public hooks, registered like third-party
plugins and active in every stage (``autouse``); ``plugins.disable = ["<name>"]`` in a
recipe turns one off, and a third-party plugin may take its place.

=================  ==========================================================
``checkpoints``    ``RUN/checkpoints/`` after every epoch (``on_checkpoint``)
``metrics_csv``    ``RUN/metrics.csv``, one row per epoch (``on_epoch_end``)
``tensorboard``    ``RUN/tensorboard/`` scalars per epoch (``on_epoch_end``)
``progress``       the progress bar and one line per epoch (``on_step_end``)
``early_stopping`` ends a stage after ``train.early_stopping_patience`` epochs
                   without a better ``val_accuracy`` (sets ``ctx.stop_stage``)
``summary``        ``RUN/model.keras`` and ``RUN/summary.json`` (``on_run_end``)
``plots``          ``RUN/training_curves.png`` (``on_run_end``)
``keras_callbacks`` Keras callbacks named in the recipe or passed from Python
``inplace_distillation`` later subnets learn the first's prediction (``loss_terms``)
=================  ==========================================================
"""

BUILTIN_PLUGINS = {
    "checkpoints": "keras_edge.builtins.checkpoints:Checkpoints",
    "metrics_csv": "keras_edge.builtins.metrics_csv:MetricsCsv",
    "tensorboard": "keras_edge.builtins.tensorboard:TensorBoard",
    "progress": "keras_edge.builtins.progress:Progress",
    "early_stopping": "keras_edge.builtins.early_stopping:EarlyStopping",
    "summary": "keras_edge.builtins.summary:Summary",
    "plots": "keras_edge.builtins.plots:Plots",
    "keras_callbacks": "keras_edge.builtins.keras_callbacks:KerasCallbacks",
    "inplace_distillation": "keras_edge.builtins.inplace_distillation:InplaceDistillation",
}

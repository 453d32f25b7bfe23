"""``tf.distribute`` strategies selected by ``train.distribute``."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_edge.errors import RecipeError

CPU_DEVICES_ENV = "KERAS_EDGE_CPU_DEVICES"


def configure_cpu_devices() -> None:
    """Split the CPU into ``$KERAS_EDGE_CPU_DEVICES`` logical devices (before TF starts).

    This lets ``mirrored`` run several replicas on a machine without GPUs.
    """
    count = int(os.environ.get(CPU_DEVICES_ENV, "0") or 0)
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_strategy(kind: str) -> tf.distribute.Strategy:
    """``none``: the default strategy; ``mirrored``: every GPU, else every logical CPU
    device; ``multi_worker``: ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``."""
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if "TF_CONFIG" not in os.environ:
        raise RecipeError("train.distribute = 'multi_worker' needs the TF_CONFIG environment variable "
                          "(cluster and task of this worker); see the README's 'Several machines'")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as exc:
        raise RecipeError(f"TF_CONFIG is not valid JSON ({exc}); fix the environment variable") from exc
    return tf.distribute.MultiWorkerMirroredStrategy()


def distributed_batches(strategy, data, batch_size: int, seed: int, epoch: int, augment):
    """The epoch's training batches, split over the strategy's replicas when there are several."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return data.train_dataset(batch_size, seed, epoch, augment)
    return strategy.distribute_datasets_from_function(
        lambda input_ctx: data.train_dataset(batch_size, seed, epoch, augment, replicas,
                                             input_ctx.input_pipeline_id, input_ctx.num_input_pipelines))

"""The elastic supernet: one trace for every subnet, extraction, MACs, BatchNorm recalibration, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_edge.errors import KerasEdgeError
from keras_edge.models import count_macs
from keras_edge_deps.extract import calibrate_bn, extract, predict_logits
from keras_edge_deps.supernet import ElasticMobileNet

SMALL = dict(stage_widths=(8, 16), stage_strides=(2, 1), stage_activations=("relu", "hard_swish"), head_width=32,
             depths=(1, 2), kernels=(3, 5), expands=(2, 3))


@pytest.fixture(scope="module")
def supernet():
    keras.utils.set_random_seed(0)
    return ElasticMobileNet((16, 16, 1), 4, **SMALL)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((24, 16, 16, 1), np.float32)


def configs(space):
    rng = np.random.default_rng(1)
    return [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(2)]


def test_any_subnet_runs_through_one_trace(supernet, images):
    traces = []

    @tf.function
    def run(x, config):
        traces.append(1)
        return supernet(x, training=True, subnet=config)

    shapes = {tuple(run(images, tf.constant(c)).shape) for c in configs(supernet.space)}
    assert shapes == {(24, 4)} and len(traces) == 1


def test_largest_subnet_equals_full_model(supernet, images):
    full = supernet(images).numpy()
    assert np.abs(supernet(images, subnet=supernet.space.largest()).numpy() - full).max() < 1e-6
    assert np.abs(supernet(images, subnet=supernet.space.smallest()).numpy() - full).max() > 1e-4


@pytest.mark.parametrize("index", range(4))
def test_extracted_subnet_equals_supernet(supernet, images, index):
    config = configs(supernet.space)[index]
    calibrate_bn(supernet, config, [images[:12], images[12:]])
    subnet = extract(supernet, config)
    assert np.abs(subnet(images).numpy() - predict_logits(supernet, config, images)).max() <= 1e-5
    assert count_macs(subnet) == supernet.subnet_macs(config)


def test_smaller_subnets_cost_fewer_macs(supernet):
    space = supernet.space
    assert supernet.subnet_macs(space.smallest()) < supernet.subnet_macs(space.sample(np.random.default_rng(2))) \
        <= supernet.subnet_macs(space.largest()) == count_macs(supernet)


def test_smaller_kernel_is_transformed_centre_of_larger(supernet):
    block = supernet.blocks[0][0]
    big = block.kernel_for(5).numpy()
    assert block.kernel_for(5).shape == (5, 5, block.in_channels * 3, 1)
    assert np.allclose(block.kernel_for(tf.constant(5)).numpy(), big)
    np.testing.assert_allclose(block.kernel_for(3).numpy(), big[1:4, 1:4] @ np.eye(1), atol=1e-6)  # identity at start
    np.testing.assert_allclose(block.kernel_for(tf.constant(3)).numpy(), block.kernel_for(3).numpy(), atol=1e-6)


def test_calibration_sets_batchnorm_to_mean_of_batch_statistics(supernet, images):
    batches = [images[:8], images[8:16], images[16:]]
    calibrate_bn(supernet, None, batches)
    stats = [tf.nn.moments(supernet.stem_conv(b), [0, 1, 2]) for b in batches]
    np.testing.assert_allclose(supernet.stem_bn.moving_mean.numpy(), np.mean([m for m, _ in stats], 0), atol=1e-5)
    np.testing.assert_allclose(supernet.stem_bn.moving_variance.numpy(), np.mean([v for _, v in stats], 0),
                               rtol=1e-4, atol=1e-6)


def test_subnet_training_leaves_moving_statistics_alone(supernet, images):
    before = [v.numpy() for v in supernet.non_trainable_variables]
    supernet(images, training=True, subnet=supernet.space.smallest())
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, supernet.non_trainable_variables))
    supernet(images, training=True)
    assert not np.array_equal(before[0], supernet.non_trainable_variables[0].numpy())


def test_save_and_load_keep_every_subnet(supernet, images, tmp_path):
    supernet.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    for config in (None, supernet.space.smallest()):
        np.testing.assert_allclose(loaded(images, subnet=config), supernet(images, subnet=config), atol=1e-6)


def test_bad_config_is_a_clear_error(supernet):
    with pytest.raises(KerasEdgeError, match="expects"):
        supernet.subnet_macs([2, 2])
    bad = supernet.space.largest().copy()
    bad[-1] = 7
    with pytest.raises(KerasEdgeError, match="expand values \\[7\\]"):
        supernet.space.check(bad)


def test_extracted_subnet_runs_in_litert_with_equal_outputs(supernet, images):
    from ai_edge_litert.interpreter import Interpreter

    from keras_edge_deps.latency import inference_tflite, latency_ms

    subnet = extract(supernet, supernet.space.smallest())
    interpreter = Interpreter(model_content=inference_tflite(subnet))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], images[:1])
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), subnet(images[:1]).numpy(), atol=1e-4)
    assert 0 < latency_ms(subnet, runs=5) < 1000


def test_the_supernet_meets_the_core_model_protocols(supernet):
    from keras_edge import _compat
    from keras_edge.models import BUILTIN_MODELS
    from keras_edge.protocols import ElasticModel, SynchronizableNorm

    assert isinstance(supernet, ElasticModel)
    assert any(isinstance(layer, SynchronizableNorm) for layer in _compat.all_layers(supernet))
    assert not isinstance(BUILTIN_MODELS["small_cnn"]((8, 8, 1), 2), ElasticModel)

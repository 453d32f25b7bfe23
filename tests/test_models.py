import keras
import numpy as np
import pytest

from keras_edge.errors import RecipeError
from keras_edge.models import BUILTIN_MODELS, build_model, count_macs, count_params
from keras_edge.recipe import ModelConfig


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_zoo_builds_for_both_input_sizes(name, shape):
    model = build_model(ModelConfig(name=name, width=0.5), shape, 7)
    out = model(np.zeros((2, *shape), np.float32))
    assert out.shape == (2, 7)
    assert model.layers[-1].name == "classifier"
    assert count_macs(model) > 0


def test_width_scales_parameters():
    narrow = count_params(build_model(ModelConfig(name="vgg", width=0.5), (32, 32, 3), 10))
    wide = count_params(build_model(ModelConfig(name="vgg", width=1.0), (32, 32, 3), 10))
    assert 3 < wide / narrow < 4.2


def test_macs_match_a_hand_count():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="valid")(inputs)          # 6*6*3*3*3*4 = 3888
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)           # 6*6*3*3*4 = 1296
    x = keras.layers.Conv2D(6, 1, strides=2)(x)                      # 3*3*4*6 = 216
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)                               # 54*5 = 270
    model = keras.Model(inputs, outputs)
    assert count_macs(model) == 3888 + 1296 + 216 + 270
    assert count_params(model) == (3 * 3 * 3 * 4 + 4) + (3 * 3 * 4 + 4) + (4 * 6 + 6) + (54 * 5 + 5)


def test_vgg_exact_widths():
    model = build_model(ModelConfig(name="vgg", options={"widths": [3, 5, 7, 9, 11, 13]}), (28, 28, 1), 10)
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 7)] == [3, 5, 7, 9, 11, 13]


def test_bad_model_names_and_options():
    with pytest.raises(RecipeError, match="unknown model 'nope'; choose one of"):
        build_model(ModelConfig(name="nope"), (28, 28, 1), 10)
    with pytest.raises(RecipeError, match="model.options: .*unexpected keyword argument 'bogus'"):
        build_model(ModelConfig(name="vgg", options={"bogus": 1}), (28, 28, 1), 10)


def test_a_saved_zoo_model_loads_where_keras_edge_loads_models(tmp_path):
    import subprocess
    import sys

    model = BUILTIN_MODELS["small_cnn"]((12, 12, 1), 4, width=0.25)
    model.save(tmp_path / "model.keras")
    code = ("import keras, keras_edge.checkpoint; "
            f"print(type(keras.saving.load_model({str(tmp_path / 'model.keras')!r}).layers[2]).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "keras_edge.models.batch_norm"

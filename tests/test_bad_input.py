"""Table-driven bad input: each case exits with code 2 and one line naming the problem and
the fix, prints no traceback, and leaves no model or half-written file behind."""

import pytest

from tests.test_cli import TINY_TOML as BASE
from tests.test_cli import run_cli


# (id, recipe text or None for "no file", extra CLI arguments, expected fragment)
CASES = [
    ("missing-file", None, [], "recipe file"),
    ("toml-syntax", "[train\nepochs = 1", [], "TOML syntax error"),
    ("unknown-section", BASE + "[bogus]\nx = 1\n", [], "unknown key 'bogus'"),
    ("unknown-data-key", BASE.replace("batch_size", "batchsize"), [], "unknown key 'data.batchsize'"),
    ("unknown-train-key", BASE + "lr = 0.1\n", [], "unknown key 'train.lr'"),
    ("epochs-string", BASE.replace("epochs = 1", "epochs = 'one'"), [], "train.epochs = 'one' has the wrong type"),
    ("batch-float", BASE.replace("batch_size = 32", "batch_size = 32.5"), [], "data.batch_size = 32.5 has the wrong type"),
    ("epochs-zero", BASE.replace("epochs = 1", "epochs = 0"), [], "train.epochs = 0 must be >= 1"),
    ("negative-lr", BASE + "learning_rate = -0.1\n", [], "learning_rate = -0.1 must be > 0"),
    ("bad-optimizer", BASE + "optimizer = 'rmsprop'\n", [], "choose one of ['adam', 'sgd']"),
    ("bad-schedule", BASE + "schedule = 'step'\n", [], "choose one of ['constant', 'cosine']"),
    ("bad-momentum", BASE + "momentum = 1.5\n", [], "train.momentum = 1.5 must be between 0 and 1"),
    ("val-fraction", BASE.replace("batch_size = 32", "batch_size = 32\nvalidation_fraction = 1.0"), [],
     "validation_fraction = 1.0 must be in [0, 1)"),
    ("bad-channels", BASE.replace("batch_size = 32", "batch_size = 32\nchannels = 2"), [], "data.channels = 2"),
    ("stages-not-list", BASE + "[stages]\nname = 'a'\n", [], "'stages' must be a non-empty array"),
    ("duplicate-stages", BASE + "[[stages]]\nname = 'a'\n[[stages]]\nname = 'a'\n", [], "stage names must be unique"),
    ("stage-unknown-key", BASE + "[[stages]]\nname = 'a'\nepoch = 2\n", [], "unknown key 'stages.0.epoch'"),
    ("stage-unknown-plugin", BASE + "[[stages]]\nname = 'a'\nplugins = ['nope']\n", [], "unknown plugin 'nope'"),
    ("enable-unknown-plugin", BASE + "[plugins]\nenable = ['nope']\n", [], "plugins.enable: unknown plugin 'nope'"),
    ("disable-not-list", BASE + "[plugins]\ndisable = 'weight_norm'\n", [], "plugins.disable = 'weight_norm' must be a list"),
    ("options-of-bare-plugin", BASE + "[plugins.weight_norm]\nx = 1\n", [], "plugin 'weight_norm' takes no options"),
    ("classes-out-of-range", BASE.replace("batch_size = 32", "batch_size = 32\nclasses = [0, 42]"), [],
     "data.classes: [42] out of range"),
    ("classes-not-list", BASE.replace("batch_size = 32", "batch_size = 32\nclasses = 3"), [], "data.classes = 3 must be a list"),
    ("unknown-dataset", BASE.replace('name = "synthetic"', 'name = "imagenet"'), [], "unknown dataset 'imagenet'"),
    ("unknown-tfds", BASE.replace('name = "synthetic"', 'name = "tfds:no_such_set_xyz"'), [],
     "unknown tensorflow-datasets name"),
    ("missing-folder", BASE.replace('name = "synthetic"', 'name = "folder:/nonexistent"'), [], "no train/ sub-folder"),
    ("missing-idx-files", BASE.replace('name = "synthetic"', 'name = "fashion_mnist"\ndata_dir = "/nonexistent"'), [],
     "apt-get install dataset-fashion-mnist"),
    ("batch-larger-than-data", BASE.replace("batch_size = 32", "batch_size = 4096"), [], "fewer than one batch"),
    ("unknown-model", BASE.replace("width = 0.25", "name = 'alexnet'"), [], "unknown model 'alexnet'"),
    ("bad-model-option", BASE.replace("width = 0.25", "name = 'vgg'\noptions = {bogus = 1}"), [],
     "unexpected keyword argument 'bogus'"),
    ("bad-resnet-depth", BASE.replace("width = 0.25", "name = 'resnet'\noptions = {depth = 10}"), [],
     "depth must be 6n+2"),
    ("set-without-equals", BASE, ["--set", "train.epochs"], "expected KEY=VALUE"),
    ("set-bad-index", BASE + "[[stages]]\nname = 'a'\n", ["--set", "stages.3.epochs=1"], "stages has 1 entries"),
    ("set-unknown-key", BASE, ["--set", "train.nope=1"], "unknown key 'train.nope'"),
    ("set-wrong-type", BASE, ["--set", "train.epochs=[1]"], "train.epochs = [1] has the wrong type"),
    ("resume-without-checkpoint", BASE, ["--resume"], "no checkpoint in"),
    ("negative-neq-budget", BASE + "[plugins.neq_velocity]\nbudget = -0.1\n", [], "a fraction must be in (0, 1]"),
    ("budget-unit-typo", BASE + "[plugins.neq_random]\nbudget_unit = 'kb'\n", [], "is not valid; choose one of"),
    ("growth-ratio-one", BASE + "[plugins.osg]\ngamma = 1.0\n", [], "must be greater than 1"),
    ("growth-two-targets", BASE + "[plugins.osg]\ntarget_params = 10\ntarget_bytes = 10\n", [], "not both"),
    ("deps-warmup-too-long", BASE + "[plugins.deps]\nwarmup_fraction = 1.5\n", [], "warmup_fraction: 1.5 is outside"),
    ("era-unknown-key", BASE + "[plugins.era]\nwidht = 3\n", [], "unknown key 'plugins.era.widht'"),
    # numbers that used to pass validation and crash (or silently mislead) later
    ("negative-seed", BASE + "seed = -1\n", [], "train.seed = -1 must be >= 0"),
    ("negative-data-seed", BASE.replace("batch_size = 32", "batch_size = 32\nseed = -3"), [], "data.seed = -3"),
    ("nan-warmup", BASE + "warmup_epochs = nan\n", [], "train.warmup_epochs = nan must be a finite number"),
    ("inf-learning-rate", BASE + "learning_rate = inf\n", [], "train.learning_rate = inf must be a finite"),
    ("nan-plugin-option", BASE + "[plugins.neq_random]\nbudget = nan\n", [], "budget = nan must be a finite"),
    ("nan-by-set", BASE, ["--set", "train.momentum=nan"], "train.momentum = nan must be a finite"),
    ("zero-width", BASE.replace("width = 0.25", "width = 0.0"), [], "model.width = 0.0 must be > 0"),
    ("negative-width", BASE.replace("width = 0.25", "width = -1.0"), [], "model.width = -1.0 must be > 0"),
    ("one-class", BASE.replace("batch_size = 32", "batch_size = 32\nclasses = [3]"), [], "at least 2 classes"),
    ("duplicate-classes", BASE.replace("batch_size = 32", "batch_size = 32\nclasses = [1, 1]"), [],
     "names a class twice"),
    ("empty-validation", BASE.replace("batch_size = 32", "batch_size = 32\nvalidation_fraction = 0.001"), [],
     "leaves no validation example"),
    ("early-stop-without-validation",
     BASE.replace("batch_size = 32", "batch_size = 32\nvalidation_fraction = 0.0") + "early_stopping_patience = 2\n",
     [], "needs a validation split"),
    ("diverging-loss", BASE + "learning_rate = 1e6\n", [], "the training loss diverged"),
    ("stage-epochs-zero", BASE + "[[stages]]\nname = 'a'\n[[stages]]\nname = 'b'\nepochs = 0\n", [],
     "must be >= 1 (in stages.1)"),
    ("set-negative-index", BASE + "[[stages]]\nname = 'a'\n", ["--set", "stages.-1.epochs=1"],
     "use an index from 0 to 0"),
    ("set-stages-without-stages", BASE, ["--set", "stages.0.epochs=1"], "the recipe has no stages list"),
    ("bom", "\ufeff" + BASE, [], "byte-order mark"),
    ("latin-1", None, [], "is not UTF-8 text"),
]


@pytest.mark.parametrize("text, args, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, text, args, fragment):
    recipe = tmp_path / "recipe.toml"
    if text is not None:
        recipe.write_text(text, encoding="utf-8")
    elif fragment == "is not UTF-8 text":
        recipe.write_bytes("[model]\nname = 'caf\u00e9'\n".encode("latin-1"))
    out = tmp_path / "out"
    code, _, err = run_cli(["run", str(recipe), "--out", str(out), *args], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert "Traceback" not in err
    leftovers = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert not [p for p in leftovers if p.startswith(".tmp-") or p.endswith(".keras")], leftovers


def test_there_are_at_least_30_cases():
    assert len(CASES) + len(RUN_CASES) >= 30


def save_model(folder, model_or_bytes):
    folder.mkdir()
    if isinstance(model_or_bytes, bytes):
        (folder / "model.keras").write_bytes(model_or_bytes)
    else:
        model_or_bytes.save(folder / "model.keras")
    return folder


def unsupported_model():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.LayerNormalization(name="odd_norm")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def small_model(shape):
    import keras

    inputs = keras.Input(shape)
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))


def finished(tmp, model, recipe=BASE):
    """A run folder holding ``recipe`` and ``model`` (bytes; None: a folder named model.keras)."""
    run = tmp / "run"
    run.mkdir()
    (run / "recipe.toml").write_text(recipe)
    if model is None:
        (run / "model.keras").mkdir()
    elif isinstance(model, bytes):
        (run / "model.keras").write_bytes(model)
    else:
        model.save(run / "model.keras")
    return run


# (id, command, builds RUN_DIR in tmp_path -> path, expected fragment)
RUN_CASES = [
    ("evaluate-not-a-run", "evaluate", lambda tmp: tmp, "model.keras not found"),
    ("export-not-a-run", "export", lambda tmp: tmp, "model.keras not found"),
    ("export-corrupted-model", "export", lambda tmp: save_model(tmp / "run", b"not a zip"), "cannot load"),
    ("evaluate-corrupted-model", "evaluate", lambda tmp: finished(tmp, b"not a zip"), "cannot load"),
    ("evaluate-model-is-a-folder", "evaluate", lambda tmp: finished(tmp, None), "model.keras not found"),
    ("evaluate-other-image-size", "evaluate",
     lambda tmp: finished(tmp, small_model((12, 12, 1)), BASE.replace("synthetic_shape = [12, 12, 1]",
                                                                        "synthetic_shape = [16, 16, 1]")),
     "takes inputs of shape (12, 12, 1)"),
    ("export-out-under-a-file", "export --out", lambda tmp: finished(tmp, small_model((12, 12, 1))),
     "cannot write"),
    ("export-out-is-a-folder", "export --out-folder", lambda tmp: finished(tmp, small_model((12, 12, 1))),
     "is a directory"),
    ("export-unsupported-layer", "export", lambda tmp: save_model(tmp / "run", unsupported_model()),
     "'odd_norm' (LayerNormalization)"),
]


@pytest.mark.parametrize("command, make_run, fragment", [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_bad_run_folders(tmp_path, capsys, command, make_run, fragment):
    run_dir = make_run(tmp_path)
    args = [command, str(run_dir)]
    if command == "export --out":  # a path under a file cannot be created
        (tmp_path / "a-file").write_text("x")
        args = ["export", str(run_dir), "--out", str(tmp_path / "a-file" / "m.tflite")]
    elif command == "export --out-folder":
        args = ["export", str(run_dir), "--out", str(tmp_path)]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert not list(tmp_path.rglob("*.tflite"))

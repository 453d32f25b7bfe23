"""Recipes: TOML files parsed into typed, validated, frozen dataclasses.

A recipe has ``[data]``, ``[model]``, ``[train]`` sections, an ordered list of
``[[stages]]`` (each may override data, train and plugin options), and ``[plugins]``
(``enable``, ``disable`` and one option table per plugin). Every key is documented
in ``recipes/README.md``. Unknown keys, wrong types and unknown plugins are errors
that name the file, the key and the valid choices.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from keras_edge.errors import RecipeError


@dataclasses.dataclass(frozen=True)
class DataConfig:
    name: str = "fashion_mnist"
    """fashion_mnist | digits | synthetic | tfds:<name> | folder:<path> | a plugin's dataset."""
    data_dir: str = ""
    """Where the files are (tensorflow-datasets' data_dir, or Fashion-MNIST's IDX folder)."""
    batch_size: int = 128
    validation_fraction: float = 0.1
    """Share of the training examples held out for validation (split by ``seed``)."""
    seed: int = 0
    classes: tuple[int, ...] = ()
    """Keep only these classes, relabelled 0..k-1 in this order (empty: all)."""
    limit: int = 0
    """Use at most this many training examples (0: all)."""
    test_limit: int = 0
    """Use at most this many test examples (0: all)."""
    image_size: int = 0
    """Resize images to this square size (0: native)."""
    channels: int = 0
    """Convert images to 1 or 3 channels (0: native)."""
    synthetic_shape: tuple[int, ...] = (28, 28, 1)
    synthetic_examples: int = 512
    synthetic_classes: int = 10

    def __post_init__(self):
        _check_range(self, "data", batch_size=(1, None), limit=(0, None), test_limit=(0, None), seed=(0, None),
                     image_size=(0, None), synthetic_examples=(1, None), synthetic_classes=(2, None))
        if len(set(self.classes)) != len(self.classes):
            raise RecipeError(f"data.classes = {list(self.classes)} names a class twice; list each once")
        if len(self.classes) == 1:
            raise RecipeError(f"data.classes = {list(self.classes)}: a classifier needs at least 2 classes")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise RecipeError(f"data.validation_fraction = {self.validation_fraction} must be in [0, 1); "
                              "use e.g. 0.1")
        if self.channels not in (0, 1, 3):
            raise RecipeError(f"data.channels = {self.channels}: use 0 (keep), 1 or 3")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"
    """small_cnn | vgg | mobilenet_v2 | resnet | a plugin's model."""
    width: float = 1.0
    """Width multiplier (MobileNetV2's alpha)."""
    options: dict = dataclasses.field(default_factory=dict)
    """Extra keyword arguments for the model builder."""

    def __post_init__(self):
        if not self.width > 0:
            raise RecipeError(f"model.width = {self.width} must be > 0; use e.g. 1.0 or 0.5")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    optimizer: typing.Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    """SGD momentum (ignored by Adam)."""
    nesterov: bool = True
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW / SGDW style)."""
    weight_decay_exclude: tuple[str, ...] = ()
    """Variables whose name contains any of these get no weight decay, e.g. ["gamma", "beta", "bias"]."""
    schedule: typing.Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = 0.0
    """Linear learning-rate warmup from 0, in epochs."""
    min_learning_rate: float = 0.0
    """Floor of the cosine schedule."""
    label_smoothing: float = 0.0
    early_stopping_patience: int = 0
    """Stop a stage after this many epochs without a better val_accuracy (0: never)."""
    seed: int = 0
    """Seed of weight initialisation, shuffling and plugins' random choices."""
    distribute: typing.Literal["none", "mirrored", "multi_worker"] = "none"
    """tf.distribute strategy of the whole run (set it at the top level, not per stage)."""
    deterministic: bool = False
    """Enable TensorFlow op determinism, so a resumed run ends with the same weights (BatchNorm then
    trains with Keras's unfused ops: keras_edge/models/batch_norm.py)."""
    jit_compile: bool | typing.Literal["auto"] = "auto"
    """Compile the steps with XLA; "auto": on GPUs, unless subnets are sampled (their shapes vary)."""

    def __post_init__(self):
        _check_range(self, "train", epochs=(1, None), early_stopping_patience=(0, None),
                     warmup_epochs=(0, None), weight_decay=(0, None), min_learning_rate=(0, None),
                     momentum=(0, 1), seed=(0, None))
        if not self.learning_rate > 0:
            raise RecipeError(f"train.learning_rate = {self.learning_rate} must be > 0; use e.g. 0.001")
        if not 0 <= self.label_smoothing < 1:
            raise RecipeError(f"train.label_smoothing = {self.label_smoothing} must be in [0, 1)")


def _check_range(config, section: str, **bounds) -> None:
    """Raise RecipeError when a field is outside its inclusive ``(low, high)`` bounds."""
    for name, (low, high) in bounds.items():
        value = getattr(config, name)
        if (low is not None and value < low) or (high is not None and value > high):
            limits = f">= {low}" if high is None else f"between {low} and {high}"
            raise RecipeError(f"{section}.{name} = {value} must be {limits}")


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    data: DataConfig
    train: TrainConfig
    plugins: tuple[str, ...] = ()
    options: dict = dataclasses.field(default_factory=dict)
    """Plugin name -> validated ``Options`` instance for this stage."""
    cache: bool = False

    @property
    def epochs(self) -> int:
        return self.train.epochs


@dataclasses.dataclass(frozen=True)
class Recipe:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    stages: tuple[Stage, ...]
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    source: str = "<recipe>"
    raw: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    """The recipe as written, overrides applied (what ``to_toml`` writes, defaults filled)."""

    def active_plugins(self, stage: Stage, autouse=()) -> tuple[str, ...]:
        names = [*self.enable, *stage.plugins, *autouse]
        return tuple(dict.fromkeys(n for n in names if n not in self.disable))

    def to_dict(self) -> dict:
        """The resolved recipe: every key with its value, defaults included."""
        out = {"data": _asdict(self.data), "model": _asdict(self.model), "train": _asdict(self.train),
               "plugins": {"enable": list(self.enable), "disable": list(self.disable),
                           **copy.deepcopy(self.raw.get("plugins", {}))},
               "stages": []}
        for stage in self.stages:
            out["stages"].append({
                "name": stage.name, "plugins": list(stage.plugins), "cache": stage.cache,
                "data": _asdict(stage.data), "train": _asdict(stage.train),
                "options": {n: _asdict(o) for n, o in stage.options.items()
                            if n in self.active_plugins(stage)},
            })
        return out


TOP_KEYS = ("data", "model", "train", "stages", "plugins")
STAGE_KEYS = ("name", "epochs", "plugins", "cache", "data", "train", "options")


def load_recipe(path, overrides=(), catalog=None) -> Recipe:
    """Read a TOML recipe file, apply ``key.path=value`` overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {path} not found; pass the path of a .toml recipe (see recipes/)")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise RecipeError(f"{path} starts with a UTF-8 byte-order mark, which TOML does not allow; "
                          "save it as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
                          "save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: TOML syntax error: {exc}; fix the file") from exc
    return parse_recipe(raw, source=str(path), overrides=overrides, catalog=catalog)


def parse_recipe(raw, source="<recipe>", overrides=(), catalog=None) -> Recipe:
    """Validate a recipe given as a dict or TOML text.

    ``catalog`` maps plugin names to their ``Options`` dataclass (or ``None``); by
    default it is read from the installed plugins.
    """
    if isinstance(raw, str):
        try:
            raw = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{source}: TOML syntax error: {exc}; fix the file") from exc
    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item, source)
    if catalog is None:
        from keras_edge.plugins import plugin_catalog

        catalog = plugin_catalog()
    return _build(raw, source, catalog)


def apply_override(raw: dict, item: str, source="<recipe>") -> None:
    """Set ``a.b.c=value`` in ``raw``; the value is read as TOML (else as a string)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {item!r}: expected KEY=VALUE such as train.epochs=3")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(parts[:i])
                raise RecipeError(f"--set {key}: {where} has {len(node)} entries; "
                                  + (f"use an index from 0 to {len(node) - 1}" if node else f"add one to {where} first"))
            part = int(part)
        elif not isinstance(node, dict):
            raise RecipeError(f"--set {key}: {'.'.join(parts[:i])} is a value, not a section")
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and part not in node:
                if parts[i + 1].lstrip("-").isdigit():
                    raise RecipeError(f"--set {key}: the recipe has no {'.'.join(parts[:i + 1])} list to index"
                                      + ("; without [[stages]] the whole recipe is one stage: set train.* or "
                                         "data.* directly" if part == "stages" else ""))
                node[part] = {}
            node = node[part]


def _build(raw: dict, source: str, catalog: dict) -> Recipe:
    _check_keys(raw, TOP_KEYS, "", source)
    data = make_dataclass(DataConfig, raw.get("data", {}), "data", source)
    model = make_dataclass(ModelConfig, raw.get("model", {}), "model", source)
    train = make_dataclass(TrainConfig, raw.get("train", {}), "train", source)
    plugins = _table(raw.get("plugins", {}), "plugins", source)
    enable = _names(plugins.get("enable", []), "plugins.enable", source, catalog)
    disable = _names(plugins.get("disable", []), "plugins.disable", source, catalog)
    global_options = {k: _table(v, f"plugins.{k}", source) for k, v in plugins.items()
                      if k not in ("enable", "disable")}
    _names(list(global_options), "plugins", source, catalog)

    stage_tables = raw.get("stages", [{"name": "train"}])
    if not isinstance(stage_tables, list) or not stage_tables:
        raise RecipeError(f"{source}: 'stages' must be a non-empty array of tables ([[stages]])")
    stages = []
    for i, table in enumerate(stage_tables):
        where = f"stages.{i}"
        table = _table(table, where, source)
        _check_keys(table, STAGE_KEYS, where, source)
        train_table = {**raw.get("train", {}), **_table(table.get("train", {}), f"{where}.train", source)}
        if "epochs" in table:
            train_table["epochs"] = table["epochs"]
        names = _names(table.get("plugins", []), f"{where}.plugins", source, catalog)
        stage_options = _table(table.get("options", {}), f"{where}.options", source)
        _names(list(stage_options), f"{where}.options", source, catalog)
        options = {}
        for name in dict.fromkeys([*global_options, *stage_options, *enable, *names, *catalog]):
            cls = catalog.get(name)
            merged = {**global_options.get(name, {}), **_table(stage_options.get(name, {}), where, source)}
            if cls is None:
                if merged:
                    raise RecipeError(f"{source}: plugin {name!r} takes no options, but "
                                      f"{sorted(merged)} were given; remove them")
                continue
            options[name] = make_dataclass(cls, merged, f"plugins.{name}", source)
        stages.append(Stage(
            name=_typed(table.get("name", f"stage{i}"), str, f"{where}.name", source),
            data=make_dataclass(DataConfig, {**raw.get("data", {}), **_table(table.get("data", {}), f"{where}.data", source)},
                                f"{where}.data", source),
            train=make_dataclass(TrainConfig, train_table, f"{where}.train", source),
            plugins=names, options=options,
            cache=_typed(table.get("cache", False), bool, f"{where}.cache", source),
        ))
    if any(s.train.distribute != train.distribute for s in stages):
        raise RecipeError(f"{source}: train.distribute applies to the whole run; set it in [train], not per stage")
    if len({s.name for s in stages}) != len(stages):
        raise RecipeError(f"{source}: stage names must be unique, got {[s.name for s in stages]}")
    return Recipe(data, model, train, tuple(stages), enable, disable, source, raw)


def make_dataclass(cls, table, where: str, source: str):
    """Build dataclass ``cls`` from a TOML table, checking keys and types."""
    table = _table(table, where, source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _check_keys(table, fields, where, source)
    values = {k: _typed(v, hints[k], f"{where}.{k}" if where else k, source) for k, v in table.items()}
    try:
        return cls(**values)
    except RecipeError as exc:
        inside = f" (in {where.rsplit('.', 1)[0]})" if where.startswith("stages.") else ""
        raise RecipeError(f"{source}: {exc}{inside}") from None
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{source}: {where}: {exc}") from None


def _typed(value, hint, key: str, source: str):
    """Check ``value`` against a type hint; convert lists to tuples, ints to floats."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _typed(value, option, key, source)
            except RecipeError:
                pass
        raise RecipeError(f"{source}: {key} = {value!r} has the wrong type; expected {_name(hint)}")
    if origin is typing.Literal:
        if value not in args:
            raise RecipeError(f"{source}: {key} = {value!r} is not valid; choose one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise RecipeError(f"{source}: {key} = {value!r} must be a list; write [..]")
        item = args[0] if args else Any
        items = [_typed(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is type(None):
        if value is not None:
            raise RecipeError(f"{source}: {key} must be empty")
        return value
    if hint is Any or hint is object:
        return value
    if hint in (dict,) or origin is dict:
        return dict(_table(value, key, source))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{source}: {key} = {value} must be a finite number")
    if hint is bool and not isinstance(value, bool) or hint is not bool and isinstance(value, bool) \
            or not isinstance(value, hint):
        raise RecipeError(f"{source}: {key} = {value!r} has the wrong type; expected {_name(hint)}")
    return value


def _name(hint) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _table(value, where: str, source: str) -> dict:
    if not isinstance(value, dict):
        raise RecipeError(f"{source}: {where} must be a table (a [section] or {{...}}), got {value!r}")
    return value


def _check_keys(table: dict, valid, where: str, source: str) -> None:
    for key in table:
        if key not in valid:
            name = f"{where}.{key}" if where else key
            raise RecipeError(f"{source}: unknown key {name!r}; valid keys{' in ' + where if where else ''}: "
                              f"{', '.join(sorted(valid))}")


def _names(value, where: str, source: str, catalog: dict) -> tuple[str, ...]:
    names = _typed(value, tuple[str, ...], where, source)
    for name in names:
        if name not in catalog:
            from keras_edge.plugins import BROKEN

            if name in BROKEN:
                raise RecipeError(f"{source}: {where}: {BROKEN[name]}")
            raise RecipeError(f"{source}: {where}: unknown plugin {name!r}; installed plugins: "
                              f"{', '.join(sorted(catalog)) or 'none'} (see `keras-edge plugins`)")
    return names


def _asdict(obj) -> dict:
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_toml(data: dict) -> str:
    """Write nested dicts and lists of dicts (the shape of ``Recipe.to_dict``) as TOML."""
    lines: list[str] = []
    _write_table(data, [], lines)
    return "\n".join(lines).lstrip() + "\n"


def _write_table(table: dict, prefix: list, lines: list, header="") -> None:
    scalars = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_list(v)}
    if header and (scalars or not any(_is_table(v) or _is_table_list(v) for v in table.values())):
        lines += ["", header]
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        path = prefix + [_key(key)]
        if _is_table(value):
            _write_table(value, path, lines, f"[{'.'.join(path)}]")
        elif _is_table_list(value):
            for item in value:
                lines += ["", f"[[{'.'.join(path)}]]"]
                _write_table(item, path, lines)


def _is_table(v) -> bool:
    return isinstance(v, dict)


def _is_table_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(i, dict) for i in v)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def _value(v) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(i)}" for k, i in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")

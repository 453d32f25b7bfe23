"""How well the elastic supernet's train step uses this CPU: supernet vs static subnet, time vs MACs,
GFLOP/s against a matmul, compile time of the 4-subnet step, retraces, fused vs unfused BatchNorm.

The supernet is recipes/deps.toml's (``elastic_mobilenet`` defaults, 28x28x1, 10 classes), batch
128. Every step is timed interleaved with the others, round after round (this machine is shared
and throttled in plateaus), as process CPU-seconds and wall seconds; medians are reported.

- supernet step (one compiled step, the config a tensor) for the smallest, a middle and the
  largest config, and the same subnets extracted as static Keras models (standard layers;
  the static largest subnet is also timed with a fused BatchNorm: like for like);
- the largest config with the unfused BatchNorm (the step before this change): the speed-up;
- GFLOP/s = 2 x 3 x MACs x batch / wall time (forward and two backward products per layer),
  and a 1024x1024 float32 matmul in the same rounds;
- the DεpS 4-subnet step (full + smallest + 2 random, in-place distillation): trace + first call
  in CPU-seconds (the compile time; wall time on this shared machine is several times that under
  load) and step time, also for the step before its subnet passes ran as one ``tf.while_loop``
  (``unrolled_subnet_step``);
- the model zoo's MobileNetV2 (alpha 1), whose BatchNorm is fused in training
  (``keras_edge.models.batch_norm``), against the same model with Keras's own BatchNorm.

    python tools/bench_supernet.py                    # writes docs/benchmarks/supernet_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BATCH = 128


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def build(fused: bool, options: dict):
    from keras_edge_deps.supernet import ElasticMobileNet

    keras.utils.set_random_seed(0)
    model = ElasticMobileNet((28, 28, 1), 10, fused_batch_norm=fused, **options)
    return model, step_of(model)


def step_of(model):
    """keras_edge's train step with in-place distillation (what a DεpS run compiles)."""
    from keras_edge.builtins.inplace_distillation import InplaceDistillation
    from keras_edge.step import Selection, make_train_step

    distill = InplaceDistillation()
    return make_train_step(model, sgd(model), Selection(model, None),
                           lambda batch, outputs, subnet: distill.loss_terms(outputs, subnet))


def sgd(model):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)
    optimizer.build(model.trainable_variables)
    return optimizer


def unrolled_subnet_step(model):
    """The 4-subnet step as it was before keras_edge ran the later samples as one loop: every
    pass traced and recorded on one tape (the same update as ``step_of``'s)."""
    from keras_edge.builtins.inplace_distillation import distillation
    from keras_edge.step import cross_entropy

    optimizer, variables = sgd(model), model.trainable_variables

    @tf.function
    def step(batch, configs, weights):
        images, labels = batch["image"], batch["label"]
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = weights[0, 1] * cross_entropy(labels, logits)
            total = weights[0, 0] * loss
            teacher = tf.stop_gradient(tf.nn.softmax(logits))
            for i, config in enumerate(configs[1:], start=1):
                student = model(images, training=True, subnet=config)
                total += weights[i, 0] * (weights[i, 1] * cross_entropy(labels, student)
                                          + weights[i, 2] * distillation(teacher, student))
        grads = tape.gradient(total, variables)
        optimizer.apply([tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)], variables)
        return {"loss": loss}

    return step


def with_batch_norm(model, layer_class):
    """A copy of a functional model whose BatchNormalization layers are ``layer_class``'s."""

    def swap(layer):
        config = layer.get_config()
        return layer_class.from_config(config) if isinstance(layer, keras.layers.BatchNormalization) \
            else layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=swap)
    copy.set_weights(model.get_weights())
    return copy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds (after 2 warm-up rounds)")
    parser.add_argument("--model-options", type=json.loads, default={},
                        help='elastic_mobilenet options as JSON (default: the recipes\' supernet)')
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/supernet_speed.json"))
    args = parser.parse_args(argv)

    from keras_edge.models.batch_norm import BatchNormalization
    from keras_edge.models.mobilenet_v2 import mobilenet_v2
    from keras_edge_deps.extract import extract

    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.random((BATCH, 28, 28, 1), np.float32)),
             "label": tf.constant(rng.integers(0, 10, BATCH), tf.int32)}
    one = tf.constant([[1.0, 1.0, 0.0]])
    model, step = build(True, args.model_options)
    unfused, unfused_step = build(False, args.model_options)
    space = model.space
    middle = space.uniform(space.depths[len(space.depths) // 2], space.kernels[len(space.kernels) // 2],
                           space.expands[len(space.expands) // 2])
    configs = {"smallest": space.smallest(), "middle": middle, "largest": space.largest()}
    macs = {name: model.subnet_macs(c) for name, c in configs.items()}
    statics = {name: extract(model, configs[name], name=f"static_{name}") for name in ("smallest", "largest")}
    statics["largest_fused"] = with_batch_norm(statics["largest"], BatchNormalization)
    statics["zoo_mobilenet_v2"] = mobilenet_v2((28, 28, 1), 10, width=1.0)
    statics["zoo_mobilenet_v2_keras_bn"] = with_batch_norm(statics["zoo_mobilenet_v2"], keras.layers.BatchNormalization)
    static_steps = {name: step_of(m) for name, m in statics.items()}
    a, b = tf.constant(rng.random((1024, 1024), np.float32)), tf.constant(rng.random((1024, 1024), np.float32))
    matmul = tf.function(lambda a, b: tf.reduce_sum(a @ b))

    cases = {f"supernet_{n}": (lambda c=c: step(batch, (tf.constant(c),), one)["loss"].numpy())
             for n, c in configs.items()}
    cases["supernet_unfused_largest"] = lambda: unfused_step(batch, (tf.constant(configs["largest"]),), one)["loss"].numpy()
    cases.update({f"static_{n}": (lambda s=s: s(batch, (None,), one)["loss"].numpy()) for n, s in static_steps.items()})
    cases["matmul_1024"] = lambda: matmul(a, b).numpy()
    first = {name: timed(fn) for name, fn in cases.items()}  # traces, compiles and warms up
    times = {name: [] for name in cases}
    for r in range(args.rounds + 2):
        for name, fn in cases.items():
            if r >= 2:
                times[name].append(timed(fn))
            else:
                fn()
    median = {name: {"cpu_s": float(np.median([t[0] for t in ts])), "wall_s": float(np.median([t[1] for t in ts]))}
              for name, ts in times.items()}
    retraces = int(step.experimental_get_tracing_count()) - 1

    four = (None, tf.constant(space.smallest()), tf.constant(space.sample(rng)), tf.constant(space.sample(rng)))
    weights = tf.constant([[1.0, 1.0, 0.0]] + [[1.0, 0.0, 1.0]] * 3)
    inputs = (batch, four, weights)
    four_steps = {"fused": step, "unfused": unfused_step, "fused_unrolled": unrolled_subnet_step(model)}
    compile_times = {}
    for name, s in four_steps.items():
        cpu, wall = time.process_time(), time.perf_counter()
        s.get_concrete_function(*inputs)
        trace_cpu, trace_wall = time.process_time() - cpu, time.perf_counter() - wall
        s(*inputs)["loss"].numpy()
        compile_times[name] = {"trace_cpu_s": trace_cpu, "trace_wall_s": trace_wall,
                               "total_cpu_s": time.process_time() - cpu, "total_wall_s": time.perf_counter() - wall}
    step_times = {name: [] for name in four_steps}
    for _ in range(5):  # interleaved, like the single-config steps
        for name, s in four_steps.items():
            step_times[name].append(timed(lambda: s(*inputs)["loss"].numpy())[0])
    for name, ts in step_times.items():
        compile_times[name]["step_cpu_s"] = float(np.median(ts))

    def gflops(case, wall_or_cpu):
        return 2 * 3 * macs["largest"] * BATCH / median[case][wall_or_cpu] / 1e9

    matmul_flops = 2 * 1024 ** 3
    ratio_time = median["supernet_smallest"]["cpu_s"] / median["supernet_largest"]["cpu_s"]
    ratio_macs = macs["smallest"] / macs["largest"]
    verdict = {
        "overhead_largest": median["supernet_largest"]["cpu_s"] / median["static_largest_fused"]["cpu_s"],
        "time_ratio_over_macs_ratio": ratio_time / ratio_macs,
        "compile_4_subnet_step_s": compile_times["fused"]["total_cpu_s"],
        "retraces_on_config_change": retraces,
        "gflops_largest": gflops("supernet_largest", "wall_s"),
        "matmul_gflops": matmul_flops / median["matmul_1024"]["wall_s"] / 1e9,
        "speedup_vs_before": median["supernet_unfused_largest"]["cpu_s"] / median["supernet_largest"]["cpu_s"],
    }
    result = {
        "verdict": verdict,
        "details": {
            "batch": BATCH, "rounds": args.rounds, "model_options": args.model_options, "macs": macs,
            "median_step": median, "first_call": {k: {"cpu_s": v[0], "wall_s": v[1]} for k, v in first.items()},
            "overhead_unfused_largest_vs_static_keras_bn": median["supernet_unfused_largest"]["cpu_s"]
            / median["static_largest"]["cpu_s"],
            "speedup_4_subnet_step_vs_unfused": compile_times["unfused"]["step_cpu_s"]
            / compile_times["fused"]["step_cpu_s"],
            "zoo_mobilenet_v2_speedup_vs_keras_bn": median["static_zoo_mobilenet_v2_keras_bn"]["cpu_s"]
            / median["static_zoo_mobilenet_v2"]["cpu_s"],
            "overhead_smallest": median["supernet_smallest"]["cpu_s"] / median["static_smallest"]["cpu_s"],
            "time_ratio_smallest_over_largest": ratio_time, "macs_ratio_smallest_over_largest": ratio_macs,
            "gflops_per_cpu_second_largest": gflops("supernet_largest", "cpu_s"),
            "matmul_gflops_per_cpu_second": matmul_flops / median["matmul_1024"]["cpu_s"] / 1e9,
            "compile_4_subnet_step": compile_times, "load_average": os.getloadavg(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(verdict, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

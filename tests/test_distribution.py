"""Distribution: MirroredStrategy over 2 logical CPUs equals one device (same global batch);
a 2-worker MultiWorkerMirroredStrategy run on 127.0.0.1 completes.

Both run in subprocesses: logical devices and TF_CONFIG must be set before TensorFlow starts.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from sr_keras.training.strategy import make_strategy
    strategy = make_strategy("mirrored", cpu_logical_devices=2)
    import keras
    sys.path.insert(0, "tests")
    from conftest import TINY
    from sr_keras import MGBPGenerator
    from sr_keras.data.pipeline import downsample_pyramid
    from sr_keras.models.discriminator import MultiScaleDiscriminator
    from sr_keras.models.gan import SRGAN

    def build():
        g = MGBPGenerator(scale=4, **TINY)
        d = MultiScaleDiscriminator(2, filters=4, depth=1, max_filters=8)
        # amplitude 0 in the textured branch: no random noise, so both runs are deterministic.
        gan = SRGAN(g, d, perceptual_amplitude=0.0, warmup_steps=1, ema_decay=0.5)
        gan.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3),
                    sample_lr_size=8)
        return gan

    rng = np.random.default_rng(0)
    hr = tf.image.resize(rng.random((8, 8, 8, 3)).astype("float32"), (32, 32), "bicubic")
    hr = tf.clip_by_value(hr, 0.0, 1.0)
    lr, *pyr = downsample_pyramid(hr, 2)
    ds = tf.data.Dataset.from_tensor_slices((lr, tuple(pyr))).batch(4, drop_remainder=True).repeat()

    keras.utils.set_random_seed(3)
    single = build()
    init = [v.numpy() for v in single.variables]
    with strategy.scope():
        mirrored = build()
    for v, value in zip(mirrored.variables, init):
        v.assign(value)
    assert mirrored.distribute_strategy.num_replicas_in_sync == 2
    h1 = single.fit(ds, epochs=1, steps_per_epoch=4, verbose=0).history
    h2 = mirrored.fit(ds, epochs=1, steps_per_epoch=4, verbose=0).history
    diffs = {}
    for name, a, b in (("generator", single.generator, mirrored.generator),
                       ("discriminator", single.discriminator, mirrored.discriminator)):
        diffs[name] = max(float(np.max(np.abs(x.numpy() - y.numpy())))
                          for x, y in zip(a.trainable_variables, b.trainable_variables))
    diffs["ema"] = max(float(np.max(np.abs(x.numpy() - y.numpy())))
                       for x, y in zip(single.ema_variables, mirrored.ema_variables))
    moved = max(float(np.max(np.abs(x.numpy() - y)))
                for x, y in zip(single.generator.trainable_variables, init))
    print(json.dumps({"diffs": diffs, "moved": moved, "steps": [single.step, mirrored.step],
                      "d_steps": [int(single.d_optimizer.iterations.numpy()),
                                  int(mirrored.d_optimizer.iterations.numpy())],
                      "logs": [{k: v[-1] for k, v in h1.items()}, {k: v[-1] for k, v in h2.items()}]}))
""")


def test_mirrored_two_logical_cpus_matches_single_device():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == [4, 4] and report["d_steps"] == [3, 3]
    assert report["moved"] > 1e-3  # training really changed the weights...
    for name, diff in report["diffs"].items():  # ...identically on 1 device and on 2 replicas
        assert diff < 1e-4, (name, diff)
    single, mirrored = report["logs"]
    for key in ("g_total", "reconstruction", "d_loss", "real_score", "fake_score"):
        assert mirrored[key] == pytest.approx(single[key], rel=1e-3, abs=1e-5), key


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_worker_multi_worker_mirrored_run_completes(tmp_path):
    data = _write_images(tmp_path / "train")
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "run"
    flags = ["--strategy=multi_worker", f"--train_data={data}", f"--output_dir={out}", "--steps=4",
             "--warmup_steps=2", "--steps_per_epoch=2", "--checkpoint_every=2", "--batch_size=4",
             "--patch_size=32", "--filters=4", "--growth=4", "--analysis_depth=1", "--upscaling_depth=1",
             "--downscaling_depth=1", "--synthesis_depth=1", "--mu=1", "--padding=2", "--d_filters=4",
             "--d_depth=1", "--d_max_filters=8", "--perceptual_weights=", "--export=false", "--log_every=1"]
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "train_main.py"), *flags], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=240)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for index, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        assert proc.returncode == 0, f"worker {index}:\n{log[-3000:]}"
        assert "2 replica(s), global batch 4 (2 per replica)" in log
        assert "step 4/4" in log
    summary = json.loads((out / "summary.json").read_text())  # written by the chief (worker 0) only
    assert summary["step"] == 4
    assert (out / "checkpoints" / "ckpt-4.index").is_file()
    assert not list(out.glob(".worker*"))  # the non-chief's scratch checkpoints are removed


def _write_images(folder, count=2, size=64):
    import numpy as np

    from sr_keras.io.images import write_png

    rng = np.random.default_rng(0)
    for i in range(count):
        write_png(folder / f"img{i}.png", np.kron(rng.random((size // 8, size // 8, 3)), np.ones((8, 8, 1))))
    return folder

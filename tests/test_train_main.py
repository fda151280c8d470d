"""train_main.py end to end: outputs, exact resume after `kill -9`, and the NaN/Inf guard."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY_FLAGS = ["--filters=4", "--growth=4", "--analysis_depth=1", "--upscaling_depth=1",
              "--downscaling_depth=1", "--synthesis_depth=1", "--mu=1", "--padding=2",
              "--d_filters=4", "--d_depth=1", "--d_max_filters=8", "--patch_size=32", "--batch_size=2",
              "--perceptual_weights=", "--log_every=1", "--summary_every=1", "--image_every=2"]


def write_images(folder, count, size=64, seed=0):
    from sr_keras.io.images import write_png

    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random((size // 8, size // 8, 3))
        write_png(folder / f"img{i}.png", np.kron(small, np.ones((8, 8, 1))))
    return folder


def run_main(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SR_KERAS_VGG_WEIGHTS": ""}
    return subprocess.run([sys.executable, str(ROOT / "train_main.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, **kwargs)


def test_short_run_writes_checkpoints_logs_exports_and_samples(tmp_path):
    out = tmp_path / "run"
    result = run_main([*TINY_FLAGS, f"--sample_data={tmp_path / 'samples'}", f"--output_dir={out}",
                       "--steps=4", "--warmup_steps=2", "--steps_per_epoch=2", "--checkpoint_every=2"],
                      timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "contextual (perceptual) loss OFF" in log
    assert re.search(r"final validation on 3 held-out image\(s\) at step 4: PSNR at amplitude 0 [\d.]+ dB, "
                     r"bicubic [\d.]+ dB", log)
    assert sorted(os.listdir(tmp_path / "samples" / "validation")) == ["camera.png", "chelsea.png", "coins.png"]
    assert {p.name for p in (out / "checkpoints").glob("ckpt-*.index")} == {"ckpt-2.index", "ckpt-4.index"}
    assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert samples == sorted(f"val{i}_a{a}.png" for i in range(3) for a in ("0", "0.5", "1"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 4 and summary["status"] == "ok"
    assert np.isfinite(summary["val_psnr"]) and summary["val_bicubic_psnr"] > 15

    import keras
    import tensorflow as tf

    import sr_keras  # noqa: F401  (registers the generator class for loading)

    generator = keras.saving.load_model(out / "generator.keras")
    sr = generator(np.zeros((1, 8, 8, 3), "float32"), noise_amplitude=1.0)
    assert sr.shape == (1, 32, 32, 3)
    tags = set()
    for event_file in (out / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"train/g_total", "train/d_loss", "validation/psnr", "validation/bicubic_psnr",
            "sr/amplitude_0", "sr/amplitude_0.5", "sr/amplitude_1"} <= tags


def test_kill_9_then_rerun_resumes_from_the_last_checkpoint(tmp_path):
    data = write_images(tmp_path / "train", 4)
    out = tmp_path / "run"
    args = [*TINY_FLAGS, f"--train_data={data}", f"--output_dir={out}", "--steps=60",
            "--warmup_steps=5", "--steps_per_epoch=20", "--checkpoint_every=3", "--export=false"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train_main.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = out / "checkpoints" / "checkpoint"
    deadline = time.time() + 240
    try:
        while not index.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the first run ended before it could be killed"
        assert index.exists(), "no checkpoint within 240 s"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(out / "checkpoints"))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert 3 <= killed_at < 60 and killed_at % 3 == 0

    result = run_main(args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(rf"resumed from \S+ckpt-{killed_at} at step {killed_at}", result.stderr)
    assert f"starting at step {killed_at} of 60" in result.stderr
    assert json.loads((out / "summary.json").read_text())["step"] == 60
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-60")
    first_logged = int(re.search(r"step (\d+)/60", result.stderr).group(1))
    assert first_logged == killed_at + 1  # continues, not restarts


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = write_images(tmp_path / "train", 2)
    out = tmp_path / "run"
    result = run_main([*TINY_FLAGS, f"--train_data={data}", f"--output_dir={out}", "--steps=20",
                       "--warmup_steps=2", "--checkpoint_every=1", "--debug_nan_at_step=4"], timeout=300)
    assert result.returncode == 3, result.stderr[-3000:]
    assert re.search(r"non-finite loss at step 4: .*g_total=nan.*last good checkpoint: \S+ckpt-3", result.stderr)
    import tensorflow as tf

    ckpt = tf.train.latest_checkpoint(str(out / "checkpoints"))
    assert ckpt.endswith("ckpt-3")
    for name, _ in tf.train.list_variables(ckpt):
        if name.startswith("generator/"):
            assert np.isfinite(tf.train.load_variable(ckpt, name)).all(), name
    assert not (out / "saved_model").exists()

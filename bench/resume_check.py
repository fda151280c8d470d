"""Exact resume, end to end: an uninterrupted quickstart run vs one SIGKILLed and restarted.

    SR_KERAS_VGG_WEIGHTS=../shared/weights/vgg16_imagenet_conv.npz python bench/resume_check.py --work /tmp/resume

Runs `train_main.py --flagfile=configs/quickstart.cfg` (short settings below) twice in
WORK/uninterrupted and WORK/killed. The second is killed with SIGKILL at a random moment
(--kill_window seconds) after its third checkpoint appears, then started again with the
same command. Prints one JSON line: the max abs difference of the two generator.keras
files' weights and of every variable of the two final checkpoints (G, D, EMA, optimizers).
"""

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = ["--flagfile=configs/quickstart.cfg", "--steps=48", "--warmup_steps=16", "--checkpoint_every=8",
         "--steps_per_epoch=24", "--log_every=8", "--image_every=1000", "--patch_size=32", "--batch_size=4"]


def command(out):
    return [sys.executable, str(ROOT / "train_main.py"), *FLAGS, f"--output_dir={out}"]


def run(out, log):
    with open(log, "a") as f:
        subprocess.run(command(out), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)


def run_and_kill(out, log, window, rng):
    """Start the run, SIGKILL it `uniform(0, window)` s after its third checkpoint; return when and where."""
    with open(log, "a") as f:
        proc = subprocess.Popen(command(out), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    checkpoints = pathlib.Path(out) / "checkpoints"
    while len(list(checkpoints.glob("ckpt-*.index"))) < 3:
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before its third checkpoint (exit {proc.returncode}); see {log}")
        time.sleep(0.02)
    delay = rng.uniform(0.0, window)
    time.sleep(delay)
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(checkpoints))
    return {"kill_delay_s": round(delay, 2), "finished_before_kill": finished,
            "latest_checkpoint_at_kill": latest and os.path.basename(latest)}


def max_abs_diff(a, b):
    return max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) if np.size(x) else 0.0)
               for x, y in zip(a, b, strict=True))


def generator_weights(path):
    import keras

    import sr_keras  # noqa: F401  (registers the generator class)

    return [w.numpy() for w in keras.saving.load_model(path).weights]


def checkpoint_variables(directory):
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(directory))
    names = sorted(name for name, _ in tf.train.list_variables(path) if not name.startswith("_CHECKPOINTABLE"))
    return path, names, [tf.train.load_variable(path, name) for name in names]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="empty folder for the two runs")
    parser.add_argument("--kill_window", type=float, default=8.0, help="kill within this many s of checkpoint 3")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moment (default: random)")
    args = parser.parse_args()
    work = pathlib.Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    plain, killed = work / "uninterrupted", work / "killed"
    run(plain, work / "uninterrupted.log")
    report = run_and_kill(killed, work / "killed.log", args.kill_window, rng)
    run(killed, work / "killed.log")
    report["generator_keras_max_abs_diff"] = max_abs_diff(generator_weights(plain / "generator.keras"),
                                                          generator_weights(killed / "generator.keras"))
    path_a, names_a, values_a = checkpoint_variables(plain / "checkpoints")
    path_b, names_b, values_b = checkpoint_variables(killed / "checkpoints")
    assert names_a == names_b and os.path.basename(path_a) == os.path.basename(path_b), (path_a, path_b)
    report["final_checkpoint"] = os.path.basename(path_a)
    report["checkpoint_variables"] = len(names_a)
    report["checkpoint_max_abs_diff"] = max_abs_diff(values_a, values_b)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

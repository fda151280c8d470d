"""Distribution strategies: one device, all GPUs of a machine, or several machines (TF_CONFIG).

Global batch semantics everywhere: `--batch_size` is the global batch; the
strategy splits it over the replicas (it must be divisible by their number),
losses are replica means scaled by 1/replicas and gradients are summed, so one
update is the same as on one device with the same global batch.
"""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger("sr_keras.training")

STRATEGIES = ("default", "mirrored", "multi_worker")


def configure_cpu_logical_devices(count):
    """Split the CPU into `count` logical devices; must run before TensorFlow initialises devices."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as error:
        raise RuntimeError(
            f"cannot create {count} logical CPU devices: TensorFlow is already initialised "
            "(configure them before building any model or tensor)") from error


def make_strategy(name="default", cpu_logical_devices=0):
    """Return the `tf.distribute` strategy called `name` (see STRATEGIES)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if cpu_logical_devices and cpu_logical_devices > 1:
        configure_cpu_logical_devices(int(cpu_logical_devices))
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # NCCL is GPU-only: reduce on one device instead.
        return tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if "TF_CONFIG" not in os.environ:
        raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                         "(cluster spec and this worker's task)")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from error
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL
                      if tf.config.list_physical_devices("GPU")
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))


def is_chief(strategy):
    """True on the one process that writes the checkpoints every worker resumes from, logs, samples, exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return is_chief_task(resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())


def is_chief_task(task_type, task_id, cluster):
    """Exactly one task of `cluster` ({type: [addresses]}) is chief: the `chief` task if any, else worker 0."""
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and not cluster.get("chief")

"""Checkpoints that resume exactly: both networks, both optimizers (slots and step counter).

`tf.train.CheckpointManager` writes each checkpoint under a temporary name and
only then updates the `checkpoint` index file, so a `kill -9` mid-save leaves
the previous checkpoint as the latest one. The step counter is the generator
optimizer's `iterations`, which is part of the checkpoint.
"""

import logging

import numpy as np
import tensorflow as tf

logger = logging.getLogger("sr_keras.training")


def all_finite(variables):
    return all(bool(np.isfinite(np.asarray(v.numpy())).all()) for v in variables)


class TrainingCheckpoint:
    """Save / restore an `SRGAN` (compiled) to `directory`, keeping the newest `max_to_keep`."""

    def __init__(self, model, directory, max_to_keep=3):
        self.model = model
        self.directory = str(directory)
        # Explicit variable lists: Keras 3 models do not expose their variables to
        # tf.train.Checkpoint's object graph, so listing them makes the format explicit
        # (ordered as the networks create them) and covers non-trainable state (EMA).
        self.checkpoint = tf.train.Checkpoint(
            generator=list(model.generator.variables),
            discriminator=list(model.discriminator.variables),
            ema=list(model.ema_variables),
            g_optimizer=list(model.g_optimizer.variables),
            d_optimizer=list(model.d_optimizer.variables))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=max_to_keep)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore_latest(self):
        """Restore the newest checkpoint if there is one; return the step it holds (0 if none)."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        self.checkpoint.restore(path).assert_existing_objects_matched()
        step = self.model.step
        logger.info("resumed from %s at step %d", path, step)
        return step

    def save(self):
        """Write a checkpoint at the current step, unless a weight is NaN/Inf (then keep the last good one)."""
        if not all_finite(self.model.variables):
            logger.error("not saving a checkpoint at step %d: the weights hold NaN/Inf; keeping %s",
                         self.model.step, self.manager.latest_checkpoint)
            return None
        return self.manager.save(checkpoint_number=self.model.step)

"""The G-MGBP GAN: one LR batch, the generator at two noise amplitudes, alternating D and G updates.

Per step (arXiv:1809.10711, G-MGBP training):
  * Y0 = G(lr, amplitude 0) and Y1 = G(lr, amplitude 1), both as pyramids (2x, 4x, ...);
  * discriminator update: real HR pyramid vs the (stopped) Y1 pyramid;
  * generator update on  w_rec * L_rec(Y0, HR) + w_per * L_per(Y1, HR) + w_adv * L_GAN(Y1),
    L_GAN judged by the freshly updated discriminator.
A reconstruction-only warm-up (no D, no Y1) may precede the adversarial phase.

Global batch semantics under `tf.distribute`: the dataset yields the *global* batch,
the strategy splits it over replicas, every loss is a mean over the replica's share and
is scaled by 1 / num_replicas before differentiation; the optimizers all-reduce (sum) the
gradients, so an update equals the one a single device would make on the global batch.
Reported losses are Mean metrics aggregated over replicas (the global-batch mean).
"""

import keras
import tensorflow as tf

from sr_keras import losses as sr_losses
from sr_keras.metrics.distortion import psnr_y_tf

_PACKAGE = "sr_keras"


def psnr(predicted, target, shave=0, channel="rgb"):
    """Per-image PSNR in dB of [0, 1] images (prediction clipped), `shave` border pixels dropped.

    channel "y" is the benchmark convention (MATLAB studio-range luma, `sr_keras.metrics`).
    """
    if channel == "y":
        return psnr_y_tf(target, predicted, shave)
    if channel != "rgb":
        raise ValueError(f"channel must be 'rgb' or 'y', got {channel!r}")
    predicted = tf.clip_by_value(tf.cast(predicted, tf.float32), 0.0, 1.0)
    target = tf.cast(target, tf.float32)
    if shave:
        predicted = predicted[:, shave:-shave, shave:-shave, :]
        target = target[:, shave:-shave, shave:-shave, :]
    mse = tf.reduce_mean(tf.square(predicted - target), axis=[1, 2, 3])
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-10)) / tf.math.log(10.0)


def _replica_scale(value):
    """Divide by the replica count: optimizers sum gradients over replicas (global-batch mean)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / tf.cast(replicas, value.dtype) if replicas > 1 else value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SRGAN(keras.Model):
    """Generator + multi-scale discriminator trained with the G-MGBP alternating step.

    Args:
      generator: an `MGBPGenerator` (returns the pyramid with `return_intermediates=True`).
      discriminator: judges a pyramid (coarsest first), returns (N, 1) logits.
      contextual: a `sr_keras.losses.ContextualLoss` or None (then L_per is off).
      reconstruction_weight, perceptual_weight, adversarial_weight: lambda1..3 (10, 0.1, 0.001).
      reconstruction_kind: "l1", "mse" or "ssim"; gan_kind: see `sr_keras.losses.discriminator_loss`.
      warmup_steps: generator steps trained on L_rec only (no D update) before the GAN phase.
      ema_decay: if > 0, keep an exponential moving average of the generator weights; it is
        used for validation (`test_step`) and by `inference_generator()` (export, samples).
      perceptual_amplitude: the noise amplitude of the textured branch (1 in the paper).
      psnr_channel: "rgb" or "y" for the validation PSNR; `scale` pixels are shaved.
    """

    def __init__(self, generator, discriminator, contextual=None, reconstruction_weight=10.0,
                 perceptual_weight=0.1, adversarial_weight=0.001, reconstruction_kind="l1",
                 gan_kind="nonsaturating", warmup_steps=0, ema_decay=0.0, perceptual_amplitude=1.0,
                 psnr_channel="rgb", **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        if int(warmup_steps) < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.contextual = contextual
        self.reconstruction_weight = float(reconstruction_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.reconstruction_kind = reconstruction_kind
        self.gan_kind = gan_kind
        self.warmup_steps = int(warmup_steps)
        self.ema_decay = float(ema_decay)
        self.perceptual_amplitude = float(perceptual_amplitude)
        self.psnr_channel = psnr_channel
        self.scale = int(generator.scale)
        self._adversarial = self.warmup_steps == 0
        self._ema = []
        if self.ema_decay > 0:
            # aggregation="mean": replicas assign identical values, so updates are legal in replica context.
            for w in generator.trainable_weights:
                v = self.add_weight(shape=w.shape, initializer="zeros", trainable=False,
                                    aggregation="mean", name="ema_" + w.path.replace("/", "_"))
                v.assign(w)
                self._ema.append(v)
        names = ["g_total", "reconstruction", "perceptual", "adversarial", "d_loss", "real_score",
                 "fake_score"]
        self._train_trackers = {n: keras.metrics.Mean(name=n) for n in names}
        val_names = ["psnr", "bicubic_psnr"] + (["contextual"] if contextual is not None else [])
        self._test_trackers = {n: keras.metrics.Mean(name=n) for n in val_names}

    # -- compile / phases -----------------------------------------------------------

    def compile(self, g_optimizer, d_optimizer, sample_lr_size=16, **kwargs):
        """Set both optimizers (g_optimizer also counts the steps) and build them and the networks."""
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        if not self.discriminator.built:
            lr = tf.zeros([1, sample_lr_size, sample_lr_size, 3])
            self.discriminator(self.generator(lr, return_intermediates=True))
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def ema_variables(self):
        """The EMA of the generator's trainable weights (empty when ema_decay is 0)."""
        return list(self._ema)

    @property
    def step(self):
        """Generator updates done so far (the training step counter, restored on resume)."""
        return int(self.g_optimizer.iterations.numpy())

    def make_train_function(self, force=False):
        """One traced step per phase (warm-up, adversarial); each call picks by the step counter.

        With `steps_per_execution` > 1 the switch happens at the first execution that starts
        at or after `warmup_steps`.
        """
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        warmup_fn = self.train_function
        super().make_train_function(force=True)
        adversarial_fn = self.train_function

        def train_function(iterator):
            self._adversarial = self.step >= self.warmup_steps
            return (adversarial_fn if self._adversarial else warmup_fn)(iterator)

        self.train_function = train_function
        return train_function

    @property
    def metrics(self):
        return [*self._train_trackers.values(), *self._test_trackers.values()]

    # -- steps --------------------------------------------------------------------

    def train_step(self, data):
        lr, pyramid, _ = keras.utils.unpack_x_y_sample_weight(data)
        pyramid = list(pyramid)
        adversarial = self._adversarial
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        t = self._train_trackers
        with tf.GradientTape() as g_tape:
            y0 = self.generator(lr, noise_amplitude=0.0, return_intermediates=True, training=True)
            rec = sr_losses.reconstruction_loss(y0, pyramid, kind=self.reconstruction_kind)
            total = self.reconstruction_weight * rec
            if adversarial:
                y1 = self.generator(lr, noise_amplitude=self.perceptual_amplitude,
                                    return_intermediates=True, training=True)
                with tf.GradientTape() as d_tape:
                    real_logits = self.discriminator(pyramid, training=True)
                    fake_logits = self.discriminator([tf.stop_gradient(y) for y in y1], training=True)
                    d_loss = sr_losses.discriminator_loss(real_logits, fake_logits, kind=self.gan_kind)
                    scaled_d_loss = _replica_scale(d_loss)  # inside the tape, or it has no gradient
                d_grads = d_tape.gradient(scaled_d_loss, d_vars)
                self.d_optimizer.apply(d_grads, d_vars)
                # G is judged by the discriminator as just updated (alternating steps).
                g_fake_logits = self.discriminator(y1, training=True)
                g_real_logits = tf.stop_gradient(self.discriminator(pyramid, training=True)) \
                    if self.gan_kind == "relativistic" else tf.stop_gradient(real_logits)
                adv = sr_losses.generator_adversarial_loss(g_real_logits, g_fake_logits, kind=self.gan_kind)
                total += self.adversarial_weight * adv
                if self.contextual is not None and self.perceptual_weight > 0:
                    per = self._contextual(y1, pyramid)
                    total += self.perceptual_weight * per
                    t["perceptual"].update_state(per)
                t["adversarial"].update_state(adv)
                t["d_loss"].update_state(d_loss)
                t["real_score"].update_state(tf.reduce_mean(real_logits))
                t["fake_score"].update_state(tf.reduce_mean(fake_logits))
            scaled_total = _replica_scale(total)
        g_grads = g_tape.gradient(scaled_total, g_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        if self._ema:
            d = self.ema_decay
            for e, w in zip(self._ema, g_vars, strict=True):
                e.assign(d * e + (1.0 - d) * w)
        t["reconstruction"].update_state(rec)
        t["g_total"].update_state(total)
        return {k: m.result() for k, m in t.items()}

    def _contextual(self, predicted, target):
        """The contextual pyramid loss as a plain replica mean (like the other terms)."""
        value = sr_losses.contextual_pyramid_loss(self.contextual, predicted, target)
        if getattr(self.contextual, "reduction", None) in ("sum_over_batch_size", "mean"):
            # Keras losses with these reductions already divide by the replica count; undo it
            # so the single 1/replicas scaling in train_step applies to every term alike.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            value = value * tf.cast(replicas, value.dtype)
        return tf.reduce_mean(value)

    def _inference(self, lr, amplitude, intermediates):
        """The generator with the EMA weights when kept (no side effects), else as trained."""
        if not self._ema:
            return self.generator(lr, noise_amplitude=amplitude, return_intermediates=intermediates)
        out, _ = self.generator.stateless_call(
            [e.value for e in self._ema], [v.value for v in self.generator.non_trainable_variables],
            lr, noise_amplitude=amplitude, return_intermediates=intermediates)
        return out

    def test_step(self, data):
        lr, pyramid, _ = keras.utils.unpack_x_y_sample_weight(data)
        pyramid = list(pyramid)
        hr = pyramid[-1]
        t = self._test_trackers
        y0 = self._inference(lr, 0.0, intermediates=False)
        t["psnr"].update_state(psnr(y0, hr, self.scale, self.psnr_channel))
        bicubic = tf.image.resize(lr, tf.shape(hr)[1:3], method="bicubic")
        t["bicubic_psnr"].update_state(psnr(bicubic, hr, self.scale, self.psnr_channel))
        if "contextual" in t:
            y1 = self._inference(lr, self.perceptual_amplitude, intermediates=True)
            t["contextual"].update_state(self._contextual(y1, pyramid))
        return {k: m.result() for k, m in t.items()}

    def call(self, lr, noise_amplitude=0.0, training=False):
        return self.generator(lr, noise_amplitude=noise_amplitude, training=training)

    # -- export ---------------------------------------------------------------------

    def inference_generator(self):
        """The generator to validate/export: a copy holding the EMA weights if kept, else itself."""
        if not self._ema:
            return self.generator
        copy = self.generator.__class__.from_config(self.generator.get_config())
        for target, e in zip(copy.trainable_variables, self._ema, strict=True):
            target.assign(e.numpy())
        for target, v in zip(copy.non_trainable_variables, self.generator.non_trainable_variables, strict=True):
            target.assign(v.numpy())
        return copy

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "reconstruction_weight": self.reconstruction_weight,
            "perceptual_weight": self.perceptual_weight,
            "adversarial_weight": self.adversarial_weight,
            "reconstruction_kind": self.reconstruction_kind,
            "gan_kind": self.gan_kind,
            "warmup_steps": self.warmup_steps,
            "ema_decay": self.ema_decay,
            "perceptual_amplitude": self.perceptual_amplitude,
            "psnr_channel": self.psnr_channel,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuilds without the contextual loss (pass `contextual` again if needed)."""
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)

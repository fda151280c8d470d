"""The G-MGBP GAN step: both networks learn, warm-up skips D, EMA, validation PSNR, checkpoints."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.data.pipeline import downsample_pyramid
from sr_keras.losses import ContextualLoss
from sr_keras.metrics import psnr
from sr_keras.models.discriminator import MultiScaleDiscriminator
from sr_keras.models.gan import SRGAN
from sr_keras.training.checkpoint import TrainingCheckpoint


def smooth_images(n, size, seed=0):
    """Learnable images: blurred noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, size // 4, size // 4, 3)).astype("float32")
    return tf.clip_by_value(tf.image.resize(x, (size, size), "bicubic"), 0.0, 1.0).numpy()


def batches(n=4, size=32, levels=2, seed=0):
    hr = smooth_images(n, size, seed)
    lr, *pyramid = downsample_pyramid(hr, levels)
    return lr.numpy(), tuple(p.numpy() for p in pyramid)


def make_gan(tiny_generator, **kwargs):
    keras.utils.set_random_seed(1)
    g = tiny_generator(scale=4)
    d = MultiScaleDiscriminator(2, filters=4, depth=1, max_filters=8)
    gan = SRGAN(g, d, **kwargs)
    gan.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3), sample_lr_size=8)
    return gan


def snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def changed(before, model):
    return any(not np.allclose(a, v.numpy()) for a, v in zip(before, model.trainable_variables, strict=True))


def test_train_step_updates_both_networks_and_lowers_losses(tiny_generator):
    gan = make_gan(tiny_generator, contextual=ContextualLoss(None, max_positions=64))
    lr, pyramid = batches()
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    first = gan.train_on_batch(lr, pyramid, return_dict=True)
    assert changed(g0, gan.generator) and changed(d0, gan.discriminator)
    assert set(first) >= {"g_total", "reconstruction", "perceptual", "adversarial", "d_loss",
                          "real_score", "fake_score"}
    assert first["perceptual"] > 0 and first["adversarial"] > 0 and first["d_loss"] > 0
    total = (10 * first["reconstruction"] + 0.1 * first["perceptual"] + 0.001 * first["adversarial"])
    assert first["g_total"] == pytest.approx(total, rel=1e-4)
    for _ in range(25):
        last = gan.train_on_batch(lr, pyramid, return_dict=True)
    gan.reset_metrics()
    last = gan.train_on_batch(lr, pyramid, return_dict=True)
    assert last["reconstruction"] < 0.7 * first["reconstruction"]
    assert last["g_total"] < 0.7 * first["g_total"]
    assert gan.step == 27 and int(gan.d_optimizer.iterations.numpy()) == 27


def test_warmup_skips_discriminator_then_switches(tiny_generator):
    gan = make_gan(tiny_generator, warmup_steps=3)
    lr, pyramid = batches()
    d0 = snapshot(gan.discriminator)
    for _ in range(3):
        logs = gan.train_on_batch(lr, pyramid, return_dict=True)
    assert not changed(d0, gan.discriminator)
    assert int(gan.d_optimizer.iterations.numpy()) == 0 and gan.step == 3
    assert logs["adversarial"] == 0 and logs["reconstruction"] > 0
    assert logs["g_total"] == pytest.approx(10 * logs["reconstruction"], rel=1e-5)
    gan.train_on_batch(lr, pyramid)
    gan.train_on_batch(lr, pyramid)
    assert changed(d0, gan.discriminator)
    assert int(gan.d_optimizer.iterations.numpy()) == 2 and gan.step == 5


def test_fit_with_callbacks_and_validation(tiny_generator):
    gan = make_gan(tiny_generator, warmup_steps=2)
    lr, pyramid = batches(n=8)
    ds = tf.data.Dataset.from_tensor_slices((lr, pyramid)).batch(4, drop_remainder=True).repeat()
    val = tf.data.Dataset.from_tensor_slices(batches(n=2, seed=5)).batch(1)
    seen = []
    history = gan.fit(ds, epochs=2, steps_per_epoch=3, validation_data=val, verbose=0,
                      callbacks=[keras.callbacks.LambdaCallback(
                          on_train_batch_end=lambda b, logs: seen.append(gan.step))])
    assert seen == [1, 2, 3, 4, 5, 6]
    assert int(gan.d_optimizer.iterations.numpy()) == 4
    assert {"val_psnr", "val_bicubic_psnr", "d_loss"} <= set(history.history)
    assert np.isfinite(history.history["val_psnr"]).all()


def test_psnr_numbers():
    target = np.full((2, 8, 8, 3), 0.5, "float32")
    np.testing.assert_allclose(psnr(target + 0.1, target).numpy(), [20.0, 20.0], rtol=1e-5)
    # The prediction is clipped to [0, 1] first; the shaved border does not count.
    noisy = target.copy()
    noisy[:, 0, :, :] = 9.0
    np.testing.assert_allclose(psnr(noisy, target, shave=1).numpy(), [100.0, 100.0], rtol=1e-5)
    y = psnr(target + 0.1, target, channel="y").numpy()
    np.testing.assert_allclose(y, 20 - 20 * np.log10((65.481 + 128.553 + 24.966) / 255), rtol=1e-4)


def test_ema_is_used_for_validation_and_export(tiny_generator):
    gan = make_gan(tiny_generator, ema_decay=0.9)
    lr, pyramid = batches()
    for _ in range(3):
        gan.train_on_batch(lr, pyramid)
    g = gan.generator.trainable_variables
    ema = gan._ema
    expected = [w.numpy() for w in g]
    assert any(not np.allclose(e.numpy(), w) for e, w in zip(ema, expected, strict=True))
    exported = gan.inference_generator()
    assert exported is not gan.generator
    for e, w in zip(ema, exported.trainable_variables, strict=True):
        np.testing.assert_array_equal(e.numpy(), w.numpy())
    val = tf.data.Dataset.from_tensor_slices(batches(n=2, seed=3)).batch(2)
    logs = gan.evaluate(val, verbose=0, return_dict=True)
    vlr, vpyr = batches(n=2, seed=3)
    want = float(np.mean(psnr(exported(vlr, noise_amplitude=0.0), vpyr[-1], shave=4)))
    trained = float(np.mean(psnr(gan.generator(vlr, noise_amplitude=0.0), vpyr[-1], shave=4)))
    assert logs["psnr"] == pytest.approx(want, abs=1e-3)
    assert abs(want - trained) > 1e-3  # the EMA really differs from the raw weights


def test_bad_options_are_refused(tiny_generator):
    g = tiny_generator(scale=4)
    d = MultiScaleDiscriminator(2, filters=4, depth=1)
    with pytest.raises(ValueError, match="ema_decay"):
        SRGAN(g, d, ema_decay=1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        SRGAN(g, d, warmup_steps=-1)


def test_checkpoint_restores_networks_optimizers_and_step(tiny_generator, tmp_path):
    gan = make_gan(tiny_generator, ema_decay=0.5)
    lr, pyramid = batches()
    for _ in range(3):
        gan.train_on_batch(lr, pyramid)
    path = TrainingCheckpoint(gan, tmp_path).save()
    assert path.endswith("ckpt-3")
    other = make_gan(tiny_generator, ema_decay=0.5)
    assert TrainingCheckpoint(other, tmp_path).restore_latest() == 3
    for a, b in zip(gan.variables, other.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for opt_a, opt_b in ((gan.g_optimizer, other.g_optimizer), (gan.d_optimizer, other.d_optimizer)):
        assert len(opt_a.variables) == len(opt_b.variables)
        for a, b in zip(opt_a.variables, opt_b.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Same state, same next step (the textured branch is drawn with the same noise only if
    # seeded, so compare a warm-up-free deterministic quantity: the generator's next update).
    assert other.step == 3


def test_checkpoint_refuses_non_finite_weights(tiny_generator, tmp_path):
    gan = make_gan(tiny_generator)
    ckpt = TrainingCheckpoint(gan, tmp_path)
    assert ckpt.save() is not None
    w = gan.generator.trainable_variables[0]
    w.assign(np.full(w.shape, np.nan, "float32"))
    assert ckpt.save() is None
    assert ckpt.latest.endswith("ckpt-0")

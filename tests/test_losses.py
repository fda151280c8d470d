"""Losses: known answers for reconstruction, adversarial and contextual losses; the VGG trunk."""

import math

import numpy as np
import pytest
import tensorflow as tf

from sr_keras.losses import (
    ContextualLoss,
    VGGFeatures,
    contextual_pyramid_loss,
    contextual_similarity,
    discriminator_loss,
    generator_adversarial_loss,
    reconstruction_loss,
)
from sr_keras.losses import contextual as contextual_module

LOG2 = math.log(2.0)


def const(value, size, batch=2):
    return tf.fill([batch, size, size, 3], float(value))


def batch_mean(per_image):
    """Losses return one value per image; the tests' known answers are batch means."""
    assert per_image.shape.rank == 1, per_image.shape
    return float(tf.reduce_mean(per_image))


# -- reconstruction ------------------------------------------------------------------


def test_reconstruction_sums_per_level_means():
    predicted = [const(0.2, 8), const(0.5, 16)]
    target = [const(0.0, 8), const(0.0, 16)]
    assert batch_mean(reconstruction_loss(predicted, target, "l1")) == pytest.approx(0.7, abs=1e-6)
    assert batch_mean(reconstruction_loss(predicted, target, "mse")) == pytest.approx(0.04 + 0.25, abs=1e-6)
    # a single tensor is a one-level pyramid
    assert batch_mean(reconstruction_loss(const(0.3, 4), const(0.1, 4))) == pytest.approx(0.2, abs=1e-6)


def test_losses_return_one_value_per_image():
    predicted = [tf.concat([const(0.2, 8, 1), const(0.6, 8, 1)], 0)]
    np.testing.assert_allclose(reconstruction_loss(predicted, [const(0.0, 8)]).numpy(), [0.2, 0.6], rtol=1e-6)
    real, fake = tf.constant([[1.0], [3.0]]), tf.constant([[0.0], [-2.0]])
    np.testing.assert_allclose(discriminator_loss(real, fake, "hinge").numpy(), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(generator_adversarial_loss(real, fake, "lsgan").numpy(), [1.0, 9.0], atol=1e-6)


def test_ssim_loss_zero_for_equal_and_positive_otherwise_even_on_small_levels():
    rng = np.random.default_rng(0)
    images = [rng.random((2, 6, 6, 3), dtype=np.float32), rng.random((2, 24, 24, 3), dtype=np.float32)]
    assert batch_mean(reconstruction_loss(images, images, "ssim")) == pytest.approx(0.0, abs=1e-5)
    noisy = [np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype("float32") for x in images]
    assert batch_mean(reconstruction_loss(noisy, images, "ssim")) > 0.2


def test_reconstruction_rejects_unknown_kind_and_level_mismatch():
    with pytest.raises(ValueError, match=r"'l1', 'mse', 'ssim'"):
        reconstruction_loss([const(0, 4)], [const(0, 4)], "l2")
    with pytest.raises(ValueError, match="1 levels but target has 2"):
        reconstruction_loss([const(0, 4)], [const(0, 4), const(0, 8)])


# -- adversarial ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, d_value, g_value", [
    ("nonsaturating", 2 * LOG2, LOG2),
    ("hinge", 2.0, 0.0),
    ("lsgan", 1.0, 1.0),
    ("relativistic", 2 * LOG2, 2 * LOG2),
])
def test_adversarial_losses_at_zero_logits(kind, d_value, g_value):
    zeros = tf.zeros([4, 1])
    assert batch_mean(discriminator_loss(zeros, zeros, kind)) == pytest.approx(d_value, abs=1e-6)
    assert batch_mean(generator_adversarial_loss(zeros, zeros, kind)) == pytest.approx(g_value, abs=1e-6)


def softplus(x):
    return np.log1p(np.exp(x))


def test_adversarial_losses_at_other_logits():
    real, fake = np.array([[1.0], [3.0]], "float32"), np.array([[0.0], [-2.0]], "float32")
    ns_d = np.mean(softplus(-real)) + np.mean(softplus(fake))
    assert batch_mean(discriminator_loss(real, fake)) == pytest.approx(ns_d, rel=1e-5)
    assert batch_mean(generator_adversarial_loss(real, fake)) == pytest.approx(np.mean(softplus(-fake)), rel=1e-5)
    # hinge: real 1 and 3 are past the margin (0 loss); fake 0 -> 1, fake -2 -> 0
    assert batch_mean(discriminator_loss(real, fake, "hinge")) == pytest.approx(0.5, abs=1e-6)
    assert batch_mean(generator_adversarial_loss(real, fake, "hinge")) == pytest.approx(1.0, abs=1e-6)
    assert batch_mean(discriminator_loss(real, fake, "lsgan")) == pytest.approx((0 + 4) / 2 + (0 + 4) / 2, abs=1e-6)
    assert batch_mean(generator_adversarial_loss(real, fake, "lsgan")) == pytest.approx((1 + 9) / 2, abs=1e-6)
    # RaGAN: mean real 2, mean fake -1
    ra_d = np.mean(softplus(-(real + 1))) + np.mean(softplus(fake - 2))
    ra_g = np.mean(softplus(-(fake - 2))) + np.mean(softplus(real + 1))
    assert batch_mean(discriminator_loss(real, fake, "relativistic")) == pytest.approx(ra_d, rel=1e-5)
    assert batch_mean(generator_adversarial_loss(real, fake, "relativistic")) == pytest.approx(ra_g, rel=1e-5)


def test_adversarial_unknown_kind():
    with pytest.raises(ValueError, match="nonsaturating.*hinge.*lsgan.*relativistic"):
        discriminator_loss(tf.zeros([1, 1]), tf.zeros([1, 1]), "wgan")
    with pytest.raises(ValueError, match="choose one of"):
        generator_adversarial_loss(tf.zeros([1, 1]), tf.zeros([1, 1]), "wgan")


# -- contextual ----------------------------------------------------------------------


def cx_loss_numpy(target_maps, output_maps, h=0.5, eps=1e-5):
    """Mechrez et al. 2018 written out in numpy, independently of sr_keras: one value per image.

    For each image: centre both feature sets by the target's mean, cosine distance
    d(i, j) between output i and target j, relative to output i's nearest target,
    exp((1 - d~) / h) normalised over targets j, then for each target the best output,
    averaged over targets; -log; summed over the feature maps (layers).
    """
    losses = np.zeros(target_maps[0].shape[0])
    for target, output in zip(target_maps, output_maps, strict=True):
        for b in range(target.shape[0]):
            y = target[b].reshape(-1, target.shape[-1]).astype(np.float64)
            x = output[b].reshape(-1, output.shape[-1]).astype(np.float64)
            centre = y.mean(axis=0)
            x, y = x - centre, y - centre
            cosine = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
            d = 1.0 - cosine
            relative = d / (d.min(axis=1, keepdims=True) + eps)
            w = np.exp((1.0 - relative) / h)
            cx_ij = w / w.sum(axis=1, keepdims=True)
            losses[b] += -np.log(cx_ij.max(axis=0).mean())
    return losses


def test_contextual_loss_equals_a_direct_numpy_implementation():
    rng = np.random.default_rng(1)
    target = [rng.normal(size=(3, 5, 4, 6)), rng.normal(size=(3, 3, 3, 6))]
    output = [t + rng.normal(scale=s, size=t.shape) for t, s in zip(target, (0.7, 1.5), strict=True)]
    cx = ContextualLoss(None, max_positions=1000)
    ours = cx.per_image([tf.constant(t, tf.float32) for t in target], [tf.constant(o, tf.float32) for o in output],
                        seed=[0, 0]).numpy()
    want = cx_loss_numpy(target, output)
    assert ours.shape == (3,) and np.all(want > 0.05)
    np.testing.assert_allclose(ours, want, rtol=1e-4)
    # the similarity alone, on flattened sets of different sizes
    x, y = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 7, 4))
    sim = contextual_similarity(tf.constant(x, tf.float32), tf.constant(y, tf.float32)).numpy()
    np.testing.assert_allclose(-np.log(sim), cx_loss_numpy([y[:, :, None]], [x[:, :, None]]), rtol=1e-4)


def test_contextual_loss_zero_for_identical_sets_and_grows_with_difference():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    cx = ContextualLoss()
    assert batch_mean(cx.per_image(features, features, [0, 0])) == pytest.approx(0.0, abs=1e-4)
    # permuting positions does not change a feature *set*
    shuffled = features.reshape(2, 36, 8)[:, rng.permutation(36)].reshape(2, 6, 6, 8)
    assert float(cx(features, shuffled)) == pytest.approx(0.0, abs=1e-4)
    noise = rng.normal(size=features.shape).astype("float32")
    values = [float(cx(features, features + sigma * noise)) for sigma in (0.05, 0.3, 0.5, 1.0)]
    unrelated = float(cx(features, rng.normal(size=features.shape).astype("float32")))
    # tiny noise keeps every feature's nearest match (CX is relative): still ~0; then it grows
    assert values[0] == pytest.approx(0.0, abs=1e-4)
    assert values[1] < values[2] < values[3] < unrelated, (values, unrelated)
    assert values[1] > 1e-3 and unrelated > 0.5


def test_sampled_contextual_loss_of_identical_inputs_is_near_zero(monkeypatch):
    """With more positions than max_positions, output and target keep the same positions."""
    seen = []
    original = contextual_module.contextual_similarity

    def spy(pred, target, *args):
        seen.append((tuple(pred.shape), tuple(target.shape)))
        return original(pred, target, *args)

    monkeypatch.setattr(contextual_module, "contextual_similarity", spy)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(2, 16, 16, 4)).astype("float32")
    cx = ContextualLoss(max_positions=32)
    values = [cx.per_image(features, features, [s, 7]).numpy() for s in range(3)]
    assert seen == [((2, 32, 4), (2, 32, 4))] * 3
    assert np.max(values) <= 1e-3
    # under the cap nothing is sampled
    seen.clear()
    ContextualLoss(max_positions=256)(features, features)
    assert seen == [((2, 256, 4), (2, 256, 4))]


def test_sampled_positions_are_the_same_distinct_rows_of_both_inputs():
    rows = tf.reshape(tf.range(2 * 50 * 3, dtype=tf.float32), [2, 50, 3])
    pred, target = contextual_module._sample_positions(rows, rows + 1000.0, 20, seed=tf.constant([1, 2], tf.int64))
    assert pred.shape == (2, 20, 3)
    np.testing.assert_array_equal(target.numpy() - 1000.0, pred.numpy())
    for b in range(2):
        firsts = pred.numpy()[b, :, 0]
        assert len(set(firsts)) == 20
        assert set(firsts) <= set(rows.numpy()[b, :, 0])
    again, _ = contextual_module._sample_positions(rows, rows, 20, seed=tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(again.numpy(), pred.numpy())  # stateless: the seed decides


def test_contextual_pyramid_loss_sums_scales():
    rng = np.random.default_rng(4)
    a = [rng.random((1, 4, 4, 3), dtype=np.float32), rng.random((1, 8, 8, 3), dtype=np.float32)]
    b = [rng.random((1, 4, 4, 3), dtype=np.float32), rng.random((1, 8, 8, 3), dtype=np.float32)]
    cx = ContextualLoss()
    total = contextual_pyramid_loss(cx, a, b).numpy()
    assert total.shape == (1,)
    assert float(total[0]) == pytest.approx(float(cx(b[0], a[0])) + float(cx(b[1], a[1])), rel=1e-5)
    with pytest.raises(ValueError, match="levels"):
        contextual_pyramid_loss(cx, a, b[:1])


# -- VGG -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_npz(shared_file):
    return shared_file("weights/vgg16_imagenet_conv.npz")


def test_vgg_features_match_a_direct_conv_chain(vgg_npz):
    layer = VGGFeatures(layers=("block1_conv2", "block2_conv1"), weights=vgg_npz)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 6
    arrays = np.load(vgg_npz)
    rng = np.random.default_rng(5)
    images = rng.random((2, 20, 24, 3), dtype=np.float32)

    def conv(x, name):
        y = tf.nn.conv2d(x, arrays[f"{name}/kernel"], 1, "SAME") + arrays[f"{name}/bias"]
        return tf.nn.relu(y)

    x = (images - np.array([0.485, 0.456, 0.406], "float32")) / np.array([0.229, 0.224, 0.225], "float32")
    relu1_2 = conv(conv(x, "block1_conv1"), "block1_conv2")
    relu2_1 = conv(tf.nn.max_pool2d(relu1_2, 2, 2, "VALID"), "block2_conv1")
    ours = layer(images)
    assert [tuple(o.shape) for o in ours] == [(2, 20, 24, 64), (2, 10, 12, 128)]
    np.testing.assert_allclose(ours[0], relu1_2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours[1], relu2_1, rtol=1e-4, atol=1e-3)


def test_vgg_contextual_loss_in_tf_function_and_strategy(vgg_npz):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        features = VGGFeatures(weights=vgg_npz)
        cx = ContextualLoss(features, max_positions=256, seed=0)
    rng = np.random.default_rng(6)
    images = tf.constant(rng.random((2, 32, 32, 3), dtype=np.float32))
    blurred = tf.image.resize(tf.image.resize(images, [8, 8], antialias=True), [32, 32])

    @tf.function
    def step(a, b):
        with tf.GradientTape() as tape:
            tape.watch(b)
            loss = cx(a, b)
        return loss, tape.gradient(loss, b)

    loss, grad = strategy.run(step, args=(images, blurred))
    assert float(loss) > 0.1 and np.isfinite(float(loss))
    assert float(tf.reduce_max(tf.abs(grad))) > 0
    assert float(step(images, images)[0]) < float(loss)


def test_vgg_errors_name_the_problem(tmp_path, monkeypatch):
    import keras

    with pytest.raises(ValueError, match="block9_conv1"):
        VGGFeatures(layers=("block9_conv1",), weights=None)
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        VGGFeatures(weights=missing)
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{"block1_conv1/kernel": np.zeros((3, 3, 3, 64), "float32")})
    with pytest.raises(ValueError, match="partial.npz.*block1_conv1/bias"):
        VGGFeatures(layers=("block1_conv1",), weights=partial)

    def offline(**kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(RuntimeError, match="weights='path/to/vgg16_imagenet_conv.npz'"):
        VGGFeatures(layers=("block1_conv1",), weights="imagenet")

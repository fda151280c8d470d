"""Cost of the contextual loss's position sampling at the patch sizes we train on.

    python bench/contextual_cost.py --weights ../shared/weights/vgg16_imagenet_conv.npz

For each HR patch size and `max_positions` (a cap, or none: every position), one JSON line:
the seconds of one forward + backward of the pyramid loss (VGG16 block2_conv2 + block3_conv3 on
the 2x and 4x levels) for a batch, the positions per feature map before and after the cap, the
float32 bytes of the largest pairwise matrix per image, and the loss of identical inputs.
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf

from sr_keras.losses import ContextualLoss, VGGFeatures, contextual_pyramid_loss


def measure(cx, patch, batch, repeats):
    rng = np.random.default_rng(0)
    small = rng.random((batch, patch // 8, patch // 8, 3)).astype("float32")
    hr = tf.clip_by_value(tf.image.resize(small, (patch, patch), "bicubic"), 0.0, 1.0)
    target = [tf.image.resize(hr, (patch // 2, patch // 2), antialias=True), hr]
    output = [tf.clip_by_value(t + 0.05 * tf.random.stateless_normal(tf.shape(t), [1, 2]), 0.0, 1.0) for t in target]

    @tf.function
    def step(out):
        with tf.GradientTape() as tape:
            tape.watch(out)
            loss = tf.reduce_mean(contextual_pyramid_loss(cx, out, target, [3, 4]))
        return loss, tape.gradient(loss, out)

    step(output)
    t0 = time.perf_counter()
    for _ in range(repeats):
        step(output)
    seconds = (time.perf_counter() - t0) / repeats
    identical = float(tf.reduce_max(contextual_pyramid_loss(cx, target, target, [3, 4])))
    return seconds, identical


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="vgg16_imagenet_conv.npz")
    parser.add_argument("--patches", type=int, nargs="*", default=[48, 128])
    parser.add_argument("--caps", type=int, nargs="*", default=[256, 1024, 0], help="0: no cap")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    features = VGGFeatures(weights=args.weights)
    for patch in args.patches:
        finest = (patch // 2) ** 2  # block2_conv2 of the HR level: the largest map
        for cap in args.caps:
            limit = cap or finest
            seconds, identical = measure(ContextualLoss(features, max_positions=limit), patch, args.batch,
                                         args.repeats)
            kept = min(finest, limit)
            print(json.dumps({"patch": patch, "max_positions": cap or "none", "batch": args.batch,
                              "largest_map_positions": finest, "kept_positions": kept,
                              "largest_matrix_mib_per_image": round(kept * kept * 4 / 2**20, 1),
                              "forward_backward_s": round(seconds, 3), "identical_inputs_loss": identical}),
                  flush=True)


if __name__ == "__main__":
    main()

"""Pyramid bookkeeping shared by the generator, the losses and the data pipeline.

The method works on a pyramid of 2x levels: a scale s has log2(s) of them, the
generator predicts one image a level and every loss pairs them with the target
pyramid's, coarsest first.
"""

import math

SCALES = (2, 4, 8)


def levels_of(scale):
    """Number of 2x levels for `scale` (2, 4 or 8)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be 2, 4 or 8, got {scale!r}")
    return int(round(math.log2(scale)))


def as_levels(images, what="images"):
    """A pyramid as a list; a single tensor is a one-level pyramid."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{what}: empty pyramid")
        return list(images)
    return [images]


def paired_levels(predicted, target):
    """[(predicted_l, target_l), ...] for two pyramids (or single images) of the same depth."""
    predicted, target = as_levels(predicted, "predicted"), as_levels(target, "target")
    if len(predicted) != len(target):
        raise ValueError(f"predicted has {len(predicted)} levels but target has {len(target)}")
    return list(zip(predicted, target, strict=True))

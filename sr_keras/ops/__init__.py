"""Image operations that must match MATLAB exactly, because benchmark numbers depend on them."""

from sr_keras.ops.color import rgb_to_y, rgb_to_y_tf
from sr_keras.ops.imresize import imresize, imresize_tf, resize_weights

__all__ = ["imresize", "imresize_tf", "resize_weights", "rgb_to_y", "rgb_to_y_tf"]

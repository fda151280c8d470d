"""sr-keras: perception-distortion controllable super-resolution (G-MGBP) in Keras 3."""

__version__ = "0.1.0"

from sr_keras._startup import quiet_tensorflow_start  # noqa: E402

quiet_tensorflow_start()  # before anything below imports TensorFlow

from sr_keras.metrics import LPIPS, PSNRY, SSIMY  # noqa: E402  (registers the Keras metrics)
from sr_keras.models.discriminator import MultiScaleDiscriminator  # noqa: E402
from sr_keras.models.gan import SRGAN  # noqa: E402
from sr_keras.models.generator import MGBPGenerator  # noqa: E402
from sr_keras.upscale import upscale  # noqa: E402
from sr_keras.zoo import pretrained  # noqa: E402

__all__ = ["LPIPS", "PSNRY", "SSIMY", "MGBPGenerator", "MultiScaleDiscriminator", "SRGAN", "pretrained", "upscale",
           "__version__"]

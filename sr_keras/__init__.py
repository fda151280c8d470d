"""sr-keras: perception-distortion controllable super-resolution (G-MGBP) in Keras 3."""

__version__ = "0.1.0"

from sr_keras.models.generator import MGBPGenerator  # noqa: E402

__all__ = ["MGBPGenerator", "__version__"]

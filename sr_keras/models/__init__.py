"""Networks: the MGBP generator, the multi-scale discriminator and the GAN that trains them."""

from sr_keras.models.discriminator import MultiScaleDiscriminator
from sr_keras.models.gan import SRGAN
from sr_keras.models.generator import MGBPGenerator

__all__ = ["MGBPGenerator", "MultiScaleDiscriminator", "SRGAN"]

"""Every layer of `sr_keras.models.blocks` survives get_config/from_config and a `.keras` file unchanged."""

import inspect

import keras
import numpy as np
import pytest

from sr_keras.models import blocks

# layer class -> (constructor arguments, input shape): tiny widths, odd sizes.
CASES = {
    blocks.BiasReLU: ({}, (2, 5, 7, 3)),
    blocks.Conv: ({"filters": 4, "kernel_size": 3, "strides": 2, "use_bias": True}, (2, 7, 9, 3)),
    blocks.DenseLayer: ({"growth": 4, "bottleneck": 8}, (2, 5, 7, 6)),
    blocks.FilterBlock: ({"depth": 2, "filters": 6, "growth": 4, "bottleneck": 8}, (2, 5, 7, 6)),
    blocks.Analysis: ({"filters": 6, "depth": 1, "growth": 4, "bottleneck": 8}, (2, 5, 7, 3)),
    blocks.Synthesis: ({"filters": 6, "depth": 1, "growth": 4, "bottleneck": 8}, (2, 5, 7, 6)),
    blocks.Upscaling: ({"filters": 4, "depth": 1, "growth": 4, "bottleneck": 8}, (2, 5, 7, 9)),
    blocks.Downscaling: ({"filters": 6, "depth": 1, "growth": 4, "bottleneck": 8}, (2, 6, 7, 6)),
    blocks.ClassicUpscale: ({}, (2, 5, 7, 3)),
}


def test_every_public_layer_of_blocks_is_covered():
    public = {cls for name, cls in inspect.getmembers(blocks, inspect.isclass)
              if issubclass(cls, keras.layers.Layer) and cls.__module__ == blocks.__name__ and not name.startswith("_")}
    assert public == set(CASES)


@pytest.mark.parametrize("layer_class", list(CASES), ids=lambda cls: cls.__name__)
def test_layer_round_trip(layer_round_trip, layer_class):
    init_kwargs, input_shape = CASES[layer_class]
    output = layer_round_trip(layer_class, init_kwargs, input_shape)
    assert np.all(np.isfinite(output)) and np.std(output) > 0  # a real output, not zeros


@pytest.mark.parametrize("layer_class", [blocks.Conv, blocks.FilterBlock, blocks.Upscaling, blocks.ClassicUpscale],
                         ids=lambda cls: cls.__name__)
def test_layer_round_trip_under_mixed_bfloat16(layer_round_trip, layer_class):
    init_kwargs, input_shape = CASES[layer_class]
    output = layer_round_trip(layer_class, init_kwargs, input_shape, dtype="mixed_bfloat16")
    assert str(output.dtype) == "bfloat16"  # computed in bfloat16 (the generator keeps ClassicUpscale float32 itself)

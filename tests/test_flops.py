"""The benchmark's FLOP counter: the published 4x network on a 128x128 input is 202.5 GFLOP
(the figure the speed goals in bench/ are stated against)."""

import importlib.util
import pathlib

from sr_keras import MGBPGenerator

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "flops.py"


def _load_flops_module():
    spec = importlib.util.spec_from_file_location("bench_flops", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_network_flops_on_128x128():
    flops = _load_flops_module()
    total, per_block = flops.generator_flops(MGBPGenerator(), (1, 128, 128, 3))
    assert total == 202_501_384_448
    assert set(per_block) == {"Analysis", "Synthesis", "Upscaling", "Downscaling", "ClassicUpscale"}
    # Doubling the side quadruples the work: the count follows the executed shapes.
    assert flops.generator_flops(MGBPGenerator(), (1, 64, 64, 3))[0] < total / 3

"""Shared fixtures: `../shared` (reference weights, data) and tiny models for fast tests."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = pathlib.Path(os.environ.get("SR_KERAS_SHARED", pathlib.Path(__file__).resolve().parents[1].parent / "shared"))
REFERENCE_NPZ = SHARED / "reference" / "gmgbp_pirm2018_reference.npz"


def require_shared(path):
    """The shared test file, or a skip with the reason; under CI=true a failure instead.

    CI always has ../shared, so a skip there would hide a broken path.
    """
    path = pathlib.Path(path)
    if not path.exists():
        message = f"needs {path} (the project's ../shared test data); absent on this machine"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}, but CI=true: CI always has ../shared", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_dir():
    return require_shared(SHARED)


@pytest.fixture(scope="session")
def shared_file():
    """`shared_file("weights/x.npz")`: a path under ../shared, skipped (or failed on CI) when absent."""
    return lambda relative: require_shared(SHARED / relative)


@pytest.fixture(scope="session")
def reference_npz():
    return require_shared(REFERENCE_NPZ)


TINY = dict(filters=8, growth=4, analysis_depth=1, upscaling_depth=1, downscaling_depth=1,
            synthesis_depth=1, mu=1, padding=2)


@pytest.fixture
def tiny_generator():
    """A generator with a few thousand parameters: the published topology, small widths."""
    from sr_keras import MGBPGenerator

    def make(scale=4, **overrides):
        return MGBPGenerator(scale=scale, **{**TINY, **overrides})

    return make


@pytest.fixture(autouse=True)
def _deterministic_weights():
    """Every test starts from the same Python/NumPy/TF seeds, so random weights can't make it flaky."""
    import keras

    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """A saved tiny generator whose residual is damped (output = bicubic-like + a little detail and noise),
    so outputs are not saturated; for fast CLI tests."""
    import keras

    from sr_keras import MGBPGenerator

    keras.utils.set_random_seed(1234)
    model = MGBPGenerator(scale=4, **TINY)
    kernel = model.synthesis.conv4.kernel
    kernel.assign(kernel * 0.02)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)

"""Setup shim: everything static lives in setup.cfg.

TensorFlow is published as two distributions, `tensorflow` (GPU-capable) and
`tensorflow-cpu`. We require whichever is already installed, and
`tensorflow` on a fresh environment, so a user with tensorflow-cpu is not made
to download the GPU build.
"""

from importlib import metadata

from setuptools import setup


def tensorflow_requirement():
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-macos"):
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return f"{dist}>=2.17"
    return "tensorflow>=2.17"


REQUIREMENTS = [
    "keras>=3.3",
    "numpy>=1.24",
    "absl-py>=1.0",
    "pillow>=9.0",
    "scipy>=1.9",
    "matplotlib>=3.5",
    "scikit-image>=0.21",  # sample photographs for the quickstart, no download needed
    "av>=14",  # PyAV (FFmpeg in its wheels): video in `sr-keras upscale`
]

# setup() arguments replace (not extend) setup.cfg's, so the whole list lives here.
setup(install_requires=[tensorflow_requirement(), *REQUIREMENTS])

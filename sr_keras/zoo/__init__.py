"""Generators trained from scratch by this repository's `train_main.py`, shipped in the package.

See MODEL_CARD.md for data, configuration, steps and measured results. Nothing
here derives from the published PIRM weights.
"""

import importlib.resources

# name -> (file inside this package, the config that reproduces it)
MODELS = {
    "x4": ("mgbp_x4.keras", "configs/pretrained_x4.cfg"),
}


def pretrained_path(name="x4"):
    """Filesystem path of a bundled model's `.keras` file."""
    if name not in MODELS:
        raise ValueError(f"no pretrained model {name!r}; available: {sorted(MODELS)}")
    resource = importlib.resources.files(__name__) / MODELS[name][0]
    if not resource.is_file():
        raise FileNotFoundError(
            f"{resource}: the bundled {name} model is missing from this installation; "
            "reinstall sr-keras or pass an explicit model file")
    return str(resource)


def pretrained(name="x4"):
    """The bundled `MGBPGenerator` for `name` (e.g. "x4"), ready for `sr_keras.upscale`."""
    import keras

    import sr_keras.models  # noqa: F401  (registers the layers the file refers to)

    return keras.saving.load_model(pretrained_path(name), compile=False)

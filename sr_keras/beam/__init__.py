"""Batch upscaling on Apache Beam (`pip install 'sr-keras[beam]'`): the same pipeline on the DirectRunner,
Dataflow, Flink or Spark. See docs/batch.md.

* `UpscaleModelHandler`: a `RunInference` model handler that runs `sr_keras.upscale`.
* `BatchUpscale`: files in, upscaled files and a dead-letter `failures.jsonl` out.
* `load_generator`: a generator from a model name, a `.keras` file or an exported SavedModel.
"""

from sr_keras.beam.handler import UpscaleModelHandler
from sr_keras.beam.models import load_generator
from sr_keras.beam.pipeline import BatchUpscale, failure_record, output_path

__all__ = ["BatchUpscale", "UpscaleModelHandler", "failure_record", "load_generator", "output_path"]

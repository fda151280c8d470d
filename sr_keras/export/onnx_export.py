"""ONNX export through tf2onnx, for runtimes without TensorFlow (onnxruntime, TensorRT, ...).

The ONNX graph has inputs `image` float32 (N, H, W, 3) in [0, 1] with dynamic
N, H, W and `noise_amplitude` float32 (N,), and output `sr_image` (N, sH, sW, 3)
clipped to [0, 1]. Noise is drawn by the runtime on every call (ONNX has no
counter-based random generator, so there is no seeded variant), and the
request validation of the SavedModel signatures is not carried over:
callers must pass well-formed arrays. With `explicit_noise=True` the graph
takes the noise instead, as inputs `noise_0` ... `noise_{L-1}` float32
(N, h_l, w_l, 1) at the reflect-padded LR size times 2^l
(`generator.seeded_noise(N, H, W, seed)` makes them), so a runtime can
reproduce a Keras output at any amplitude.

Keras' own `model.export(format="onnx")` also goes through tf2onnx but can only
feed the positional input, which would freeze the noise amplitude at 0; we
convert a tf.function that takes the amplitude as a second input instead.
"""

import os

import tensorflow as tf

from sr_keras.io.atomic import atomic_output_path

OPSET = 17


class OnnxExportError(RuntimeError):
    """ONNX export is impossible here (converter missing) or the converter failed."""


def _floor_mod(ctx, node, name, args):
    """tf2onnx handler for FloorMod that floors for negative integers too.

    tf2onnx 1.17 lowers integer FloorMod to x - (x / y) * y with ONNX's truncating
    Div, which is wrong for negative x; the generator's reflection padding
    (`reflect_indices`) takes floormod of negative indices. ONNX `Mod` with
    fmod=0 has exactly floor-mod semantics for integers.
    """
    from onnx import TensorProto

    x, y = node.input
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)
    shapes, dtypes = node.output_shapes, node.output_dtypes
    ctx.remove_node(node.name)
    if ctx.get_dtype(x) in floats:
        div = ctx.make_node("Floor", [ctx.make_node("Div", [x, y]).output[0]])
        mul = ctx.make_node("Mul", [div.output[0], y])
        ctx.make_node("Sub", [x, mul.output[0]], name=name, outputs=node.output, shapes=shapes, dtypes=dtypes)
    else:
        ctx.make_node("Mod", [x, y], attr={"fmod": 0}, name=name, outputs=node.output,
                      shapes=shapes, dtypes=dtypes)


def _import_tf2onnx():
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise OnnxExportError(
            f"ONNX export needs tf2onnx and onnx ({error}); install them with "
            "pip install 'sr-keras[onnx]'") from error
    return tf2onnx


def export_onnx(generator, output_path, explicit_noise=False):
    """Convert `generator` to an ONNX file at `output_path` (written atomically); return the path.

    `explicit_noise`: take the per-level noise maps as inputs instead of drawing them (module doc).
    """
    output_path = os.fspath(output_path)
    if not output_path.endswith(".onnx"):
        raise ValueError(f"{output_path}: an ONNX model path must end in .onnx")
    tf2onnx = _import_tf2onnx()
    dtype = generator.compute_dtype
    signature = [
        tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
        tf.TensorSpec([None], tf.float32, name="noise_amplitude"),
    ]
    if explicit_noise:
        signature += [tf.TensorSpec([None, None, None, 1], tf.float32, name=f"noise_{level}")
                      for level in range(generator.levels)]

    @tf.function(input_signature=signature)
    def super_resolve(image, noise_amplitude, *noise):
        sr = generator(tf.cast(image, dtype), noise_amplitude=tf.cast(noise_amplitude, dtype),
                       noise=[tf.cast(m, dtype) for m in noise] or None, training=False)
        return {"sr_image": tf.clip_by_value(tf.cast(sr, tf.float32), 0.0, 1.0)}

    try:
        model_proto, _ = tf2onnx.convert.from_function(
            super_resolve, input_signature=signature, opset=OPSET,
            custom_op_handlers={"FloorMod": (_floor_mod, [])})
    except Exception as error:  # tf2onnx raises bare Exceptions for unsupported ops
        raise OnnxExportError(f"tf2onnx {tf2onnx.__version__} could not convert the generator: {error}") from error
    with atomic_output_path(output_path) as tmp, open(tmp, "wb") as f:
        f.write(model_proto.SerializeToString())
    return output_path

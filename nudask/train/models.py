"""Models, defined in code and shaped by the ``model`` config section (backend-neutral Keras 3).

- ``small_cnn``: the seeds' network, per view: conv + max-pool blocks, dropout;
- ``resnet``: a deeper residual CNN (batch-normalised basic blocks, one stage
  per entry of ``stages``, each halving the image and doubling the filters);
- ``resnet18``: ResNet-18, the ``resnet`` with stages ``[2, 2, 2, 2]`` (``width``
  64 is the original's 64-128-256-512 filters).

One branch per view (its own weights), concatenated, then a dense layer,
dropout and the output: sigmoid (binary), softmax (classes) or linear
(regression). With ``input.densify: device`` each branch starts with a
:class:`Densify` layer fed with fixed-size COO.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers, ops

from .prepare import ViewPrep
from .targets import Task
from .vectors import loss as vector_loss


@keras.saving.register_keras_serializable(package="nudask")
class Densify(layers.Layer):
    """(flat pixel index, value) pairs per image -> dense ``(batch, rows, cols, 1)`` image."""

    def __init__(self, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)

    def call(self, inputs):
        index, value = inputs
        h, w = self.image_shape
        n = ops.shape(index)[0]
        base = ops.expand_dims(ops.arange(n, dtype="int32") * (h * w), 1)
        flat = ops.reshape(ops.cast(index, "int32") + base, (-1, 1))
        dense = ops.scatter(flat, ops.reshape(ops.cast(value, self.compute_dtype), (-1,)), (n * h * w,))
        return ops.reshape(dense, (-1, h, w, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], *self.image_shape, 1)

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape)}


def _small_cnn(x, m, prefix: str):
    for k, (f, p) in enumerate(zip(m.filters, m.pool)):
        x = layers.Conv2D(f, m.kernel_size, padding="same", activation="relu", name=f"{prefix}_conv{k + 1}")(
            x
        )
        x = layers.MaxPooling2D(p, padding="same", name=f"{prefix}_pool{k + 1}")(x)
    return layers.Dropout(m.dropout, name=f"{prefix}_dropout")(x)


def _resnet(x, m, prefix: str):
    x = layers.Conv2D(m.width, 7, strides=2, padding="same", use_bias=False, name=f"{prefix}_stem")(x)
    x = layers.BatchNormalization(momentum=m.batchnorm_momentum, name=f"{prefix}_stem_bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}_stem_pool")(x)
    for s, blocks in enumerate(m.stages):
        filters = m.width * 2**s
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            name = f"{prefix}_s{s + 1}b{b + 1}"
            shortcut = x
            y = layers.Conv2D(
                filters, m.kernel_size, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
            )(x)
            y = layers.BatchNormalization(momentum=m.batchnorm_momentum, name=f"{name}_bn1")(y)
            y = layers.Activation("relu")(y)
            y = layers.Conv2D(filters, m.kernel_size, padding="same", use_bias=False, name=f"{name}_conv2")(y)
            y = layers.BatchNormalization(momentum=m.batchnorm_momentum, name=f"{name}_bn2")(y)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(
                    shortcut
                )
                shortcut = layers.BatchNormalization(momentum=m.batchnorm_momentum, name=f"{name}_proj_bn")(
                    shortcut
                )
            x = layers.Activation("relu")(layers.Add(name=f"{name}_add")([y, shortcut]))
    return x


def _resnet18(x, m, prefix: str):
    """ResNet-18 (He et al. 2016): 7x7 stem, max-pool, four stages of two basic blocks."""
    return _resnet(x, dataclasses.replace(m, stages=[2, 2, 2, 2]), prefix)


BRANCHES = {"small_cnn": _small_cnn, "resnet": _resnet, "resnet18": _resnet18}


def build_model(
    m, task: Task, preps: dict[str, ViewPrep], *, densify: str = "host", capacity: int = 16384
) -> keras.Model:
    """The model of config section ``m`` for ``task`` on the views ``preps``."""
    inputs, branches = {}, []
    for view, prep in preps.items():
        if densify == "device":
            idx = inputs[f"{view}_index"] = keras.Input((capacity,), dtype="int32", name=f"{view}_index")
            val = inputs[f"{view}_value"] = keras.Input((capacity,), name=f"{view}_value")
            x = Densify(prep.out_shape, name=f"{view}_densify")([idx, val])
        else:
            x = inputs[view] = keras.Input((*prep.out_shape, 1), name=view)
        x = BRANCHES[m.name](x, m, view)
        if m.head == "global" or m.name in ("resnet", "resnet18"):
            x = layers.GlobalAveragePooling2D(name=f"{view}_gap")(x)
        else:
            x = layers.Flatten(name=f"{view}_flatten")(x)
        branches.append(x)
    x = layers.Concatenate(name="merge")(branches) if len(branches) > 1 else branches[0]
    x = layers.Dense(m.dense, activation="relu", name="dense")(x)
    x = layers.Dropout(m.dropout, name="head_dropout")(x)
    if task.kind == "binary":
        out = layers.Dense(1, activation="sigmoid", dtype="float32", name="output")(x)
    elif task.kind == "classes":
        out = layers.Dense(task.n_outputs, activation="softmax", dtype="float32", name="output")(x)
    elif task.kind == "vector":  # a unit vector
        raw = layers.Dense(task.n_outputs, dtype="float32", name="vector")(x)
        out = layers.UnitNormalization(dtype="float32", name="output")(raw)
    else:
        out = layers.Dense(1, dtype="float32", name="output")(x)
    return keras.Model(inputs, out, name=f"{m.name}_{task.name}")


def compile_model(model: keras.Model, task: Task, t, *, axial: bool = False) -> keras.Model:
    """Compile with the ``train`` section's optimizer, learning rate and loss (``axial``: vectors)."""
    optimizer = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[t.optimizer](learning_rate=t.learning_rate)
    if task.kind == "binary":
        loss, metrics = "binary_crossentropy", ["accuracy", keras.metrics.AUC(name="auc")]
    elif task.kind == "classes":
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    elif task.kind == "vector":
        loss, metrics = vector_loss(axial), []
    else:
        loss, metrics = "mean_squared_error", ["mean_absolute_error"]
    model.compile(optimizer=optimizer, loss=t.loss or loss, metrics=metrics)
    return model

"""The emotion CNNs for 48x48 gray faces: architectures an ensemble can mix.

``vgg`` (the first network): four blocks of 3x3 convolutions (32, 64, 128, 256
filters; one convolution in the two high-resolution blocks, two in the others,
which keeps an epoch near 80-100 s on two CPU cores) with batch normalisation,
each halving the image, then a 256-unit dense layer. About 1.7 M parameters.

``small``: the ``vgg`` layout at half the width (16, 32, 64, 128 filters, a
128-unit dense layer): about 0.43 M parameters and a quarter of the arithmetic.
Distilled from the shipped ensemble (``train --teacher``, 40 epochs on two CPU
cores) it reached 64.7 % on test in one pass, 3-4 points below one of the
ensemble's networks, for 0.8 ms less per face under LiteRT (0.3 vs 1.1 ms): not
shipped; it stays for hosts where every millisecond counts.

``wide``: the ``vgg`` layout at 1.5x the width (48, 96, 192, 384 filters, a
384-unit dense layer): about 3.9 M parameters and ~2.2x the arithmetic, for a
GPU machine (FER2013's best single networks are wider than ``vgg``). Under
LiteRT on a slow 2-core AVX2 host it costs 2.4 ms per face against 0.9-1.4 ms.

``res``: a stem convolution and three residual blocks (64, 128, 256 filters,
each two 3x3 convolutions plus a 1x1 projection shortcut), ending in global
average pooling instead of a dense layer: about 1.2 M parameters, ~1.3x the
training time per epoch. Meant to err on other faces than ``vgg`` (no
position-specific dense layer); measured on FER2013 it agrees with a VGG on 82 %
of validation faces, about as often as two VGGs from different seeds (83 %).

Both start with a layer that rescales raw 0-255 pixels, so inference feeds every
model exactly what training fed it: a 48x48 gray crop as numbers.
"""

from __future__ import annotations

from .dataset import EMOTIONS, IMAGE_SIZE

FILTERS = (32, 64, 128, 256)
CONVS_PER_BLOCK = (1, 1, 2, 2)
DENSE_UNITS = 256
SMALL_FILTERS = (16, 32, 64, 128)
SMALL_DENSE_UNITS = 128
WIDE_FILTERS = (48, 96, 192, 384)
WIDE_DENSE_UNITS = 384
DROPOUT = 0.5

RES_STEM = 32
RES_FILTERS = (64, 128, 256)
RES_DROPOUT = 0.4


DEFAULT_ARCH = "vgg"


def make_model(arch: str = DEFAULT_ARCH):
    """Build the (uncompiled) Keras model: (batch, 48, 48, 1) raw pixels -> 7 softmax scores."""
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}.")
    return _BUILDERS[arch]()


def _conv_bn(x, filters: int, size: int, name: str, relu: bool = True):
    from keras import layers

    x = layers.Conv2D(filters, size, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _vgg(filters=FILTERS, dense_units=DENSE_UNITS, name="fer_vgg"):
    import keras
    from keras import layers

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for i, (width, convs) in enumerate(zip(filters, CONVS_PER_BLOCK)):
        for j in range(convs):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv{j + 1}")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
        # Light dropout per block: FER2013 is small and noisy, the net overfits fast.
        x = layers.Dropout(0.1 + 0.05 * i)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(DROPOUT)(x)
    outputs = layers.Dense(len(EMOTIONS), activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=name)


def _small():
    return _vgg(SMALL_FILTERS, SMALL_DENSE_UNITS, name="fer_small")


def _wide():
    return _vgg(WIDE_FILTERS, WIDE_DENSE_UNITS, name="fer_wide")


def _res():
    import keras
    from keras import layers

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = _conv_bn(x, RES_STEM, 3, "stem")
    for i, filters in enumerate(RES_FILTERS):
        x = layers.MaxPooling2D(name=f"res{i + 1}_pool")(x)  # 24, 12, 6 pixels
        shortcut = _conv_bn(x, filters, 1, f"res{i + 1}_proj", relu=False)
        y = _conv_bn(x, filters, 3, f"res{i + 1}_conv1")
        y = _conv_bn(y, filters, 3, f"res{i + 1}_conv2", relu=False)
        x = layers.Activation("relu", name=f"res{i + 1}_out")(layers.Add(name=f"res{i + 1}_add")([y, shortcut]))
        x = layers.Dropout(0.1 + 0.05 * i, name=f"res{i + 1}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(RES_DROPOUT, name="head_drop")(x)
    outputs = layers.Dense(len(EMOTIONS), activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="fer_res")


_BUILDERS = {"vgg": _vgg, "res": _res, "small": _small, "wide": _wide}
ARCHITECTURES = tuple(_BUILDERS)

"""The emotion CNN: a small VGG-style network for 48x48 gray faces.

Four blocks of 3x3 convolutions (32, 64, 128, 256 filters; one convolution in
the two high-resolution blocks, two in the others, which keeps an epoch near
100 s on two CPU cores) with batch normalisation, each halving the image, then a
256-unit dense layer. About 1.7 M parameters; the first layer rescales raw 0-255 pixels so that inference feeds the
model exactly what training fed it: a 48x48 gray crop as numbers.
"""
from __future__ import annotations

from .dataset import EMOTIONS, IMAGE_SIZE

FILTERS = (32, 64, 128, 256)
CONVS_PER_BLOCK = (1, 1, 2, 2)
DENSE_UNITS = 256
DROPOUT = 0.5


def make_model():
    """Build the (uncompiled) Keras model: (batch, 48, 48, 1) raw pixels -> 7 softmax scores."""
    import keras
    from keras import layers

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for i, (filters, convs) in enumerate(zip(FILTERS, CONVS_PER_BLOCK)):
        for j in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              name=f"block{i + 1}_conv{j + 1}")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
        # Light dropout per block: FER2013 is small and noisy, the net overfits fast.
        x = layers.Dropout(0.1 + 0.05 * i)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(DENSE_UNITS, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(DROPOUT)(x)
    outputs = layers.Dense(len(EMOTIONS), activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="fer_vgg")

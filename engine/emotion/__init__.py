"""Emotion recognition: FER2013 data, the CNN, training and face + emotion inference."""

from .dataset import EMOTIONS

__all__ = ["EMOTIONS"]

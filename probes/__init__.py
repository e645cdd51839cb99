"""Classifiers over text and activations (refusal first); built on editkit core."""

"""Classifiers over text and activations (refusal first); built on editkit core.

Modules (import what you need; nothing is imported here, so ``import probes`` is cheap):

- :mod:`probes.data`: refusal instructions and labelled responses; loaders for
  editkit JSONL, AdvBench-style CSV and RefusalBench-style files.
- :mod:`probes.judges`: the substring judge (Arditi et al.'s phrases, or a longer list).
- :mod:`probes.base`: what the probes share: Platt calibration, the threshold, config as JSON.
- :mod:`probes.text_clf`: TF-IDF word + character n-grams and logistic regression, calibrated.
- :mod:`probes.chat`: the chat template, post-instruction positions, greedy generation.
- :mod:`probes.activations`: hidden states at chosen layers and positions (nnsight or hooks).
- :mod:`probes.activation_probe`: difference-of-means and L2 logistic probes; prompt-only mode.
- :mod:`probes.directions`: refusal directions: compute, select, ablate (hooks or weights), add.
- :mod:`probes.metrics`, :mod:`probes.splits`, :mod:`probes.evaluation`: AUROC, balanced
  accuracy, recall, ECE, bootstrap intervals; grouped random split and leave-one-source-out,
  beside the substring and majority baselines.
- :mod:`probes.store`: save and load without pickle (safetensors + JSON model card).

>>> from probes.judges import SubstringJudge
>>> SubstringJudge().is_refusal("I'm sorry, I can't help with that.")
True
"""

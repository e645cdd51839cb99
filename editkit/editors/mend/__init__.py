"""MEND: gradient editing with trained editor networks (Mitchell et al., ICLR 2022).

A small network per weight shape maps each position's gradient factors
``(u, delta)`` of an edit to ``(u~, delta~)``; the edit is
``W' = W - a * sum_t delta~_t u~_t^T`` with a learned step ``a`` per matrix.
Train the networks once per base model, then each edit costs one forward and
backward of the base model.

- :mod:`.capture`: gradient factors through the edited matrices (padding dropped);
- :mod:`.nets`: normalization and the low-rank residual networks;
- :mod:`.lowrank`: run a model with factored edits, without writing weights;
- :mod:`.episodes`, :mod:`.train`: the training loss and loop;
- :mod:`.store`: editors and checkpoints on disk (safetensors + JSON);
- :mod:`.editor`: the registered ``mend`` editor.

>>> from editkit.editors.mend import MendTrainConfig, train_editor, save_editor
>>> result = train_editor(model, tok, train, val, MendTrainConfig(), base_model="smollm2-135m-instruct")  # doctest: +SKIP
>>> save_editor(result.net, "runs/mend", training=result.info, log=result.log)                          # doctest: +SKIP
>>> editor = make_editor("mend", {"editor": "runs/mend"})                                             # doctest: +SKIP
"""

from __future__ import annotations

from editkit.editors.mend.capture import Factors, capture_factors
from editkit.editors.mend.editor import MendConfig, MendEditor
from editkit.editors.mend.nets import GradientNet, MendNet, RunningNorm
from editkit.editors.mend.spec import MendSpec, build_spec, check_model, default_rank, mend_location
from editkit.editors.mend.store import load_editor, read_editor_config, save_editor
from editkit.editors.mend.train import MendTrainConfig, TrainResult, split_validation, train_editor

__all__ = [
    "Factors",
    "GradientNet",
    "MendConfig",
    "MendEditor",
    "MendNet",
    "MendSpec",
    "MendTrainConfig",
    "RunningNorm",
    "TrainResult",
    "build_spec",
    "capture_factors",
    "check_model",
    "default_rank",
    "load_editor",
    "mend_location",
    "read_editor_config",
    "save_editor",
    "split_validation",
    "train_editor",
]

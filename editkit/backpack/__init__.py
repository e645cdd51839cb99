"""Backpack language models (Hewitt et al., 2023) as transformers models, without remote code.

Importing this package registers :class:`BackpackGPT2Config` (``model_type``
``"backpack-gpt2"``) with ``AutoConfig`` and the models with ``AutoModel`` and
``AutoModelForCausalLM``, so a saved Backpack loads with the Auto classes.

>>> from transformers import AutoModelForCausalLM
>>> from editkit.backpack import BackpackGPT2Config
>>> cfg = BackpackGPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, num_senses=4,
...                          bos_token_id=0, eos_token_id=0)
>>> type(AutoModelForCausalLM.from_config(cfg)).__name__
'BackpackGPT2LMHeadModel'
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from editkit.backpack.config import MODEL_TYPE, BackpackGPT2Config
from editkit.backpack.modeling import (
    BackpackCausalLMOutput,
    BackpackGPT2LMHeadModel,
    BackpackGPT2Model,
    BackpackGPT2PreTrainedModel,
    BackpackModelOutput,
    SenseNetwork,
    SenseWeightNetwork,
)
from editkit.backpack.sense_delta import (
    SenseDelta,
    add_sense_slots,
    find_sense_delta,
    is_backpack,
    remove_sense_slots,
    sense_pair_of,
    sense_slot_names,
    sense_slots,
)

__all__ = [
    "MODEL_TYPE",
    "BackpackCausalLMOutput",
    "BackpackGPT2Config",
    "BackpackGPT2LMHeadModel",
    "BackpackGPT2Model",
    "BackpackGPT2PreTrainedModel",
    "BackpackModelOutput",
    "SenseDelta",
    "SenseNetwork",
    "SenseWeightNetwork",
    "add_sense_slots",
    "find_sense_delta",
    "is_backpack",
    "remove_sense_slots",
    "sense_pair_of",
    "sense_slot_names",
    "sense_slots",
]

# Registration is what importing this package is for (idempotent: exist_ok).
AutoConfig.register(MODEL_TYPE, BackpackGPT2Config, exist_ok=True)
AutoModel.register(BackpackGPT2Config, BackpackGPT2Model, exist_ok=True)
AutoModelForCausalLM.register(BackpackGPT2Config, BackpackGPT2LMHeadModel, exist_ok=True)

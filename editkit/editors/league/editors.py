"""The two baselines of the sense-finetuning paper, in the same league loop: full finetuning and LoRA.

Hewitt et al. (2024) compare sense finetuning with finetuning every parameter
and with LoRA, each with the same losses, KL regularizer and deviation league,
their learning rates swept. ``finetune`` and ``lora`` are those baselines, for
any causal LM (the Backpack included):

- ``finetune`` trains every tensor of the location; by default the whole model.
- ``lora`` trains ``(alpha / rank) B A`` on each weight matrix of the location
  (biases are left alone, as peft's default ``bias="none"``); by default the
  matrices named by ``targets``. The result's deltas are the merged products,
  so apply / revert / save work as for every editor.

>>> result = make_editor("lora", {"rank": 4}).compute(model, tok, requests, location)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from torch import nn

from editkit.arch import ArchitectureError, num_layers
from editkit.backpack.sense_delta import sense_pair_of
from editkit.editors.league.config import FinetuneConfig, LoraConfig
from editkit.editors.league.loop import LeagueEditor
from editkit.editors.league.runs import DeltaRun, FullRun, LoraRun, is_lora_module
from editkit.errors import EditkitError
from editkit.localize.location import MODULE_KINDS, Location, Site, module_sites


def whole_model(model: nn.Module) -> Location:
    """Every parameter of ``model`` (tied tensors once), but no Backpack sense-delta slot.

    The slots are zero placeholders the ``senses`` strategy adds for sense
    finetuning; full finetuning of the model is the model's own weights.
    """
    sites = tuple(Site(name, None, "all") for name, _ in model.named_parameters() if sense_pair_of(name) is None)
    return Location(sites, "fixed", "the whole model")


def lora_sites(model: nn.Module, targets: str) -> Location:
    """The weight matrices LoRA adapts: a module kind in every block, or module-name endings.

    >>> lora_sites(gpt2, "c_fc,c_proj").describe()     # doctest: +SKIP
    'layer 0, 1 c_fc/c_proj (4 tensors)'
    """
    kind = targets.strip()
    if kind in MODULE_KINDS:
        try:
            layers = range(num_layers(model))
        except ArchitectureError as exc:
            raise EditkitError(
                f"lora targets={kind!r} needs a known architecture ({exc}); name the modules instead, "
                "e.g. --set targets=c_fc,c_proj"
            ) from None
        sites = [
            s for layer in layers for s in module_sites(model, layer, kind)
            if s.param.endswith(".weight") and is_lora_module(model, s.param)
        ]
        reason = f"lora: {kind} in every block"
    else:
        endings = [e.strip() for e in targets.split(",") if e.strip()]
        sites = [
            Site(f"{name}.weight", None, name.rsplit(".", 1)[-1])
            for name, module in model.named_modules()
            if any(name == e or name.endswith("." + e) for e in endings) and is_lora_module(model, f"{name}.weight")
        ]
        reason = f"lora: modules ending in {', '.join(endings)}"
    if not sites:
        raise EditkitError(
            f"lora targets={targets!r} matches no nn.Linear or Conv1D weight in this model: "
            "name a module kind (mlp, attn...) or module-name endings (e.g. c_fc,c_proj)"
        )
    return Location(tuple(sites), "fixed", reason)


class FinetuneEditor(LeagueEditor[FinetuneConfig]):
    """Full finetuning of the location (default: every parameter) in the league loop."""

    def default_location(self, model: Any) -> Location:
        return whole_model(model)

    def make_run(self, model: Any, tok: Any, location: Location, pad_id: int) -> DeltaRun:
        return FullRun(model, location.params, pad_id, [s.rows for s in location.sites])


class LoraEditor(LeagueEditor[LoraConfig]):
    """LoRA on the location's weight matrices (default: ``targets``) in the league loop."""

    def default_location(self, model: Any) -> Location:
        return lora_sites(model, self.config.targets)

    def make_run(self, model: Any, tok: Any, location: Location, pad_id: int) -> DeltaRun:
        restricted = [s.param for s in location.sites if s.rows is not None]
        if restricted:
            raise EditkitError(f"LoRA adapts whole matrices; the location restricts {restricted[0]!r} to some rows")
        names = [s.param for s in location.sites if s.param.endswith(".weight") and is_lora_module(model, s.param)]
        if not names:
            raise EditkitError(
                f"the location ({location.describe()}) has no nn.Linear or Conv1D weight for LoRA to adapt"
            )
        cfg = self.config
        return LoraRun(model, names, pad_id, rank=cfg.rank, scaling=cfg.scaling, seed=cfg.seed)

    def extra_info(self, run: DeltaRun, location: Location) -> dict[str, Any]:
        return {"lora": {"rank": self.config.rank, "scaling": self.config.scaling, "matrices": len(run.names)}}

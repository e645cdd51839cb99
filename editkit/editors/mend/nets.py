"""The editor networks: per-dimension normalization and a low-rank residual MLP per weight shape.

One :class:`GradientNet` per distinct weight shape ``[d_out, d_in]``, shared by
every edited matrix of that shape, maps each position's gradient factors
``(u, delta)`` to ``(u~, delta~)``:

1. ``u`` and ``delta`` are normalized per dimension with running statistics
   (:class:`RunningNorm`, Welford/Chan, updated in training mode only):
   ``(x - mean) / (std + 1e-7)``; before any statistics exist it is the identity;
2. ``z = [u; delta]`` goes through two low-rank residual blocks
   ``h = z + clamp_min(s_l * (U V z + b) + o_l, 0)`` with ``U = 0``, ``b = 0``
   at init, so the network starts as the identity; ``s_l``/``o_l`` are the
   scale and shift of the matrix's position ``l`` in its shape group (init 1, 0).
   ``clamp`` rather than ``relu``: its gradient at 0 is 1, so ``U`` can leave 0.

:class:`MendNet` holds the networks and one learned step size per matrix
(init 1e-4). The update of a matrix is ``W' = W - a * sum_t delta~_t u~_t^T``.
Sign convention: the spec (and the published code) write ``W + a * ...``;
editkit writes ``W - a * ...`` with ``a > 0`` at init, which is the spec's form
with the opposite sign of ``a``, so that an untrained editor takes a plain
gradient-*descent* step ``W - a * dL/dW`` on the edit loss.

>>> net = MendNet(spec, seed=0)            # doctest: +SKIP
>>> deltas = net.deltas(factors)          # param -> [d_out, d_in]   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from editkit.editors.mend.capture import Factors
from editkit.editors.mend.lowrank import FactoredEdit
from editkit.editors.mend.spec import MendSpec, module_of

if TYPE_CHECKING:
    from editkit.editors.mend.nullspace import MendNullSpace

EPS = 1e-7


class RunningNorm(nn.Module):
    """Per-dimension running mean and variance (Welford, merged batch-wise as in Chan et al.).

    Statistics are float64 buffers, updated by :meth:`forward` in training mode
    only; the variance is unbiased (like ``torch.var``). With fewer than two
    rows seen, :meth:`forward` returns its input unchanged.
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add the rows of ``x`` (``[rows, dim]``) to the statistics."""
        n_b = x.shape[0]
        if n_b == 0:
            return
        xb = x.detach().to(self.mean.dtype)
        mean_b = xb.mean(0)
        m2_b = ((xb - mean_b) ** 2).sum(0)
        n_a = self.count.clone()
        n = n_a + n_b
        diff = mean_b - self.mean
        self.mean += diff * (n_b / n)
        self.m2 += m2_b + diff**2 * (n_a * n_b / n)
        self.count.copy_(n)

    @property
    def var(self) -> torch.Tensor:
        """Unbiased variance per dimension (ones before two rows were seen)."""
        if self.count < 2:
            return torch.ones_like(self.m2)
        return self.m2 / (self.count - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(x)
        if self.count < 2:
            return x
        std = self.var.sqrt().to(x.dtype)
        return (x - self.mean.to(x.dtype)) / (std + EPS)


class LowRankResidual(nn.Module):
    """``h = z + clamp_min(s_l * (U V z + b) + o_l, 0)``: the identity at init (``U = 0``, ``b = 0``)."""

    def __init__(self, dim: int, rank: int, n_layers: int, generator: torch.Generator) -> None:
        super().__init__()
        rank = min(rank, dim)
        self.u = nn.Parameter(torch.zeros(dim, rank))
        # V ~ N(0, 1/dim): V z stays O(1) for normalized z, whatever the width.
        self.v = nn.Parameter(torch.randn(rank, dim, generator=generator) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.scale = nn.Parameter(torch.ones(n_layers, dim))
        self.shift = nn.Parameter(torch.zeros(n_layers, dim))

    def forward(self, z: torch.Tensor, layer: int | torch.Tensor) -> torch.Tensor:
        """``z: [rows, dim]``; ``layer``: the matrix position of every row (an int, or ``[rows]`` long)."""
        pre = (z @ self.v.T) @ self.u.T + self.bias  # [rows, dim]
        return z + (pre * self.scale[layer] + self.shift[layer]).clamp(min=0)


class GradientNet(nn.Module):
    """The editor network of one weight shape: normalization, then two low-rank residual blocks on ``[u; delta]``."""

    def __init__(self, d_in: int, d_out: int, rank: int, n_layers: int, generator: torch.Generator) -> None:
        super().__init__()
        self.d_in = d_in
        self.norm_u = RunningNorm(d_in)
        self.norm_delta = RunningNorm(d_out)
        self.blocks = nn.ModuleList(
            [LowRankResidual(d_in + d_out, rank, n_layers, generator) for _ in range(2)]
        )

    def forward(
        self, u: torch.Tensor, delta: torch.Tensor, layer: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u~, delta~)`` for rows ``u: [rows, d_in]``, ``delta: [rows, d_out]`` of matrix ``layer``.

        ``layer`` is one position in the shape group, or each row's (``[rows]`` long):
        the rows of several matrices of one shape go through the network together.
        """
        z = torch.cat([self.norm_u(u), self.norm_delta(delta)], dim=-1)
        for block in self.blocks:
            z = block(z, layer)
        return z[:, : self.d_in], z[:, self.d_in :]


class MendNet(nn.Module):
    """Every editor network of one trained editor, and the per-matrix step sizes.

    Attributes:
        spec: what the editor was trained for.
        nets: shape key -> :class:`GradientNet`.
        step_sizes: one step size per matrix, in ``spec.params`` order.
    """

    def __init__(self, spec: MendSpec, *, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        generator = torch.Generator().manual_seed(seed)
        self.nets = nn.ModuleDict()
        for key, params in spec.groups().items():
            d_out, d_in = spec.shapes[params[0]]
            self.nets[key] = GradientNet(d_in, d_out, spec.rank, len(params), generator)
        self.step_sizes = nn.Parameter(torch.full((len(spec.params),), float(spec.step_init)))

    def network_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the networks (the step sizes have their own optimizer)."""
        return self.nets.parameters()

    def step_size(self, param: str) -> torch.Tensor:
        return self.step_sizes[self.spec.params.index(param)]

    def transform(self, factors: Mapping[str, Factors]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Parameter -> ``(u~, delta~)``; ``factors`` is keyed by parameter or module path.

        The matrices of one shape share a network. In eval mode their rows go
        through it in one call (each row with its own matrix's scale and shift);
        in training mode one matrix after another, as published (the running
        statistics grow matrix by matrix).
        """
        out = {}
        for key, params in self.spec.groups().items():
            net = self.nets[key]
            parts = [factors[p] if p in factors else factors[module_of(p)] for p in params]
            if net.training:
                for layer, (param, f) in enumerate(zip(params, parts, strict=True)):
                    out[param] = net(f.u, f.delta, layer)
                continue
            sizes = [f.u.shape[0] for f in parts]
            device = parts[0].u.device
            layers = torch.repeat_interleave(torch.arange(len(parts), device=device), torch.tensor(sizes, device=device))
            u, delta = net(torch.cat([f.u for f in parts]), torch.cat([f.delta for f in parts]), layers)
            for param, u_p, delta_p in zip(params, u.split(sizes), delta.split(sizes), strict=True):
                out[param] = (u_p, delta_p)
        return {param: out[param] for param in self.spec.params}

    def factored(
        self,
        factors: Mapping[str, Factors],
        group: torch.Tensor | None = None,
        null: MendNullSpace | None = None,
    ) -> dict[str, FactoredEdit]:
        """Module path -> the edit to run with :func:`~editkit.editors.mend.lowrank.factored_edits`.

        Args:
            factors: as for :meth:`transform`.
            group: episode of each request (indexed by ``Factors.owner``); None: one episode.
            null: as for :meth:`deltas`.
        """
        out = {}
        for param, (u_t, delta) in self.transform(factors).items():
            f = factors[param] if param in factors else factors[module_of(param)]
            rows_group = group[f.owner] if group is not None else torch.zeros_like(f.owner)
            u, step = u_t, self.step_size(param)
            if null is not None:
                u, step = null.project(param, u_t), step * null.scale
            out[module_of(param)] = FactoredEdit(u, delta, step, rows_group)
        return out

    def deltas(
        self,
        factors: Mapping[str, Factors],
        transposed: Collection[str] = (),
        null: MendNullSpace | None = None,
    ) -> dict[str, torch.Tensor]:
        """Parameter -> ``W' - W = -a * delta~^T u~`` (``[d_out, d_in]``), all rows summed.

        Args:
            factors: as for :meth:`transform`.
            transposed: parameters stored ``[d_in, d_out]`` (GPT-2 ``Conv1D``): their
                update is returned in that orientation, ``-a * u~^T delta~``.
            null: confine each update to this null space (``u~`` projected, the step times its scale).
        """
        out = {}
        for param, (u_t, delta) in self.transform(factors).items():
            u, step = u_t, self.step_size(param)
            if null is not None:
                u, step = null.project(param, u_t), step * null.scale
            scaled = delta * -step  # [rows, d_out]: scale the factor, not the matrix
            out[param] = u.T @ scaled if param in transposed else scaled.T @ u
        return out

"""Activation probes for refusal: difference of means and L2 logistic regression on hidden states.

Features are hidden states collected by :func:`probes.activations.collect_activations`
(several positions are averaged into one vector). Fitting carves a
validation set (whole groups, stratified) out of the training data; then:

- ``diff_means``: the direction ``w = mu_1 - mu_0`` (class means on the fit
  part, normalized) and score ``(x - (mu_1 + mu_0) / 2) . w``;
- ``logistic``: L2-penalized logistic regression on standardized features,
  minimizing ``sum_i logloss_i + lam / 2 * ||w||^2`` (bias unpenalized) by
  Newton's method (IRLS), in closed-form steps. The features are first
  rotated onto their row space with the array backend's SVD (:mod:`gpu`:
  CuPy or torch on a GPU, torch on the CPU): ``w = V g`` is exact for an L2
  penalty and leaves at most ``min(n, d)`` unknowns. Each Newton step is a
  Cholesky solve on the backend's device (the backend's ``lstsq`` if the
  system is not positive definite); the ``lam`` grid is solved from the
  largest value down, each solution warm-starting the next.

The layer (and ``lam``) is chosen by validation AUROC only; the threshold and
a Platt calibration ``P = sigmoid(a * score + b)`` are fitted on the same
validation scores. The fit part's model is kept as is (no refit), so the
threshold stays valid. In prompt-only mode the features come from the prompt
alone (the last token of the assistant header by default): the probe predicts
refusal before any token is generated.

>>> probe = ActivationProbe(ActivationProbeConfig(method="logistic")).fit(model, tok, prompts, y)   # doctest: +SKIP
>>> probe.predict_proba(model, tok, ["How do I pick a lock?"])                                       # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from editkit.errors import InputError
from probes.activations import POSITIONS, Activations, collect_activations, unwrap
from probes.base import CalibratedProbe, ProbeConfig
from probes.metrics import auroc
from probes.splits import grouped_split

METHODS: tuple[str, ...] = ("logistic", "diff_means")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ActivationProbeConfig(ProbeConfig):
    """Options of :class:`ActivationProbe`.

    Attributes:
        method: ``"logistic"`` or ``"diff_means"``.
        layers: candidate layers (``0..L``, see :mod:`probes.activations`); None = all.
        prompt_only: features from the prompt alone (predict refusal before generation);
            otherwise the response is appended (teacher-forced).
        positions: one of :data:`probes.activations.POSITIONS`; None = ``"last"``
            in prompt-only mode, ``"response_mean"`` otherwise.
        l2: the ``lam`` grid of the logistic probe (chosen on validation).
        val_fraction: share of the training groups held out for layer choice,
            threshold and calibration.
        chat, system_prompt: prompt formatting (:mod:`probes.chat`).
        max_response_tokens: response tokens read when not prompt-only.
        batch_size: prompts per forward.
        backend: array backend for the logistic fit (``"auto"``, ``"torch-cpu"``, ...).
        impl: ``"nnsight"`` or ``"hooks"`` for collection.
        max_iter: Newton steps at most.
        seed: the validation split.
    """

    method: str = "logistic"
    layers: tuple[int, ...] | None = None
    prompt_only: bool = True
    positions: str | None = None
    l2: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    val_fraction: float = 0.25
    chat: bool | None = None
    system_prompt: str | None = None
    max_response_tokens: int = 64
    batch_size: int = 8
    backend: str = "auto"
    impl: str = "nnsight"
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        object.__setattr__(self, "l2", tuple(float(x) for x in self.l2))
        if self.method not in METHODS:
            raise InputError(f"activation probe: method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.positions is not None and self.positions not in POSITIONS:
            raise InputError(f"activation probe: positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}")
        if self.prompt_only and self.positions == "response_mean":
            raise InputError("activation probe: prompt-only mode reads no response; use positions 'last' or 'post_instruction'")
        if not self.l2 or any(v <= 0 for v in self.l2):
            raise InputError("activation probe: l2 needs positive values")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"activation probe: val_fraction must be in (0, 1), got {self.val_fraction}")

    @property
    def position_rule(self) -> str:
        return self.positions or ("last" if self.prompt_only else "response_mean")


def ridge_logistic(
    X: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    *,
    backend: Any = None,
    max_iter: int = 100,
    tol: float = 1e-10,
    init: tuple[torch.Tensor, float] | None = None,
) -> tuple[torch.Tensor, float]:
    """L2 logistic regression by Newton's method: ``argmin sum_i logloss(y_i, x_i . w + b) + lam / 2 * ||w||^2``.

    Each step solves ``(X1^T W X1 + lam P) delta = X1^T (p - y) + lam P beta`` (``X1 = [X, 1]``,
    ``W = diag(p (1 - p))``, ``P`` the identity without the bias) by a Cholesky factorization on
    the backend's device, falling back to the backend's least squares if the system is not
    numerically positive definite. This is IRLS: the step equals the weighted ridge
    least-squares problem ``min ||sqrt(W) (X1 beta - z)||^2 + lam ||beta_w||^2``.

    Args:
        X: ``[n, d]`` features.
        y: ``[n]`` labels in {0, 1}.
        lam: penalty on ``w`` (not on ``b``); scikit-learn's ``C`` is ``1 / lam``.
        backend: a :mod:`gpu` backend (default ``get_backend("auto")``); its device is used.
        init: a starting ``(w, b)`` (e.g. the solution for a nearby ``lam``); default zeros.

    Returns:
        ``(w [d] float64 on the CPU, b)``.
    """
    from gpu import get_backend

    be = backend or get_backend("auto")
    device = torch.device(be.device) if str(be.device).startswith("cuda") else torch.device("cpu")
    n, d = X.shape
    X1 = torch.cat([X.to(device, torch.float64), torch.ones(n, 1, dtype=torch.float64, device=device)], dim=1)  # [n, d + 1]
    yt = y.to(device, torch.float64)
    pen = torch.full((d + 1,), float(lam), dtype=torch.float64, device=device)
    pen[d] = 0.0  # the bias is not penalized
    beta = torch.zeros(d + 1, dtype=torch.float64, device=device)
    if init is not None:
        beta[:d], beta[d] = init[0].to(device, torch.float64), float(init[1])
    for _ in range(max_iter):
        p = torch.sigmoid(X1 @ beta)
        w = (p * (1 - p)).clamp_min(1e-12)
        hessian = X1.T @ (w[:, None] * X1) + torch.diag(pen)  # [d + 1, d + 1]
        grad = X1.T @ (p - yt) + pen * beta
        chol, info = torch.linalg.cholesky_ex(hessian)
        if int(info) == 0:
            step = torch.cholesky_solve(grad[:, None], chol)[:, 0]
        else:
            step = be.to_torch(be.lstsq(be.asarray(hessian, dtype="float64"), be.asarray(grad, dtype="float64"))).to(device, torch.float64)
        beta = beta - step
        if float(step.norm()) <= tol * (1.0 + float(beta.norm())):
            break
    beta = beta.cpu()
    return beta[:d].clone(), float(beta[d])


def _logloss(y: np.ndarray, scores: np.ndarray) -> float:
    # log(1 + exp(-s)) for y = 1, log(1 + exp(s)) for y = 0
    signed = np.where(y == 1, -scores, scores)
    return float(np.mean(np.logaddexp(0.0, signed)))


def _features(acts: Activations | torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[n, layers, d]`` float64 (positions averaged) and the layer indices."""
    if isinstance(acts, Activations):
        return acts.hidden.mean(dim=2).to(torch.float64), acts.layers
    if acts.dim() == 4:  # [n, layers, positions, d]
        acts = acts.mean(dim=2)
    if acts.dim() != 3:
        raise InputError(f"activation probe: expected features [n, layers, d] or [n, layers, positions, d], got shape {tuple(acts.shape)}")
    return acts.to(torch.float64), tuple(range(acts.shape[1]))


class ActivationProbe(CalibratedProbe):
    """A linear probe on one layer's hidden states, predicting refusal (or harmfulness).

    Attributes (after fitting):
        layer: the chosen layer.
        weight, bias: the score ``x . weight + bias`` on raw hidden states.
        lam: the chosen penalty (logistic), else None.
        platt, threshold: calibration and decision threshold (on validation data).
        layer_auroc: validation AUROC per candidate layer.
        layers: the candidate layers.
        model_info: ``model_type``, hidden size and layer count of the model it was fitted on.
    """

    kind = "activation"

    def __init__(self, config: ActivationProbeConfig | None = None) -> None:
        super().__init__()
        self.config = config or ActivationProbeConfig()
        self.layer: int | None = None
        self.weight: torch.Tensor | None = None
        self.bias = 0.0
        self.lam: float | None = None
        self.layer_auroc: list[float] = []
        self.layers: tuple[int, ...] = ()
        self.model_info: dict[str, Any] = {}

    # --- fitting on features ------------------------------------------------------

    def fit_features(
        self,
        acts: Activations | torch.Tensor,
        y: Sequence[int] | np.ndarray,
        groups: Sequence[Any] | None = None,
        layers: Sequence[int] | None = None,
    ) -> ActivationProbe:
        """Fit on collected features: Activations, or a tensor ``[n, layers(, positions), d]``.

        Args:
            layers: the layer index of each feature slice of a plain tensor (default ``0, 1, ...``).

        Raises:
            InputError: fewer than 2 examples of a class in the fit or validation part.
        """
        from gpu import get_backend

        X, layer_ids = _features(acts)
        if layers is not None:
            if len(layers) != X.shape[1]:
                raise InputError(f"activation probe: {X.shape[1]} feature layers but {len(layers)} layer indices")
            layer_ids = tuple(int(v) for v in layers)
        y_arr = np.asarray(y, dtype=np.int64)
        if len(y_arr) != X.shape[0]:
            raise InputError(f"activation probe: {X.shape[0]} feature rows but {len(y_arr)} labels")
        split = grouped_split(y_arr, groups, test_fraction=self.config.val_fraction, seed=self.config.seed, name="validation")
        fit_i, val_i = split.train, split.test
        for part, idx in (("fit", fit_i), ("validation", val_i)):
            counts = np.bincount(y_arr[idx], minlength=2)
            if counts.min() < 1 or (part == "fit" and counts.min() < 2):
                raise InputError(
                    f"activation probe: the {part} part has {counts[0]} negatives and {counts[1]} positives; "
                    "need more labelled examples of each class"
                )
        yf, yv = torch.as_tensor(y_arr[fit_i]), y_arr[val_i]
        backend = get_backend(self.config.backend) if self.config.method == "logistic" else None
        best: tuple[Any, ...] | None = None
        self.layer_auroc = []
        for j, layer in enumerate(layer_ids):
            Xf, Xv = X[fit_i, j], X[val_i, j]
            layer_best: tuple[Any, ...] | None = None
            for w, b, lam in self._candidates(Xf, yf, backend):
                scores = (Xv @ w + b).numpy()
                key = (_nan_low(auroc(yv, scores)), -_logloss(yv, scores) if lam is not None else 0.0)
                if layer_best is None or key > layer_best[0]:
                    layer_best = (key, layer, w, b, lam, scores)
            assert layer_best is not None
            self.layer_auroc.append(layer_best[0][0])
            if best is None or layer_best[0] > best[0]:
                best = layer_best
        assert best is not None
        _, self.layer, self.weight, self.bias, self.lam, val_scores = best
        self.calibrate(val_scores, yv)
        self.layers = tuple(layer_ids)
        self.train_info = {"n": int(len(y_arr)), "n_fit": int(len(fit_i)), "n_val": int(len(val_i)),
                           "n_positive": int(y_arr.sum()), "val_auroc": best[0][0]}
        return self

    def _candidates(self, Xf: torch.Tensor, yf: torch.Tensor, backend: Any) -> list[tuple[torch.Tensor, float, float | None]]:
        """``(weight, bias, lam)`` on raw features for each hyper-parameter value."""
        if self.config.method == "diff_means":
            mu1, mu0 = Xf[yf == 1].mean(0), Xf[yf == 0].mean(0)
            w = mu1 - mu0
            w = w / w.norm().clamp_min(1e-12)
            return [(w, float(-((mu1 + mu0) / 2) @ w), None)]
        mean = Xf.mean(0)
        std = Xf.std(0).clamp_min(1e-6)
        Z = (Xf - mean) / std  # [n, d]
        # The penalized weights lie in the row space of Z (the loss gradient and lam * w both do), so
        # w = V g with Z = U S V^T: fit g on F = U S, [n, r] with r <= min(n, d) - exact, and cheaper when n < d.
        u, sv, vh = (backend.to_torch(a).cpu().to(torch.float64) for a in backend.svd(backend.asarray(Z, dtype="float64")))
        keep = sv > sv.max() * 1e-10
        F, V = u[:, keep] * sv[keep], vh[keep].T  # [n, r], [d, r]
        out: list[tuple[torch.Tensor, float, float | None]] = []
        previous: tuple[torch.Tensor, float] | None = None
        for lam in sorted(self.config.l2, reverse=True):  # strongest penalty first; each solution warm-starts the next
            g, b = ridge_logistic(F, yf, lam, backend=backend, max_iter=self.config.max_iter, init=previous)
            previous = (g, b)
            w_raw = (V @ g) / std  # back to d dimensions, then fold the standardization into the weights
            out.append((w_raw, float(b - (mean * w_raw).sum()), lam))
        return out

    # --- fitting and prediction on a model ---------------------------------------

    def collect(self, model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str] | None = None,
                *, layers: Sequence[int] | None = None, remote: bool | str = False,
                progress: Progress | None = None) -> Activations:
        """The features this probe reads (prompt-only: responses are ignored).

        ``remote``: collect them on NDIF, ``model`` being nnsight's ``LanguageModel(repo_id)``
        of a hosted checkpoint (:func:`probes.activations.collect_activations`).
        """
        cfg = self.config
        if not cfg.prompt_only and responses is None:
            raise InputError("activation probe: this probe reads responses (prompt_only=False); pass them")
        return collect_activations(
            model, tok, prompts, responses=None if cfg.prompt_only else responses, layers=layers,
            positions=cfg.position_rule, chat=cfg.chat, system_prompt=cfg.system_prompt, batch_size=cfg.batch_size,
            max_response_tokens=cfg.max_response_tokens, impl=cfg.impl, remote=remote, progress=progress,
        )

    def fit(self, model: Any, tok: Any, prompts: Sequence[str], y: Sequence[int] | np.ndarray,
            responses: Sequence[str] | None = None, groups: Sequence[Any] | None = None,
            progress: Progress | None = None, *, remote: bool | str = False) -> ActivationProbe:
        """Collect features at the candidate layers and fit (see :meth:`fit_features`)."""
        acts = self.collect(model, tok, prompts, responses, layers=self.config.layers, remote=remote,
                            progress=progress)
        self.model_info = model_summary(model)
        return self.fit_features(acts, y, groups)

    def _require(self) -> tuple[int, torch.Tensor]:
        if self.weight is None or self.layer is None:
            raise RuntimeError("activation probe: not fitted")
        return self.layer, self.weight

    def score_features(self, X: torch.Tensor) -> np.ndarray:
        """Scores of ``[n, d]`` hidden states at the probe's layer."""
        _, w = self._require()
        return (X.to(torch.float64) @ w + self.bias).numpy()

    def proba_features(self, X: torch.Tensor) -> np.ndarray:
        """Calibrated probabilities of ``[n, d]`` hidden states."""
        return self.calibrated(self.score_features(X))

    def decision_function(self, model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str] | None = None,
                          progress: Progress | None = None, *, remote: bool | str = False) -> np.ndarray:
        """Scores ``[n]`` (collects the probe's layer only; ``remote``: on NDIF, see :meth:`collect`)."""
        layer, _ = self._require()
        self._check_model(model)
        acts = self.collect(model, tok, prompts, responses, layers=[layer], remote=remote, progress=progress)
        return self.score_features(acts.hidden.mean(dim=2)[:, 0])

    def predict_proba(self, model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str] | None = None,
                      progress: Progress | None = None, *, remote: bool | str = False) -> np.ndarray:
        """Calibrated probability of the positive class ``[n]``."""
        return self.calibrated(self.decision_function(model, tok, prompts, responses, progress, remote=remote))

    def predict(self, model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str] | None = None) -> np.ndarray:
        """1 where the calibrated probability reaches :attr:`threshold`."""
        return (self.predict_proba(model, tok, prompts, responses) >= self.threshold).astype(np.int64)

    def _check_model(self, model: Any) -> None:
        if not self.model_info:
            return
        got = model_summary(model)
        for key in ("model_type", "hidden_size", "num_layers"):
            if self.model_info.get(key) is not None and got.get(key) != self.model_info[key]:
                raise InputError(
                    f"activation probe: fitted on a {self.model_info.get('model_type')} model with "
                    f"{key}={self.model_info[key]}, but this model has {key}={got.get(key)}"
                )

    # --- storage (no pickle) -----------------------------------------------------

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (weight, validation AUROC per layer) and JSON metadata."""
        layer, w = self._require()
        arrays = {"weight": w.numpy().astype(np.float64), "layer_auroc": np.asarray(self.layer_auroc, dtype=np.float64)}
        meta = {"config": self.config.to_dict(), "layer": layer, "bias": self.bias, "lam": self.lam,
                "platt": list(self.platt), "threshold": self.threshold, "layers": list(self.layers),
                "model": self.model_info, "train_info": self.train_info}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ActivationProbe:
        probe = cls(ActivationProbeConfig.from_dict(meta["config"]))
        try:
            probe.weight = torch.as_tensor(np.asarray(arrays["weight"], dtype=np.float64))
            probe.layer_auroc = [float(v) for v in np.asarray(arrays["layer_auroc"])]
        except KeyError as exc:
            raise InputError(f"activation probe: saved arrays lack {exc}") from None
        hidden = (meta.get("model") or {}).get("hidden_size")
        if probe.weight.dim() != 1 or (hidden is not None and probe.weight.shape[0] != hidden):
            raise InputError(f"activation probe: weight of shape {tuple(probe.weight.shape)} does not match hidden size {hidden}")
        probe.layer = int(meta["layer"])
        probe.bias = float(meta["bias"])
        probe.lam = None if meta.get("lam") is None else float(meta["lam"])
        probe._restore_calibration(meta)
        probe.layers = tuple(int(v) for v in meta.get("layers", ()))
        probe.model_info = dict(meta.get("model") or {})
        probe.train_info = dict(meta.get("train_info") or {})
        return probe


def model_summary(model: Any) -> dict[str, Any]:
    """``model_type``, ``hidden_size``, ``num_layers`` and the spec it was loaded from."""
    from editkit.arch import hidden_size, model_type_of, num_layers
    from editkit.models import model_spec

    lm = unwrap(model)
    return {"model_type": model_type_of(lm), "hidden_size": int(hidden_size(lm)), "num_layers": int(num_layers(lm)),
            "spec": model_spec(lm)}


def _nan_low(value: float) -> float:
    return -1.0 if math.isnan(value) else value

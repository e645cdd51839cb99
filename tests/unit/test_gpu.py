"""The array backends against a float64 NumPy reference, backend selection, and lazy CuPy.

Every backend runs the same parity checks. Besides the real backends (the GPU ones
are marked ``gpu`` and skipped without a device) there is ``cupy-standin``: the
CuPy backend's own code driven by NumPy in place of CuPy, so its glue (SVD-based
``lstsq``, the randomized SVD wiring, dtype checks, host hand-off) runs on every
machine. It checks our code, not CuPy.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch

import gpu
from gpu import select
from gpu.cupy_backend import CupyBackend
from gpu.select import BackendEntry
from gpu.torch_backend import TorchBackend

pytestmark = pytest.mark.unit

HAS_CUPY = importlib.util.find_spec("cupy") is not None

SHAPES = [(6, 4), (4, 6), (3, 5, 4)]  # tall, wide, batched


def _numpy_as_cupy(monkeypatch: pytest.MonkeyPatch) -> CupyBackend:
    """A CupyBackend whose ``cupy`` is NumPy (no device, no streams, host hand-off)."""
    fake: Any = types.ModuleType("cupy")
    fake.linalg = np.linalg
    fake.asarray = np.ascontiguousarray  # like cupy.asarray: a fresh device buffer
    fake.asnumpy = np.asarray
    fake.where = np.where
    fake.finfo = np.finfo
    fake.cuda = types.SimpleNamespace(
        Device=lambda _index: contextlib.nullcontext(),
        runtime=types.SimpleNamespace(getDevice=lambda: 0),
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return CupyBackend()


@pytest.fixture(
    params=[
        "torch-cpu",
        "cupy-standin",
        pytest.param("torch-cuda", marks=pytest.mark.gpu),
        pytest.param("cupy", marks=pytest.mark.gpu),
    ]
)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> gpu.Backend:
    if request.param == "cupy-standin":
        return _numpy_as_cupy(monkeypatch)
    try:
        return gpu.get_backend(request.param)
    except gpu.BackendUnavailable as exc:
        pytest.skip(str(exc))


def _np(backend: gpu.Backend, a: Any) -> np.ndarray:
    return backend.to_torch(a).cpu().numpy()


def _random(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _low_rank(batch: tuple[int, ...], m: int, n: int, rank: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.standard_normal((*batch, m, rank)) @ rng.standard_normal((*batch, rank, n))


# ---------------------------------------------------------------- parity with NumPy


@pytest.mark.parametrize("shape", SHAPES)
def test_svd_reconstructs_and_matches_numpy(backend: gpu.Backend, shape: tuple[int, ...]) -> None:
    a = _random(shape)
    u, s, vh = (_np(backend, x) for x in backend.svd(a))
    k = min(shape[-2:])
    assert u.shape == (*shape[:-1], k) and vh.shape == (*shape[:-2], k, shape[-1])
    np.testing.assert_allclose((u * s[..., None, :]) @ vh, a, atol=1e-10)
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), atol=1e-10)
    np.testing.assert_allclose(
        u.swapaxes(-1, -2) @ u, np.broadcast_to(np.eye(k), (*shape[:-2], k, k)), atol=1e-10
    )


def test_full_svd_has_square_factors(backend: gpu.Backend) -> None:
    a = _random((2, 6, 4))
    u, s, vh = (_np(backend, x) for x in backend.svd(a, full_matrices=True))
    assert u.shape == (2, 6, 6) and s.shape == (2, 4) and vh.shape == (2, 4, 4)
    np.testing.assert_allclose((u[..., :4] * s[..., None, :]) @ vh, a, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_svdvals_match_numpy(backend: gpu.Backend, shape: tuple[int, ...]) -> None:
    a = _random(shape, seed=1)
    np.testing.assert_allclose(
        _np(backend, backend.svdvals(a)), np.linalg.svd(a, compute_uv=False), atol=1e-10
    )


@pytest.mark.parametrize("shape", [(5, 5), (3, 4, 4)])
def test_eigh_matches_numpy(backend: gpu.Backend, shape: tuple[int, ...]) -> None:
    x = _random(shape, seed=2)
    a = x + x.swapaxes(-1, -2)
    w, v = (_np(backend, t) for t in backend.eigh(a))
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), atol=1e-10)
    np.testing.assert_allclose(a @ v, v * w[..., None, :], atol=1e-10)


def test_eigh_reads_the_lower_triangle(backend: gpu.Backend) -> None:
    x = _random((4, 4), seed=3)
    sym = np.tril(x) + np.tril(x, -1).T
    garbage_upper = np.tril(x) + np.triu(np.full((4, 4), 100.0), 1)
    np.testing.assert_allclose(
        _np(backend, backend.eigh(garbage_upper)[0]), np.linalg.eigvalsh(sym), atol=1e-10
    )


@pytest.mark.parametrize("rhs_shape", [(8,), (8, 2)])
def test_lstsq_matches_numpy(backend: gpu.Backend, rhs_shape: tuple[int, ...]) -> None:
    a, b = _random((8, 5), seed=4), _random(rhs_shape, seed=5)
    x = _np(backend, backend.lstsq(a, b))
    np.testing.assert_allclose(x, np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-10)


def test_lstsq_rank_deficient_gives_minimum_norm_solution(backend: gpu.Backend) -> None:
    a, b = _low_rank((), 8, 6, rank=2), _random((8,), seed=6)
    x = _np(backend, backend.lstsq(a, b))
    np.testing.assert_allclose(x, np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-8)


def test_lstsq_batched(backend: gpu.Backend) -> None:
    a, b = _random((3, 7, 4), seed=7), _random((3, 7, 2), seed=8)
    x = _np(backend, backend.lstsq(a, b))
    ref = np.stack([np.linalg.lstsq(a[i], b[i], rcond=None)[0] for i in range(3)])
    np.testing.assert_allclose(x, ref, atol=1e-10)


@pytest.mark.parametrize("batch", [(), (2,)])
def test_lowrank_svd_recovers_exactly_low_rank_matrix(
    backend: gpu.Backend, batch: tuple[int, ...]
) -> None:
    a = _low_rank(batch, 40, 30, rank=3)
    u, s, vh = (_np(backend, x) for x in backend.lowrank_svd(a, 3, oversample=2))
    assert u.shape == (*batch, 40, 3) and s.shape == (*batch, 3) and vh.shape == (*batch, 3, 30)
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False)[..., :3], rtol=1e-10)
    np.testing.assert_allclose((u * s[..., None, :]) @ vh, a, atol=1e-9)


def test_lowrank_svd_is_accurate_on_a_decaying_spectrum(backend: gpu.Backend) -> None:
    rng = np.random.default_rng(10)
    left, _ = np.linalg.qr(rng.standard_normal((60, 40)))
    right, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    spectrum = 0.7 ** np.arange(40)
    a = (left * spectrum) @ right.T  # singular values 1, 0.7, 0.49, ...
    s = _np(backend, backend.lowrank_svd(a, 4)[1])
    np.testing.assert_allclose(s, spectrum[:4], rtol=1e-6)


def test_lowrank_svd_is_seeded(backend: gpu.Backend) -> None:
    a = _random((30, 20), seed=9)  # full rank: the result depends on the sketch
    first = _np(backend, backend.lowrank_svd(a, 4, niter=0, oversample=0, seed=1)[1])
    again = _np(backend, backend.lowrank_svd(a, 4, niter=0, oversample=0, seed=1)[1])
    other = _np(backend, backend.lowrank_svd(a, 4, niter=0, oversample=0, seed=2)[1])
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("q", [0, 21])
def test_lowrank_svd_rejects_a_rank_out_of_range(backend: gpu.Backend, q: int) -> None:
    with pytest.raises(ValueError, match="between 1 and"):
        backend.lowrank_svd(_random((30, 20)), q)


# ---------------------------------------------------------------- dtypes and hand-off


def test_float32_stays_float32(backend: gpu.Backend) -> None:
    a = backend.asarray(_random((6, 4)), dtype="float32")
    s = backend.svdvals(a)
    assert "float32" in str(s.dtype)
    np.testing.assert_allclose(
        _np(backend, s), np.linalg.svd(_random((6, 4)), compute_uv=False), rtol=1e-5
    )


def test_unsupported_dtype_is_a_clear_type_error(backend: gpu.Backend) -> None:
    with pytest.raises(TypeError, match="float16 is not supported.*float32, float64"):
        backend.svd(torch.ones(3, 3, dtype=torch.float16))


def test_round_trip_from_torch_and_numpy(backend: gpu.Backend) -> None:
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    back = backend.to_torch(backend.asarray(t))
    assert isinstance(back, torch.Tensor)
    torch.testing.assert_close(back.cpu(), t)
    reversed_view = np.arange(4.0)[::-1]  # negative stride
    assert backend.to_torch(backend.asarray(reversed_view)).cpu().tolist() == [3.0, 2.0, 1.0, 0.0]


def test_capability_flags_of_the_cpu_backend() -> None:
    backend = gpu.get_backend("torch-cpu")
    assert isinstance(backend, gpu.Backend)
    assert (backend.name, backend.device, backend.is_gpu) == ("torch-cpu", "cpu", False)
    assert backend.supports_batched and backend.dtypes == {"float32", "float64"}


# ---------------------------------------------------------------- selection


@pytest.mark.skipif(
    torch.cuda.is_available() or HAS_CUPY, reason="a GPU backend may be usable here"
)
def test_auto_falls_back_to_torch_cpu_here() -> None:
    assert gpu.get_backend().name == "torch-cpu"
    assert gpu.available_backends() == ["torch-cpu"]


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here")
def test_asking_for_missing_cupy_says_how_to_install_it() -> None:
    with pytest.raises(
        gpu.BackendUnavailable, match=r"'cupy'.*pip install 'editkit\[gpu\]'"
    ) as info:
        gpu.get_backend("cupy")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch has CUDA here")
def test_asking_for_torch_cuda_without_a_device_raises() -> None:
    with pytest.raises(
        gpu.BackendUnavailable, match=r"'torch-cuda'.*(CPU-only build|no CUDA device)"
    ):
        gpu.get_backend("torch-cuda")


def test_unknown_backend_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, cupy, torch-cuda, torch-cpu"):
        gpu.get_backend("jax")


def _entry(reason: str | None, built: list[str], name: str) -> BackendEntry:
    def build() -> gpu.Backend:
        built.append(name)
        return TorchBackend("cpu")

    return BackendEntry(lambda: reason, build)


def test_auto_takes_the_first_usable_backend_in_registry_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    registry = {
        "cupy": _entry("no cupy", built, "cupy"),
        "torch-cuda": _entry(None, built, "torch-cuda"),
        "torch-cpu": _entry(None, built, "torch-cpu"),
    }
    monkeypatch.setattr(select, "BACKENDS", registry)
    gpu.get_backend()
    assert built == ["torch-cuda"]
    assert gpu.available_backends() == ["torch-cuda", "torch-cpu"]


def test_auto_survives_a_backend_that_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> gpu.Backend:
        raise RuntimeError("CUDA driver exploded")

    registry = {
        "cupy": BackendEntry(lambda: None, broken),
        "torch-cpu": BackendEntry(lambda: None, TorchBackend),
    }
    monkeypatch.setattr(select, "BACKENDS", registry)
    assert gpu.get_backend().name == "torch-cpu"


def test_explicit_request_reports_the_probe_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"cupy": BackendEntry(lambda: "CuPy is broken; fix: reinstall", TorchBackend)}
    monkeypatch.setattr(select, "BACKENDS", registry)
    with pytest.raises(
        gpu.BackendUnavailable, match="array backend 'cupy' is not available: CuPy is broken"
    ):
        gpu.get_backend("cupy")


def test_importing_gpu_does_not_import_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
            if fullname.partition(".")[0] == "cupy":
                looked_up.append(fullname)
            return None

    for name in [m for m in sys.modules if m == "gpu" or m.startswith("gpu.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Watch(), *sys.meta_path])
    fresh = importlib.import_module("gpu")
    fresh.get_backend("torch-cpu")
    assert fresh is not gpu  # really imported again
    assert looked_up == [] and "cupy" not in sys.modules


# ---------------------------------------------------------------- on a CUDA device


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed")
def test_cupy_hand_off_is_zero_copy() -> None:
    backend = gpu.get_backend("cupy")
    t = torch.randn(5, 3, device="cuda", dtype=torch.float64)
    arr = backend.asarray(t)
    assert arr.data.ptr == t.data_ptr()
    assert backend.to_torch(arr).data_ptr() == t.data_ptr()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed")
def test_cupy_work_is_ordered_on_torchs_current_stream() -> None:
    backend = gpu.get_backend("cupy")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        x = torch.randn(256, 256, device="cuda", dtype=torch.float64)
        a = x @ x.T  # still queued on `side` when CuPy reads it
        s = backend.to_torch(backend.svdvals(a))
        ref = torch.linalg.svdvals(a)
    side.synchronize()
    torch.testing.assert_close(s, ref)


def test_certified_intruder_path_on_every_backend(backend: gpu.Backend) -> None:
    """The intruder analysis' certified path (torch on the backend's device) gives the CPU's counts."""
    from audit.intruders import IntruderConfig, inspect_matrix

    g = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(96, 96, generator=g))
    v, _ = torch.linalg.qr(torch.randn(160, 96, generator=g))
    w0 = (u * torch.arange(1, 97, dtype=torch.float32) ** -0.5) @ v.T  # distinct singular values
    wt = w0 + 0.2 * torch.randn(96, 3, generator=g) @ torch.randn(3, 160, generator=g) / 12
    cfg = IntruderConfig(n_spectrum=16)
    cpu = inspect_matrix(w0, wt, config=cfg, backend=gpu.get_backend("torch-cpu"))
    got = inspect_matrix(w0, wt, config=cfg, backend=backend)
    assert cpu.top.method == got.top.method == "certified"
    assert got.row.count == cpu.row.count > 0
    np.testing.assert_allclose(got.row.max_cos, cpu.row.max_cos, atol=1e-4)

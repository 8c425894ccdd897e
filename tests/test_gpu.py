"""The CUDA paths against the CPU paths: each torch and JAX method, from the same seed and the same
batches, gives the same losses and predictions on a GPU as on the CPU (to float32 reduction-order
differences). Skipped, with the reason, where no GPU is visible; ``make gpu-check`` runs these
with the GPU runs of the whole suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import registry
from tiny import TINY_SPEC, tiny_batch, tiny_hparams

pytestmark = pytest.mark.gpu


def cuda_available(framework: str) -> bool:
    if framework == "torch":
        torch = pytest.importorskip("torch")
        return bool(torch.cuda.is_available())
    if framework == "jax":
        jax = pytest.importorskip("jax")
        try:
            return bool(jax.devices("gpu"))
        except RuntimeError:
            return False
    return False


def gpu_methods() -> list[str]:
    """Registered methods that run on torch or JAX (read from the adapters' framework)."""
    names = []
    for name in registry.method_names():
        try:
            framework = registry.load_method(name).framework
        except Exception:  # an optional framework missing here: not a GPU candidate
            continue
        if framework in ("torch", "jax"):
            names.append(name)
    return names


def train_a_little(name: str, device: str) -> tuple[list[float], np.ndarray]:
    cls = registry.load_method(name)
    method = cls()
    method.setup(TINY_SPEC, tiny_hparams(cls), 0, device)
    fmt = cls.input_format
    losses = [float(method.train_step(tiny_batch(seed, fmt=fmt))["loss"]) for seed in range(3)]
    method.sync()
    scores = np.asarray(method.predict(tiny_batch(99, fmt=fmt)))
    return losses, scores


@pytest.mark.parametrize("name", gpu_methods())
def test_gpu_run_matches_the_cpu_run(name):
    framework = registry.load_method(name).framework
    if not cuda_available(framework):
        pytest.skip(f"no GPU visible to {framework}")
    cpu_losses, cpu_scores = train_a_little(name, "cpu")
    gpu_losses, gpu_scores = train_a_little(name, "cuda")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gpu_scores, cpu_scores, rtol=1e-3, atol=1e-4)
    assert (gpu_scores.argmax(1) == cpu_scores.argmax(1)).mean() >= 0.9

"""Fine-tuning helpers: checkpointed stages, frozen batch-norm statistics.

Gradient checkpointing recomputes a stage's forward during backward. A plain
``torch.utils.checkpoint`` would run the batch norms of that stage twice in
training mode and so update their running statistics (and
``num_batches_tracked``) twice per step; ``checkpoint_stage`` holds them still
during the recomputation, so a checkpointed step leaves exactly the state an
ordinary step does, and its gradients are identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Batch norms of ``module`` normalize with batch statistics but update nothing."""
    saved: list[tuple[nn.modules.batchnorm._BatchNorm, Any, torch.Tensor | None]] = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            count = m.num_batches_tracked
            saved.append((m, m.momentum, None if count is None else count.clone()))
            m.momentum = 0.0  # running = 1 * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(count)


def checkpoint_stage(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``stage(x)`` without keeping its activations; recomputed in backward."""

    def contexts() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), frozen_bn_stats(stage)

    return checkpoint(stage, x, use_reentrant=False, context_fn=contexts)

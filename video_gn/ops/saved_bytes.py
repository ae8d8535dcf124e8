"""What autograd keeps for backward: the activation memory a norm layer's implementation changes
(read by the model summary, the GroupNorm tests and bench/train_step.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def saved_bytes(fn: Callable, *args) -> int:
    """Bytes autograd keeps for backward while ``fn(*args)`` runs. Parameters are not counted, and a
    storage kept by several ops (a ReLU's output that is also the next conv's input) counts once."""
    storages = {}

    def pack(t):
        if not isinstance(t, torch.nn.Parameter):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(storages.values())

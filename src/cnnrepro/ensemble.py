"""Copies of one model trained as one: stacked weights, one vectorised forward pass.

Runs that share an architecture, an initialisation and a data order and differ only in
their optimiser settings (the points of a hyper-parameter grid) can be trained together,
as PyTorch's model-ensembling tutorial does: ``torch.func.stack_module_state`` stacks
their weights along a new first dimension and ``torch.vmap`` over
``torch.func.functional_call`` runs every copy on the same batch in one call (a vmapped
convolution is a grouped convolution, a vmapped Linear a batched matmul). Each copy's
slice of the stacked tensors is one parameter group of a single (fused) optimiser, with
its own learning rate and weight decay; the loss is the sum of the copies' mean losses, so each
copy's gradient is exactly that of its own loss.

The results are numerically equivalent to separately trained runs, not bit-identical:
the batched kernels sum in another order, and the fused optimiser step rounds differently
from the default one. Given the same gradients, the step is the same arithmetic as a
separate fused optimiser's per copy, bit for bit.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state


class Stacked:
    """``len(models)`` copies of one architecture with stacked weights (models without
    buffers: a batch norm's in-place running statistics cannot be vmapped)."""

    def __init__(self, models: Sequence[nn.Module]):
        params, buffers = stack_module_state(list(models))
        if buffers:
            raise ValueError(f"cannot stack models with buffers ({sorted(buffers)}): their "
                             f"in-place updates in training do not vectorise")
        self.size = len(models)
        self.params = params  # name -> (copies, ...) leaf tensors the forward pass differentiates
        # A stateless skeleton for functional_call: its own weights are never used.
        self.base = copy.deepcopy(models[0]).to("meta")
        # Each copy's weights as leaf views into the stacked storage: the optimiser's
        # in-place update of a view is the update of that copy's slice (no copies made).
        self.copies = [{name: p.detach()[k] for name, p in params.items()}
                       for k in range(self.size)]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Every copy on the same inputs: (copies, batch, ...) outputs."""
        def one(params: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, params, (inputs,))
        return torch.vmap(one, in_dims=(0, None))(self.params, x)

    def optimizer(self, training: dict[str, Any], settings: Sequence[dict[str, float]]
                  ) -> torch.optim.Optimizer:
        """One optimiser (``training['optimizer']``: adam or sgd) with one parameter group
        per copy, each with that copy's ``lr`` and ``weight_decay`` from ``settings``."""
        if len(settings) != self.size:
            raise ValueError(f"{len(settings)} optimiser settings for {self.size} copies")
        groups = [{"params": list(weights.values()), "lr": s["lr"],
                   "weight_decay": s["weight_decay"]} for weights, s in zip(self.copies, settings)]
        # fused: one kernel per group and step. The groups' many small per-tensor updates
        # are what costs here (the default single-tensor Adam was 8x slower for 16 FFNN
        # copies on 2 CPU cores); elementwise, so as deterministic as the default.
        if training["optimizer"] == "sgd":
            return torch.optim.SGD(groups, lr=settings[0]["lr"],
                                   momentum=training.get("momentum", 0.0), fused=True)
        return torch.optim.Adam(groups, lr=settings[0]["lr"], fused=True)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None
        for weights in self.copies:
            for view in weights.values():
                view.grad = None

    def share_grads(self) -> None:
        """After ``backward``: hand each copy's slice of the stacked gradients to its views
        (the optimiser reads the views' ``.grad``)."""
        for name, p in self.params.items():
            for k, weights in enumerate(self.copies):
                weights[name].grad = p.grad[k]

    def module(self, k: int) -> nn.Module:
        """Copy ``k`` as an ordinary module (a deep copy of its current weights)."""
        model = copy.deepcopy(self.base).to_empty(device=self.params[next(iter(self.params))].device)
        model.load_state_dict({name: w.clone() for name, w in self.copies[k].items()})
        return model


def mean_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each copy's mean cross-entropy over the batch: (copies, batch, classes) -> (copies,)."""
    copies, batch, classes = logits.shape
    per_image = nn.functional.cross_entropy(logits.reshape(copies * batch, classes),
                                            labels.repeat(copies), reduction="none")
    return per_image.view(copies, batch).mean(1)

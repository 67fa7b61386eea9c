"""Two losses combined with a weight α that follows a schedule over epochs (Bakos 2022, thesis §3; Kervadec et al.
2019 §3 for the "rebalance" strategy).

    mode "convex":   L = (1 − α) L₁ + α L₂        (α ∈ [0, 1])
    mode "additive": L = L₁ + α L₂                (α ≥ 0)

Schedules of α over the epoch index k = 0, 1, 2, … (k = number of completed epochs):

    "constant":    α(k) = α₀
    "linear":      α(k) = min(k · α₀, α_max)
    "exponential": α(k) = 1 − exp(−β k)
    "rebalance":   α(k) = min(α₀ + Δ · ⌊k / K⌋, α_max)   (thesis: Δ = 0.2 every K = 20 epochs)

α_max is 1 in convex mode and unbounded in additive mode unless given. :class:`weakseg.handlers.LossScheduleHandler`
sets α at the start of every epoch and records it in ``engine.state.metrics`` (logged to MLflow).
"""

from __future__ import annotations

import math

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = ["AlphaSchedule", "CombinedLoss", "SCHEDULES", "make_loss"]

SCHEDULES = ("constant", "linear", "exponential", "rebalance")
MODES = ("convex", "additive")


class AlphaSchedule:
    """α(k) for the schedules above.

    Args:
        name: one of ``"constant"``, ``"linear"``, ``"exponential"``, ``"rebalance"``.
        alpha: α₀ (constant value, linear slope, rebalance start).
        beta: rate β of the exponential schedule (> 0).
        period: K, epochs between two rebalance steps (≥ 1).
        step: Δ, change of α at each rebalance step.
        max_alpha: upper clamp of α (the combination's range: 1 for convex mode).
    """

    def __init__(
        self,
        name: str = "constant",
        alpha: float = 0.5,
        beta: float = 0.05,
        period: int = 20,
        step: float = 0.2,
        max_alpha: float | None = None,
    ) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown alpha schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
        for arg, v in (("alpha", alpha), ("beta", beta), ("step", step)):
            if not math.isfinite(v):
                raise ValueError(f"AlphaSchedule: {arg} must be finite, got {v}")
        if alpha < 0:
            raise ValueError(f"AlphaSchedule: alpha must be ≥ 0, got {alpha}")
        if name == "exponential" and beta <= 0:
            raise ValueError(f"AlphaSchedule: the exponential schedule needs beta > 0, got {beta}")
        if name == "rebalance" and (int(period) != period or period < 1):
            raise ValueError(f"AlphaSchedule: rebalance period must be a positive integer, got {period}")
        if max_alpha is not None and max_alpha < 0:
            raise ValueError(f"AlphaSchedule: max_alpha must be ≥ 0, got {max_alpha}")
        self.name, self.alpha, self.beta = name, float(alpha), float(beta)
        self.period, self.step, self.max_alpha = int(period), float(step), max_alpha

    def __call__(self, k: int) -> float:
        if k < 0:
            raise ValueError(f"AlphaSchedule: epoch index must be ≥ 0, got {k}")
        if self.name == "constant":
            a = self.alpha
        elif self.name == "linear":
            a = k * self.alpha
        elif self.name == "exponential":
            a = 1.0 - math.exp(-self.beta * k)
        else:
            a = self.alpha + self.step * (k // self.period)
        a = max(a, 0.0)
        return min(a, self.max_alpha) if self.max_alpha is not None else a

    def __repr__(self) -> str:
        return (
            f"AlphaSchedule(name={self.name!r}, alpha={self.alpha}, beta={self.beta}, period={self.period}, "
            f"step={self.step}, max_alpha={self.max_alpha})"
        )


class CombinedLoss(_Loss):
    """(1 − α) L₁ + α L₂ (``mode="convex"``) or L₁ + α L₂ (``"additive"``), α from ``schedule`` (see module).

    Target channels: when the target has more channels than the input (a label with the signed distance map
    appended by ``SignedDistanceMapd`` + ``ConcatItemsd``), losses that declare ``uses_distance_map = True``
    (:class:`weakseg.losses.DistanceMapBoundaryLoss`) get the whole target and the others only its first
    ``input.shape[1]`` channels.

    Args:
        first, second: the two losses, called as ``loss(input, target)``.
        schedule: an :class:`AlphaSchedule`, or a number for a constant α.
        mode: ``"convex"`` or ``"additive"``.
    """

    def __init__(
        self, first: _Loss, second: _Loss, schedule: AlphaSchedule | float = 0.5, mode: str = "convex"
    ) -> None:
        super().__init__(reduction=LossReduction.MEAN.value)
        if mode not in MODES:
            raise ValueError(f"CombinedLoss: mode must be one of {MODES}, got {mode!r}")
        if not callable(first) or not callable(second):
            raise TypeError("CombinedLoss: first and second must be loss modules or callables")
        if not isinstance(schedule, AlphaSchedule):
            schedule = AlphaSchedule("constant", alpha=float(schedule))
        if mode == "convex":
            if schedule.max_alpha is None:
                schedule.max_alpha = 1.0
            if schedule.name in ("constant", "rebalance") and schedule.alpha > 1:
                raise ValueError(f"CombinedLoss: convex mode needs alpha in [0, 1], got {schedule.alpha}")
            if schedule.max_alpha > 1:
                raise ValueError(f"CombinedLoss: convex mode needs max_alpha ≤ 1, got {schedule.max_alpha}")
        self.first, self.second, self.schedule, self.mode = first, second, schedule, mode
        self.alpha = schedule(0)

    def set_epoch(self, k: int) -> float:
        """Set α = schedule(k) for epoch index k (completed epochs) and return it."""
        self.alpha = self.schedule(k)
        return self.alpha

    @staticmethod
    def _target_for(loss, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if getattr(loss, "uses_distance_map", False) or target.shape[1] <= input.shape[1]:
            return target
        return target[:, : input.shape[1]]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        l1 = self.first(input, self._target_for(self.first, input, target))
        l2 = self.second(input, self._target_for(self.second, input, target))
        if self.mode == "convex":
            return (1.0 - self.alpha) * l1 + self.alpha * l2
        return l1 + self.alpha * l2


def make_loss(
    losses: dict, name: str, second: str | None = None, schedule: AlphaSchedule | float = 0.5, mode: str = "convex"
):
    """``losses[name]``, or ``CombinedLoss(losses[name], losses[second], schedule, mode)`` when ``second`` is given:
    lets a config pick its loss(es) by name from a dict of loss definitions (``--loss_name lovasz``)."""
    for n in (name, second):
        if n is not None and n not in losses:
            raise ValueError(f"unknown loss name {n!r}; the config defines {', '.join(sorted(losses))}")
    if second is None:
        return losses[name]
    return CombinedLoss(losses[name], losses[second], schedule, mode)

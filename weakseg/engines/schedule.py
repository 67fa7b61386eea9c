"""Ignite handler that drives the α schedule of a :class:`weakseg.losses.CombinedLoss` over epochs."""

from __future__ import annotations

import logging

from ignite.engine import Engine, Events

__all__ = ["LossScheduleHandler"]


class LossScheduleHandler:
    """At the start of every epoch set α = schedule(k), k = completed epochs, on ``loss`` (any object with
    ``set_epoch(k) -> float``), and record it as ``engine.state.metrics[metric_name]`` so that the epoch
    loggers (``MLFlowHandler``/``MLflowRunHandler`` with ``epoch_log``, ``StatsHandler``) log it each epoch.
    Works after a resume: k follows the restored ``engine.state.epoch``.
    """

    def __init__(self, loss, metric_name: str = "loss_alpha", name: str | None = None) -> None:
        if not hasattr(loss, "set_epoch"):
            raise TypeError(
                f"LossScheduleHandler needs a loss with set_epoch(k) (e.g. weakseg.losses.CombinedLoss), "
                f"got {type(loss).__name__}"
            )
        self.loss, self.metric_name = loss, metric_name
        self.logger = logging.getLogger(name or __name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        k = engine.state.epoch - 1
        alpha = float(self.loss.set_epoch(k))
        engine.state.metrics[self.metric_name] = alpha
        self.logger.debug("epoch %d: %s = %.6g", engine.state.epoch, self.metric_name, alpha)

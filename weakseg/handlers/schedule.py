"""The α schedule of a :class:`weakseg.losses.CombinedLoss` over epochs, as an ignite state-parameter scheduler."""

from __future__ import annotations

from ignite.engine import Engine, Events
from ignite.handlers.state_param_scheduler import LambdaStateScheduler

__all__ = ["LossScheduleHandler"]


class LossScheduleHandler(LambdaStateScheduler):
    """ignite's :class:`~ignite.handlers.state_param_scheduler.LambdaStateScheduler` that, when every epoch starts,
    sets α = ``loss.set_epoch(k)`` (k = completed epochs) on ``loss`` (any object with ``set_epoch(k) -> float``),
    as ``engine.state.<metric_name>`` and as ``engine.state.metrics[metric_name]``, so that the epoch loggers
    (``MLFlowHandler``/``MLflowRunHandler`` with ``epoch_log``, ``StatsHandler``) log it. k follows
    ``engine.state.epoch``, so a resumed run continues the schedule where it stopped.
    """

    def __init__(self, loss, metric_name: str = "loss_alpha") -> None:
        if not hasattr(loss, "set_epoch"):
            raise TypeError(
                f"LossScheduleHandler needs a loss with set_epoch(k) (e.g. weakseg.losses.CombinedLoss), "
                f"got {type(loss).__name__}"
            )
        super().__init__(lambda_obj=lambda epoch: float(loss.set_epoch(epoch - 1)), param_name=metric_name,
                         create_new=True)
        self.loss, self.metric_name = loss, metric_name

    def attach(self, engine: Engine, event=Events.EPOCH_STARTED) -> None:
        super().attach(engine, event)

    def __call__(self, engine: Engine) -> None:
        self.event_index = engine.state.epoch - 1  # the scheduler's counter follows a resumed engine
        super().__call__(engine)
        engine.state.metrics[self.metric_name] = getattr(engine.state, self.metric_name)

"""A tqdm progress bar that MONAI handler lists can attach with ``handler.attach(engine)`` alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar as _IgniteProgressBar

__all__ = ["ProgressBar"]


class ProgressBar(_IgniteProgressBar):
    """
    ignite's ``ProgressBar`` with ``output_transform`` and ``metric_names`` given at construction, so it can be
    listed in a bundle's ``train#handlers`` (MONAI calls ``attach(engine)`` with no other argument), e.g.
    ``{"_target_": "weakseg.handlers.ProgressBar", "output_transform": "$lambda x: {'loss': x[0]['loss']}"}``.
    """

    def __init__(
        self, output_transform: Callable[[Any], Any] | None = None, metric_names: str | list | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("persist", True)
        super().__init__(**kwargs)
        self._output_transform = output_transform
        self._metric_names = metric_names

    def attach(self, engine: Engine, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("metric_names", self._metric_names)
        kwargs.setdefault("output_transform", self._output_transform)
        super().attach(engine, *args, **kwargs)

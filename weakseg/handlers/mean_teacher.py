"""Mean teacher (Tarvainen & Valpola 2017): an exponential moving average of the student's weights, kept by
ignite's :class:`~ignite.handlers.EMAHandler`.

After every training iteration ``θ_teacher ← α θ_teacher + (1 − α) θ_student`` (ignite's momentum is 1 − α;
floating-point buffers such as batch-norm statistics are averaged the same way, integer buffers copied), so after
k iterations with a fixed student ``θ_k = α^k θ_0 + (1 − α^k) θ_student``.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler

from weakseg.networks.utils import unwrap_parallel

__all__ = ["MeanTeacherHandler"]

EVENTS = {"iteration": Events.ITERATION_COMPLETED, "epoch": Events.EPOCH_STARTED}


class MeanTeacherHandler(EMAHandler):
    """:class:`~ignite.handlers.EMAHandler` (``handle_buffers="update"``) with the mean-teacher conventions:

    - ``alpha`` is the teacher's weight (ignite's ``momentum = 1 − alpha``), and ``alpha=0`` is allowed: with
      ``event="epoch"`` (the step taken when every epoch starts) the teacher is then an exact copy of the student
      as the epoch began — a per-epoch snapshot, the reference of :py:class:`weakseg.losses.SizeMatchedMaskLoss`;
    - ``teacher`` is the EMA network (``ema_model``: a copy of the student, or the network given as ``teacher``),
      a plain network also for a ``DataParallel`` student; a copied teacher is set to the student again when a fresh
      run starts, so weights loaded into the student after the handler was built (a pre-trained start) count;
    - ``enabled=False`` attaches nothing (a config switch), and ``attach(engine)`` alone picks the event.

    Put ``teacher`` in the checkpoint's ``save_dict`` to save it, and give it to the evaluator instead of the student
    to evaluate with the teacher.

    Raises:
        ValueError: ``alpha`` outside [0, 1), or ``event`` not "iteration" / "epoch".
    """

    def __init__(self, student: torch.nn.Module, alpha: float = 0.99, teacher: torch.nn.Module | None = None,
                 enabled: bool = True, event: str = "iteration") -> None:
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f"mean-teacher alpha must be in [0, 1), got {alpha}")
        if event not in EVENTS:
            raise ValueError(f"mean-teacher event must be 'iteration' or 'epoch', got {event!r}")
        # ignite requires momentum < 1; the snapshot (alpha = 0, momentum 1) is set after the check
        super().__init__(unwrap_parallel(student), momentum=min(1.0 - float(alpha), 0.5), handle_buffers="update")
        self.momentum = 1.0 - float(alpha)
        self.alpha, self.event, self.enabled = float(alpha), event, bool(enabled)
        self.student, self.copied = self.model, teacher is None
        if teacher is not None:  # a given teacher network (same architecture) instead of a copy of the student
            self.ema_model = teacher
            for p in teacher.parameters():
                p.requires_grad_(False)

    @property
    def teacher(self) -> torch.nn.Module:
        return self.ema_model

    def attach(self, engine: Engine, name: str = "teacher_momentum", warn_if_exists: bool = False,
               event=None) -> None:
        if self.enabled:
            engine.add_event_handler(Events.STARTED, self._start_from_student)
            super().attach(engine, name=name, warn_if_exists=warn_if_exists, event=event or EVENTS[self.event])

    def _start_from_student(self, engine: Engine) -> None:
        """A fresh run's teacher starts as the student of that moment (e.g. after pre-trained weights were loaded
        into it, which a config may do after the handler was built); a resumed run keeps its restored teacher."""
        if self.copied and engine.state.iteration == 0:
            self.ema_model.load_state_dict(self.model.state_dict())

    def step(self) -> None:
        """One EMA step now, outside an engine."""
        self._update_ema_model(SimpleNamespace(state=SimpleNamespace(momentum=self.momentum)), "momentum")

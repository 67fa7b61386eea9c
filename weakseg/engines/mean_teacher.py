"""Mean teacher (Tarvainen & Valpola 2017): an exponential moving average of the student's weights.

After every training iteration ``θ_teacher ← α θ_teacher + (1 − α) θ_student`` (floating-point buffers such as
batch-norm statistics are averaged the same way, integer buffers copied), so after k iterations with a fixed
student ``θ_k = α^k θ_0 + (1 − α^k) θ_student``.
"""

from __future__ import annotations

import copy

import torch
from ignite.engine import Engine, Events

from weakseg.engines.utils import unwrap_parallel

__all__ = ["MeanTeacherHandler", "TeacherBatch", "WeakLabelBatch", "ema_update"]


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, alpha: float) -> None:
    """One EMA step of ``teacher`` towards ``student`` (same architecture)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if torch.is_floating_point(t):
            t.mul_(alpha).add_(s, alpha=1.0 - alpha)
        else:
            t.copy_(s)


class MeanTeacherHandler:
    """Ignite handler keeping ``teacher`` (default: a deep copy of ``student``, no gradients) as the EMA of
    ``student`` after each iteration. Put ``teacher`` in the checkpoint's ``save_dict`` to save it, and give it to
    the evaluator instead of the student to evaluate with the teacher. ``enabled=False`` attaches nothing (a
    config switch). A (Distributed)DataParallel student is followed through its module, so the teacher is a plain
    network (identical on every rank, since DDP keeps the students identical).

    ``event="epoch"`` takes the EMA step at the start of every epoch instead; with ``alpha=0`` the teacher is then
    an exact copy of the student as it was when the epoch began (a per-epoch snapshot, e.g. the reference of
    :py:class:`weakseg.losses.SizeMatchedMaskLoss`).

    Raises:
        ValueError: ``alpha`` outside [0, 1), or ``event`` not "iteration" / "epoch".
    """

    def __init__(self, student: torch.nn.Module, alpha: float = 0.99, teacher: torch.nn.Module | None = None,
                 enabled: bool = True, event: str = "iteration") -> None:
        self.enabled = bool(enabled)
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f"mean-teacher alpha must be in [0, 1), got {alpha}")
        if event not in ("iteration", "epoch"):
            raise ValueError(f"mean-teacher event must be 'iteration' or 'epoch', got {event!r}")
        self.event = event
        # a (Distributed)DataParallel student: the EMA follows its module and the teacher is a plain copy of it
        student = unwrap_parallel(student)
        self.student, self.alpha = student, float(alpha)
        self.teacher = copy.deepcopy(student) if teacher is None else teacher
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            engine.add_event_handler(Events.ITERATION_COMPLETED if self.event == "iteration" else Events.EPOCH_STARTED,
                                     self)

    def __call__(self, engine: Engine | None = None) -> None:
        ema_update(self.teacher, self.student, self.alpha)


@torch.no_grad()
def teacher_logits(teacher: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The teacher's logits on ``image`` in eval mode, without a graph (the first output of a network that returns
    several); the teacher's train/eval mode is restored."""
    was = teacher.training
    teacher.eval()
    out = teacher(image)
    teacher.train(was)
    return out[0] if isinstance(out, (list, tuple)) else out


class WeakLabelBatch:
    """``prepare_batch`` for MONAI's ``SupervisedTrainer`` with mixed annotations: returns ``(image, target)``
    where ``target`` is a dict ``{"label", "annotation", "image_labels"}`` (see
    :class:`weakseg.losses.MultiLabelDeepSupervisionLoss`), plus ``"teacher"`` — the teacher's logits on the same
    images, no gradient — when a mean ``teacher`` is given. Random flips of image and label (``flip``, the
    :class:`weakseg.engines.RandFlipBatch` arguments) are applied before the teacher sees the images."""

    def __init__(self, teacher: torch.nn.Module | None = None, flip: dict | None = None) -> None:
        from weakseg.engines.augment import RandFlipBatch

        self.teacher = teacher
        self.flipper = RandFlipBatch(**flip) if flip else None

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        def dev(x):
            return torch.as_tensor(x).to(device=device, non_blocking=non_blocking)

        image, label = dev(batchdata["image"]), dev(batchdata["label"])
        if self.flipper is not None:
            image, label = self.flipper.flip(image, label)
        target = {"label": label}
        for k in ("annotation", "image_labels"):
            if k in batchdata:
                target[k] = dev(batchdata[k])
        if self.teacher is not None:
            target["teacher"] = teacher_logits(self.teacher, image)
        return image, target


class TeacherBatch:
    """``prepare_batch`` for MONAI's ``SupervisedTrainer``: returns ``(image, (target, teacher_logits))`` with the
    target taken from ``target_key`` (e.g. ``"size"``, for :py:class:`weakseg.losses.SizeMatchedMaskLoss`) and
    the ``teacher``'s logits on the same images (eval mode, no gradient). Random flips of the images
    (``flip``, the :class:`weakseg.engines.RandFlipBatch` arguments) are applied before the teacher sees them, so
    student and teacher see the same pixels. A batch without a key raises ``KeyError`` naming it."""

    def __init__(self, teacher: torch.nn.Module, image_key: str = "image", target_key: str = "size",
                 flip: dict | None = None) -> None:
        from weakseg.engines.augment import RandFlipBatch

        self.teacher, self.image_key, self.target_key = teacher, image_key, target_key
        self.flipper = RandFlipBatch(**flip) if flip else None

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        for k in (self.image_key, self.target_key):
            if k not in batchdata:
                raise KeyError(f"batch has no '{k}' (keys: {sorted(batchdata)}); every item needs '{k}'.")
        image = torch.as_tensor(batchdata[self.image_key]).to(device=device, non_blocking=non_blocking)
        target = torch.as_tensor(batchdata[self.target_key]).to(device=device, non_blocking=non_blocking)
        if self.flipper is not None:
            (image,) = self.flipper.flip(image)
        return image, (target, teacher_logits(self.teacher, image))

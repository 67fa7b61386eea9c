"""``prepare_batch`` classes that add a teacher's predictions to the target (the teacher is kept by
:class:`weakseg.handlers.MeanTeacherHandler`)."""

from __future__ import annotations

import torch
from monai.engines.utils import PrepareBatch

from weakseg.engines.augment import RandFlipBatch

__all__ = ["TeacherBatch", "WeakLabelBatch", "teacher_logits"]


@torch.no_grad()
def teacher_logits(teacher: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The teacher's logits on ``image`` in eval mode, without a graph (the first output of a network that returns
    several); the teacher's train/eval mode is restored."""
    was = teacher.training
    teacher.eval()
    out = teacher(image)
    teacher.train(was)
    return out[0] if isinstance(out, (list, tuple)) else out


class WeakLabelBatch(PrepareBatch):
    """``prepare_batch`` for MONAI's ``SupervisedTrainer`` with mixed annotations: returns ``(image, target)``
    where ``target`` is a dict ``{"label", "annotation", "image_labels"}`` (see
    :class:`weakseg.losses.MultiLabelDeepSupervisionLoss`), plus ``"teacher"`` — the teacher's logits on the same
    images, no gradient — when a mean ``teacher`` is given. Random flips of image and label (``flip``, the
    :class:`weakseg.engines.RandFlipBatch` arguments) are applied before the teacher sees the images."""

    def __init__(self, teacher: torch.nn.Module | None = None, flip: dict | None = None) -> None:
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


class TeacherBatch(PrepareBatch):
    """``prepare_batch`` for MONAI's ``SupervisedTrainer``: returns ``(image, (target, teacher_logits))`` with the
    target taken from ``target_key`` (e.g. ``"size"``, for :py:class:`weakseg.losses.SizeMatchedMaskLoss`) and
    the ``teacher``'s logits on the same images (eval mode, no gradient). Random flips of the images
    (``flip``, the :class:`weakseg.engines.RandFlipBatch` arguments) are applied before the teacher sees them, so
    student and teacher see the same pixels. A batch without a key raises ``KeyError`` naming it."""

    def __init__(self, teacher: torch.nn.Module, image_key: str = "image", target_key: str = "size",
                 flip: dict | None = None) -> None:
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

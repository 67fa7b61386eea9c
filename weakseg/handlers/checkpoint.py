"""A final checkpoint only from a state that trained; the best-so-far state of a validation for resumes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver

__all__ = ["BestMetricState", "PublishCheckpoint", "TrainedCheckpointSaver"]


class TrainedCheckpointSaver(CheckpointSaver):
    """MONAI's :class:`~monai.handlers.CheckpointSaver` whose final checkpoint (``save_final``) on an exception is
    written only when the engine completed at least one iteration in this run.

    MONAI's handler deletes the previous final checkpoint and saves the current weights on any exception. On a failed
    start — a corrupt or mismatched checkpoint to resume from, an unreachable tracking server, a data error raised at
    start — those weights are untrained (or merely reloaded). They would replace a trained ``model_final.pt``. Here such
    an exception leaves every file as it is, logs why, and re-raises. The arguments are those of MONAI's handler.
    """

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        self._iterations_this_run = 0
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._count)

    def _reset(self, engine: Engine) -> None:
        self._iterations_this_run = 0

    def _count(self, engine: Engine) -> None:
        self._iterations_this_run += 1

    def exception_raised(self, engine: Engine, e: Exception) -> None:
        if getattr(self, "_iterations_this_run", 0) == 0:
            (self.logger or engine.logger).warning(
                f"Exception raised before any iteration of this run: the final checkpoint "
                f"'{self._final_filename or 'final'}' is not written and existing files in {self.save_dir} are kept."
            )
            raise e
        super().exception_raised(engine, e)


class BestMetricState:
    """The best-so-far state of a validation, as a ``state_dict`` for resumable checkpoints
    (:class:`weakseg.handlers.ResumeHandler`'s ``best_metric``).

    It holds the evaluator's ``best_metric`` and ``best_metric_epoch`` and the list of files that the key-metric
    checkpoint of a MONAI :class:`~monai.handlers.CheckpointSaver` (``save_key_metric=True``) has saved, with their
    scores (ignite ``Checkpoint.state_dict``). Without it, a resumed run starts with an empty list, so its first
    validation, however poor, replaces ``model.pt``.

    Args:
        evaluator: the validation engine.
        checkpoint_saver: the CheckpointSaver attached to it that keeps the best model (``None``: metric only).
    """

    def __init__(self, evaluator: Engine, checkpoint_saver: CheckpointSaver | None = None) -> None:
        self.evaluator, self.saver = evaluator, checkpoint_saver

    def _checkpoint(self):
        ckpt = getattr(self.saver, "_key_metric_checkpoint", None) if self.saver is not None else None
        if self.saver is not None and ckpt is None:
            raise ValueError("BestMetricState: the CheckpointSaver does not save a key metric (save_key_metric=False)")
        return ckpt

    def state_dict(self) -> dict:
        ckpt = self._checkpoint()
        saved = [(float(p), str(f)) for p, f in ckpt.state_dict()["_saved"]] if ckpt is not None else []
        return {"best_metric": float(self.evaluator.state.best_metric),
                "best_metric_epoch": int(self.evaluator.state.best_metric_epoch), "saved": saved}

    def load_state_dict(self, state: dict) -> None:
        self.evaluator.state.best_metric = float(state["best_metric"])
        self.evaluator.state.best_metric_epoch = int(state["best_metric_epoch"])
        ckpt = self._checkpoint()
        if ckpt is not None:
            ckpt.load_state_dict({"_saved": [(float(p), str(f)) for p, f in state["saved"]]})


class PublishCheckpoint:
    """When the engine completes, copy the checkpoint ``source`` (e.g. the run's best ``model.pt``) to ``target``
    (e.g. ``<bundle_root>/models/model.pt``, where the model-zoo layout and a standalone ``inference.json`` expect
    the bundle's weights), atomically: a temporary file in the target folder, then ``os.replace``. Nothing is
    copied when ``source`` does not exist (no validation ran) or when the run fails, so ``target`` only ever
    holds the weights of a completed training.
    """

    def __init__(self, source: str | os.PathLike, target: str | os.PathLike) -> None:
        self.source, self.target = Path(source), Path(target)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.source.is_file() or self.source.resolve() == self.target.resolve():
            return
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(self.source, tmp)
            os.replace(tmp, self.target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        engine.logger.info(f"best weights {self.source} copied to {self.target}")

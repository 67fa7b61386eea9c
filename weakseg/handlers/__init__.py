"""Ignite handlers for MONAI engines that MONAI lacks, as thin subclasses of MONAI's."""

from weakseg.handlers.checkpoint import BestMetricState, PublishCheckpoint, TrainedCheckpointSaver

__all__ = ["BestMetricState", "PublishCheckpoint", "TrainedCheckpointSaver"]

"""Ignite handlers for MONAI engines that MONAI lacks, as thin subclasses of MONAI's and ignite's where one exists."""

from weakseg.handlers.checkpoint import BestMetricState, PublishCheckpoint, TrainedCheckpointSaver
from weakseg.handlers.mean_teacher import MeanTeacherHandler
from weakseg.handlers.metrics_saver import MetricsJsonHandler
from weakseg.handlers.mlflow import MLflowRunHandler, check_tracking_uri, find_bundle_parser, flatten_config_params
from weakseg.handlers.progress import ProgressBar
from weakseg.handlers.resume import RandomStates, ResumeHandler
from weakseg.handlers.schedule import LossScheduleHandler
from weakseg.handlers.visual import (
    LearningCurveHandler,
    MontageHandler,
    OverlayHandler,
    default_predict,
    save_montage_png,
    save_overlay_png,
)

__all__ = [
    "BestMetricState",
    "LearningCurveHandler",
    "LossScheduleHandler",
    "MLflowRunHandler",
    "MeanTeacherHandler",
    "MetricsJsonHandler",
    "MontageHandler",
    "OverlayHandler",
    "ProgressBar",
    "PublishCheckpoint",
    "RandomStates",
    "ResumeHandler",
    "TrainedCheckpointSaver",
    "check_tracking_uri",
    "default_predict",
    "find_bundle_parser",
    "flatten_config_params",
    "save_montage_png",
    "save_overlay_png",
]

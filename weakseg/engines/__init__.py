from weakseg.engines.augment import RandFlipBatch
from weakseg.engines.edpcnn import CentreBatch, EDPCNNTrainer, jitter_centres, sample_centres_inside
from weakseg.engines.inference import predict_volume
from weakseg.engines.teacher_batch import TeacherBatch, WeakLabelBatch, teacher_logits
from weakseg.engines.utils import (
    PrepareBatchKeys,
    distributed_device,
    ensure_writable_dir,
    load_pretrained,
    lock_run_dir,
    require_checkpoint,
    unlock_run_dir,
)
from weakseg.networks.utils import unwrap_parallel

# names that moved to weakseg.handlers and weakseg.inferers: still importable from here (PEP 562), for configs
# and code written against earlier versions; not part of this package's __all__
_MOVED = {
    **dict.fromkeys(
        ("LearningCurveHandler", "LossScheduleHandler", "MeanTeacherHandler", "MetricsJsonHandler", "MLflowRunHandler",
         "MontageHandler", "OverlayHandler", "ProgressBar", "RandomStates", "ResumeHandler", "check_tracking_uri",
         "default_predict", "find_bundle_parser", "flatten_config_params", "save_montage_png", "save_overlay_png"),
        "weakseg.handlers"),
    **dict.fromkeys(("CentreComponentInferer", "DPContourInferer", "DPVolumeInferer"), "weakseg.inferers"),
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'weakseg.engines' has no attribute '{name}'")


__all__ = [
    "CentreBatch",
    "EDPCNNTrainer",
    "PrepareBatchKeys",
    "RandFlipBatch",
    "TeacherBatch",
    "WeakLabelBatch",
    "distributed_device",
    "ensure_writable_dir",
    "jitter_centres",
    "load_pretrained",
    "lock_run_dir",
    "unlock_run_dir",
    "predict_volume",
    "require_checkpoint",
    "sample_centres_inside",
    "teacher_logits",
    "unwrap_parallel",
]

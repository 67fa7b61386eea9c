from weakseg.engines.mean_teacher import MeanTeacherHandler, TeacherBatch, WeakLabelBatch, ema_update
from weakseg.engines.augment import RandFlipBatch
from weakseg.engines.edpcnn import (
    CentreBatch,
    EDPCNNTrainer,
    jitter_centres,
    sample_centres_inside,
)
from weakseg.engines.inference import predict_volume
from weakseg.inferers.contour import CentreComponentInferer, DPContourInferer, DPVolumeInferer  # moved; old names kept
from weakseg.engines.mlflow import MLflowRunHandler, check_tracking_uri, find_bundle_parser, flatten_config_params
from weakseg.engines.progress import ProgressBar
from weakseg.engines.resume import RandomStates, ResumeHandler
from weakseg.engines.schedule import LossScheduleHandler
from weakseg.engines.utils import (
    MetricsJsonHandler,
    PrepareBatchKeys,
    distributed_device,
    ensure_writable_dir,
    load_pretrained,
    lock_run_dir,
    require_checkpoint,
    unwrap_parallel,
)
from weakseg.engines.visual import (
    LearningCurveHandler,
    MontageHandler,
    OverlayHandler,
    default_predict,
    save_montage_png,
    save_overlay_png,
)

__all__ = [
    "MeanTeacherHandler",
    "TeacherBatch",
    "WeakLabelBatch",
    "ema_update",

    "CentreBatch",
    "CentreComponentInferer",
    "DPContourInferer",
    "DPVolumeInferer",
    "EDPCNNTrainer",
    "jitter_centres",
    "sample_centres_inside",
    "LearningCurveHandler",
    "LossScheduleHandler",
    "MLflowRunHandler",
    "check_tracking_uri",
    "MetricsJsonHandler",
    "MontageHandler",
    "OverlayHandler",
    "PrepareBatchKeys",
    "RandFlipBatch",
    "ProgressBar",
    "RandomStates",
    "ResumeHandler",
    "default_predict",
    "distributed_device",
    "ensure_writable_dir",
    "lock_run_dir",
    "require_checkpoint",
    "find_bundle_parser",
    "flatten_config_params",
    "load_pretrained",
    "predict_volume",
    "save_montage_png",
    "save_overlay_png",
    "unwrap_parallel",
]

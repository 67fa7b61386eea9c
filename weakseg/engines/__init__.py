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

# names that moved to weakseg.handlers and weakseg.inferers, still importable from here for existing configs
# (not part of this package's __all__)
from weakseg.handlers import (  # noqa: E402
    LearningCurveHandler,
    LossScheduleHandler,
    MeanTeacherHandler,
    MetricsJsonHandler,
    MLflowRunHandler,
    MontageHandler,
    OverlayHandler,
    ProgressBar,
    RandomStates,
    ResumeHandler,
    check_tracking_uri,
    default_predict,
    find_bundle_parser,
    flatten_config_params,
    save_montage_png,
    save_overlay_png,
)
from weakseg.inferers.contour import CentreComponentInferer, DPContourInferer, DPVolumeInferer  # noqa: E402

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

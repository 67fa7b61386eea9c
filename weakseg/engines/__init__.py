from weakseg.engines.inference import predict_volume
from weakseg.engines.mlflow import MLflowRunHandler, find_bundle_parser, flatten_config_params
from weakseg.engines.progress import ProgressBar
from weakseg.engines.visual import LearningCurveHandler, OverlayHandler, default_predict, save_overlay_png

__all__ = [
    "LearningCurveHandler",
    "MLflowRunHandler",
    "OverlayHandler",
    "ProgressBar",
    "default_predict",
    "find_bundle_parser",
    "flatten_config_params",
    "predict_volume",
    "save_overlay_png",
]

"""weakseg: MONAI components for segmentation from weak or structured supervision."""

from weakseg import annotations, data, engines, handlers, inferers, losses, metrics, networks, transforms

__version__ = "0.4.0"
__all__ = ["annotations", "data", "engines", "handlers", "inferers", "losses", "metrics", "networks", "transforms", "__version__"]

"""weakseg: MONAI components for segmentation from weak or structured supervision."""

from weakseg import data, engines, losses, metrics, networks, transforms

__version__ = "0.1.0"
__all__ = ["data", "engines", "losses", "metrics", "networks", "transforms", "__version__"]

"""Inferers: how a trained 2D network is applied to a whole case (slices of a volume or a 2D image), and the
contour inferers of the dynamic-programming head."""

from weakseg.inferers.contour import CentreComponentInferer, DPContourInferer, DPVolumeInferer
from weakseg.inferers.slice import SliceOrImageInferer

__all__ = ["CentreComponentInferer", "DPContourInferer", "DPVolumeInferer", "SliceOrImageInferer"]

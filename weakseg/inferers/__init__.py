"""Inferers: how a trained 2D network is applied to a whole case."""

from weakseg.inferers.slice import SliceOrImageInferer

__all__ = ["SliceOrImageInferer"]

from weakseg.networks.edpcnn import DPApproximator, StarPattern, dp_contour, smooth_indices
from weakseg.networks.resattunet import NETWORKS, AttentionGate, ResAttUNet, thesis_network

__all__ = [
    "DPApproximator",
    "NETWORKS",
    "AttentionGate",
    "ResAttUNet",
    "StarPattern",
    "dp_contour",
    "smooth_indices",
    "thesis_network",
]

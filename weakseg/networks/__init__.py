from weakseg.networks.deep_supervision import DeepSupervisionHeads, unet_decoder_levels
from weakseg.networks.padded import DivisiblePadNet
from weakseg.kernels.contour import StarPattern, dp_contour, smooth_indices
from weakseg.networks.edpcnn import DPApproximator
from weakseg.networks.resattunet import NETWORKS, AttentionGate, ResAttUNet, thesis_network

__all__ = [
    "DeepSupervisionHeads",
    "unet_decoder_levels",

    "DPApproximator",
    "DivisiblePadNet",
    "NETWORKS",
    "AttentionGate",
    "ResAttUNet",
    "StarPattern",
    "dp_contour",
    "smooth_indices",
    "thesis_network",
]

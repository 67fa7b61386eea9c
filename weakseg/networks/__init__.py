from weakseg.networks.resattunet import NETWORKS, AttentionGate, ResAttUNet, thesis_network

__all__ = ["NETWORKS", "AttentionGate", "ResAttUNet", "thesis_network"]

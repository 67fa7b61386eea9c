"""RandFlipBatch: each sample flipped like RandFlipd would, image and label together, reproducible by seed."""

import torch

from weakseg.engines import RandFlipBatch


def test_flips_match_per_sample_flips_and_keep_pairs():
    x = torch.arange(8 * 1 * 5 * 4, dtype=torch.float32).reshape(8, 1, 5, 4)
    y = (x % 3 == 0).float()
    flipper = RandFlipBatch(prob=0.5, spatial_axes=(0, 1), seed=3)
    fx, fy = flipper({"image": x, "label": y}, torch.device("cpu"))
    seen = set()
    for i in range(8):
        # each output sample is one of the four flips of its input, the label with the same flip
        for k, dims in enumerate(((), (1,), (2,), (1, 2))):
            cand = x[i].flip(dims) if dims else x[i]
            if torch.equal(fx[i], cand):
                assert torch.equal(fy[i], y[i].flip(dims) if dims else y[i])
                seen.add(k)
                break
        else:
            raise AssertionError(f"sample {i} is not a flip of its input")
    assert len(seen) > 1  # different samples got different flips
    again = RandFlipBatch(prob=0.5, spatial_axes=(0, 1), seed=3)({"image": x, "label": y}, torch.device("cpu"))
    assert torch.equal(again[0], fx)  # same seed, same flips


def test_probabilities_and_non_spatial_targets():
    x = torch.randn(4000, 1, 2, 2)
    none = RandFlipBatch(prob=0.0)({"image": x, "label": x}, None)
    assert torch.equal(none[0], x)
    fx, _ = RandFlipBatch(prob=0.3, spatial_axes=(1,), seed=0)({"image": x, "label": x}, None)
    frac = (fx != x).flatten(1).any(1).float().mean().item()
    assert abs(frac - 0.3) < 0.03  # binomial: 4000 draws, std 0.007
    sizes = torch.arange(4000.0)
    fx, fs = RandFlipBatch(prepare_batch=lambda b, d, nb, **k: (b["image"], b["size"]))({"image": x, "size": sizes}, None)
    assert torch.equal(fs, sizes)  # a size target is not an image: left alone

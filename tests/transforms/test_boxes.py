"""BoxFromMask against a brute-force bounding box per class (the min / max index of its pixels on every axis)."""

import numpy as np
import torch

from weakseg.transforms import BoxFromMask


def brute_force_boxes(label: np.ndarray) -> np.ndarray:
    out = np.zeros(label.shape, np.float32)
    for cls in sorted(int(c) for c in np.unique(label) if c > 0):
        idx = np.nonzero(label == cls)
        out[tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)] = cls
    return out


def test_boxes_match_brute_force_in_2d_and_3d():
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 9, size=rng.integers(2, 4)))
        lab = rng.integers(0, 4, size=shape) * (rng.random(shape) < rng.random())
        got = BoxFromMask()(torch.as_tensor(lab[None], dtype=torch.float32))
        np.testing.assert_array_equal(got[0].numpy(), brute_force_boxes(lab))


def test_hand_worked_box():
    lab = np.zeros((1, 5, 6))
    lab[0, 1, 2] = lab[0, 3, 4] = 1  # one class, two pixels: the box spans rows 1-3, columns 2-4
    expected = np.zeros((5, 6))
    expected[1:4, 2:5] = 1
    np.testing.assert_array_equal(BoxFromMask()(lab)[0].numpy(), expected)

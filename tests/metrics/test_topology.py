"""Hard clDice, skeletons and Betti-number errors on hand-built masks (2D and 3D)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from weakseg.metrics.topology import BettiErrorMetric, ClDiceMetric, betti_numbers, cl_dice, skeleton


def bar(h, w, pad=2):
    m = np.zeros((h + 2 * pad, w + 2 * pad), bool)
    m[pad : pad + h, pad : pad + w] = True
    return m


def test_skeletons_of_bars():
    s1 = skeleton(bar(1, 7))
    assert np.array_equal(s1, bar(1, 7))  # a 1-pixel line is its own skeleton: length 7
    s = skeleton(bar(5, 7))
    m = bar(5, 7)
    assert (s <= m).all() and s.sum() >= 1
    assert ndimage.label(s, structure=np.ones((3, 3)))[1] == 1  # one 8-connected piece
    inner = np.zeros_like(m)
    inner[3:6, 3:8] = True  # the 3x5 interior (the outer ring is peeled off)
    assert (s <= inner).all()
    # medial axis of a 5x7 rectangle is a segment of 7 - 5 + 1 = 3 pixels; thinning gives that +/- 1
    assert 3 <= s.sum() <= 4
    s3 = skeleton(np.pad(np.ones((3, 3, 9), bool), 2))  # 3D, scikit-image >= 0.26
    assert s3.any() and (s3.sum() <= 9)


def test_cl_dice():
    m = bar(5, 7)
    assert cl_dice(m, m) == 1.0
    ring = np.zeros((15, 15), bool)
    ring[2:13, 2:13] = True
    ring[5:10, 5:10] = False
    assert cl_dice(ring, ring) == 1.0
    assert cl_dice(np.zeros((5, 5)), np.zeros((5, 5))) == 1.0
    assert cl_dice(np.zeros((9, 11)), m) == 0.0
    broken = ring.copy()
    broken[2:5, 7] = False  # cut the ring: the skeleton of the prediction loses its loop
    v = cl_dice(broken, ring)
    assert 0.5 < v < 1.0
    vol = np.pad(np.ones((3, 3, 9), bool), 2)
    assert cl_dice(vol, vol) == 1.0


def test_betti_numbers_by_hand():
    two = np.zeros((15, 15), bool)
    two[1:4, 1:4] = True
    two[8:12, 8:12] = True
    assert betti_numbers(two) == (2, 0)
    ring = np.zeros((15, 15), bool)
    ring[3:12, 3:12] = True
    ring[6:9, 6:9] = False
    assert betti_numbers(ring) == (1, 1)
    two_rings = np.concatenate([ring, ring], 1)
    assert betti_numbers(two_rings) == (2, 2)
    diag = np.zeros((5, 5), bool)
    diag[1, 1] = diag[2, 2] = True  # 8-connected foreground: one component, no hole
    assert betti_numbers(diag) == (1, 0)
    torus = np.zeros((12, 12, 7), bool)
    torus[2:10, 2:10, 2:5] = True
    torus[5:7, 5:7, :] = False  # a square ring slab: one tunnel
    assert betti_numbers(torus) == (1, 1)
    shell = np.zeros((9, 9, 9), bool)
    shell[1:8, 1:8, 1:8] = True
    shell[3:6, 3:6, 3:6] = False  # hollow cube: a cavity, no tunnel
    assert betti_numbers(shell) == (1, 0)


def test_metrics_monai_style():
    ring = np.zeros((15, 15), np.float32)
    ring[3:12, 3:12] = 1
    ring[6:9, 6:9] = 0
    filled = np.zeros_like(ring)
    filled[3:12, 3:12] = 1
    two = np.zeros_like(ring)
    two[1:4, 1:4] = 1
    two[8:12, 8:12] = 1
    y = torch.as_tensor(np.stack([ring, ring]))[:, None]
    p = torch.as_tensor(np.stack([filled, two]))[:, None]
    b0, b1 = BettiErrorMetric(0), BettiErrorMetric(1)
    b0(p, y)
    b1(p, y)
    assert b0.get_buffer()[:, 0].tolist() == [0, 1]  # |1 - 1|, |2 - 1|
    assert b1.get_buffer()[:, 0].tolist() == [1, 1]  # the filled square and the blobs have no hole
    assert b0.aggregate().item() == pytest.approx(0.5)
    cl = ClDiceMetric()
    cl(y, y)
    assert cl.aggregate().item() == 1.0
    with pytest.raises(ValueError, match="betti"):
        BettiErrorMetric(2)

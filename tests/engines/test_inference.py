import torch

from weakseg.engines import predict_volume


class Threshold(torch.nn.Module):
    """A stand-in 2D 'network': logit = image - 0.5, so the prediction is image > 0.5, pixel for pixel."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[1:]))
        return x - 0.5 + 0 * self.dummy


def test_predict_volume_restores_shape_and_position():
    torch.manual_seed(0)
    vol = (torch.rand(1, 5, 50, 30) > 0.5).float()  # in-plane 50x30: cropped to 48 rows, padded to 32 cols
    net = Threshold()
    for axis in (0, 1, 2):
        v = vol if axis == 0 else torch.rand(1, 50, 5, 30) if axis == 1 else torch.rand(1, 50, 30, 5)
        pred = predict_volume(net, v, axis=axis, spatial_size=(48, 32) if axis == 0 else (48, 30))
        assert pred.shape == v.shape and pred.dtype == torch.uint8
    pred = predict_volume(net, vol, axis=0, spatial_size=(48, 32))
    assert set(net.shapes) >= {(1, 48, 32)}
    # rows cut by the centre crop (first and last) are background; the rest equals the thresholded input
    assert pred[0, :, [0, -1]].sum() == 0
    assert torch.equal(pred[0, :, 1:-1].bool(), vol[0, :, 1:-1] > 0.5)

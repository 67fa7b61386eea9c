"""Boundary loss with precomputed maps, combined losses and their α schedules (closed forms), schedule handler."""

import math

import pytest
import torch
from ignite.engine import Engine, Events
from monai.losses import BoundaryLoss, DiceLoss

from weakseg.engines import LossScheduleHandler
from weakseg.losses import AlphaSchedule, CombinedLoss, DistanceMapBoundaryLoss, make_loss
from weakseg.transforms import signed_distance_map


class TestBoundary:
    def setup_method(self):
        torch.manual_seed(0)
        self.x = torch.randn(4, 1, 16, 12)
        self.y = (torch.rand(4, 1, 16, 12) > 0.6).float()
        self.y[0] = 0

    def test_equals_monai_boundary_loss(self):
        ref = BoundaryLoss(sigmoid=True)(self.x, self.y)
        ours = DistanceMapBoundaryLoss(sigmoid=True)(self.x, self.y)
        assert ours.item() == pytest.approx(ref.item(), abs=1e-6)

    def test_precomputed_map_as_extra_channel(self):
        phi = signed_distance_map(self.y, 2)
        target = torch.cat([self.y, phi], 1)
        ref = BoundaryLoss(sigmoid=True)(self.x, self.y)
        assert DistanceMapBoundaryLoss(sigmoid=True)(self.x, target).item() == pytest.approx(ref.item(), abs=1e-6)
        # the map really is taken from the target: a scaled map scales the loss
        scaled = torch.cat([self.y, 2 * phi], 1)
        assert DistanceMapBoundaryLoss(sigmoid=True)(self.x, scaled).item() == pytest.approx(2 * ref.item(), abs=1e-5)

    def test_multiclass_without_background(self):
        x = torch.randn(2, 3, 10, 10)
        idx = torch.randint(0, 3, (2, 1, 10, 10))
        onehot = torch.nn.functional.one_hot(idx[:, 0], 3).permute(0, 3, 1, 2).float()
        ref = BoundaryLoss(softmax=True, include_background=False)(x, onehot)
        target = torch.cat([onehot, signed_distance_map(onehot, 2)], 1)
        ours = DistanceMapBoundaryLoss(softmax=True, include_background=False)(x, target)
        assert ours.item() == pytest.approx(ref.item(), abs=1e-6)


class TestSchedules:
    def test_closed_forms(self):
        ks = range(0, 101)
        cases = {
            AlphaSchedule("constant", alpha=0.3): lambda k: 0.3,
            AlphaSchedule("linear", alpha=0.01, max_alpha=1.0): lambda k: min(0.01 * k, 1.0),
            AlphaSchedule("exponential", beta=0.05): lambda k: 1 - math.exp(-0.05 * k),
            AlphaSchedule("rebalance", alpha=0.2, period=20, step=0.2, max_alpha=1.0): lambda k: min(0.2 + 0.2 * (k // 20), 1.0),
        }
        for sched, closed in cases.items():
            for k in ks:
                assert sched(k) == pytest.approx(closed(k), abs=1e-12), f"{sched} k={k}"
        # thesis rebalance: 0.2, then +0.2 every 20 epochs
        r = AlphaSchedule("rebalance", alpha=0.2, period=20, step=0.2, max_alpha=1.0)
        assert [round(r(k), 6) for k in (0, 19, 20, 39, 40, 79, 80, 200)] == [0.2, 0.2, 0.4, 0.4, 0.6, 0.8, 1.0, 1.0]

    def test_bad_schedules(self):
        with pytest.raises(ValueError, match="unknown alpha schedule 'cosine'"):
            AlphaSchedule("cosine")
        with pytest.raises(ValueError, match="alpha must be ≥ 0"):
            AlphaSchedule("constant", alpha=-0.5)
        with pytest.raises(ValueError, match="beta > 0"):
            AlphaSchedule("exponential", beta=0)
        with pytest.raises(ValueError, match="period"):
            AlphaSchedule("rebalance", period=0)
        with pytest.raises(ValueError, match=r"alpha in \[0, 1\]"):
            CombinedLoss(DiceLoss(), DiceLoss(), AlphaSchedule("constant", alpha=1.5), mode="convex")
        with pytest.raises(ValueError, match="mode"):
            CombinedLoss(DiceLoss(), DiceLoss(), 0.5, mode="product")
        with pytest.raises(ValueError, match="unknown loss name 'lovasz'"):
            make_loss({"bce": torch.nn.BCEWithLogitsLoss()}, "lovasz")


class TestCombined:
    def test_values_and_target_split(self):
        x = torch.randn(3, 1, 12, 12)
        y = (torch.rand(3, 1, 12, 12) > 0.5).float()
        target = torch.cat([y, signed_distance_map(y, 2)], 1)
        bce, bnd = torch.nn.BCEWithLogitsLoss(), DistanceMapBoundaryLoss(sigmoid=True)
        l1, l2 = bce(x, y).item(), bnd(x, target).item()
        conv = CombinedLoss(bce, bnd, 0.25, mode="convex")
        assert conv(x, target).item() == pytest.approx(0.75 * l1 + 0.25 * l2, abs=1e-6)
        add = CombinedLoss(bce, bnd, AlphaSchedule("linear", alpha=0.5), mode="additive")
        add.set_epoch(3)
        assert add(x, target).item() == pytest.approx(l1 + 1.5 * l2, abs=1e-5)

    def test_handler_sets_alpha_per_epoch(self):
        loss = CombinedLoss(DiceLoss(), DiceLoss(), AlphaSchedule("exponential", beta=0.1))
        seen = []
        engine = Engine(lambda e, b: None)
        LossScheduleHandler(loss).attach(engine)
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append((loss.alpha, e.state.metrics["loss_alpha"])))
        engine.run([0, 1], max_epochs=5)
        expected = [1 - math.exp(-0.1 * k) for k in range(5)]
        assert len(seen) == 5
        for (a, m), e in zip(seen, expected):
            assert a == pytest.approx(e, abs=1e-12)
            assert m == pytest.approx(e, abs=1e-12)
        # a resumed engine (3 epochs done) continues the schedule at k = 3
        seen.clear()
        engine = Engine(lambda e, b: None)
        LossScheduleHandler(loss).attach(engine)
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append((loss.alpha, e.state.metrics["loss_alpha"])))
        engine.load_state_dict({"epoch": 3, "epoch_length": 2, "max_epochs": 5})
        engine.run([0, 1])
        assert [round(a, 12) for a, _ in seen] == [round(e, 12) for e in expected[3:]]
        with pytest.raises(TypeError, match="set_epoch"):
            LossScheduleHandler(DiceLoss())

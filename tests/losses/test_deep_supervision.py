"""Multi-label deep supervision (reference numbers of Simael/mlds-unet), heads, weak labels, mean teacher."""

import copy
import math

import pytest
import torch
from monai.losses import DeepSupervisionLoss
from monai.networks.nets import UNet

from weakseg.handlers import MeanTeacherHandler
from weakseg.losses.deep_supervision import ConsistencyLoss, MultiLabelDeepSupervisionLoss, multilabel_targets
from weakseg.networks.deep_supervision import DeepSupervisionHeads
from weakseg.transforms.weak import (
    BoxFromMask,
    ImageLabels,
    WeakAnnotationd,
    annotation_code,
    assign_annotations,
    box_to_mask,
)

REF = torch.tensor([[0, 0, 1, 1], [0, 2, 1, 1], [0, 0, 0, 0], [2, 0, 0, 0]], dtype=torch.float32)[None, None]


def test_max_pooled_multilabel_targets_reference():
    (t,) = multilabel_targets(REF, [(2, 2)], num_classes=3)
    assert t[0, 0].tolist() == [[1, 0], [1, 1]]
    assert t[0, 1].tolist() == [[0, 1], [0, 0]]
    assert t[0, 2].tolist() == [[1, 0], [1, 0]]
    (full,) = multilabel_targets(REF, [(4, 4)], num_classes=3)  # full size: plain one-hot
    assert torch.equal(full.argmax(1)[0].float(), REF[0, 0])


def test_zero_logits_on_three_heads_give_3_ln2_when_summed():
    heads = [torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 1, 1)]
    summed = MultiLabelDeepSupervisionLoss(3, level_reduction="sum")(heads, REF)
    assert summed.item() == pytest.approx(3 * math.log(2), abs=1e-6)  # 2.079442
    assert MultiLabelDeepSupervisionLoss(3)(heads, REF).item() == pytest.approx(math.log(2), abs=1e-6)


def test_loss_equals_hand_computed_bce_and_differs_from_monai_nearest():
    torch.manual_seed(0)
    heads = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 2, 2, requires_grad=True)]
    target = torch.cat([REF, REF.flip(-1)])
    loss = MultiLabelDeepSupervisionLoss(3, weights=[1.0, 0.5])(heads, target)
    ts = multilabel_targets(target, [(4, 4), (2, 2)], 3)
    ref = sum(w * torch.nn.functional.binary_cross_entropy_with_logits(h, t) for w, h, t in zip([1.0, 0.5], heads, ts)) / 1.5
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    loss.backward()
    assert all(h.grad is not None and h.grad.abs().sum() > 0 for h in heads)
    # MONAI's DeepSupervisionLoss resizes the target with nearest: one class per low-resolution cell
    ms = DeepSupervisionLoss(torch.nn.BCEWithLogitsLoss(), weight_mode="same")
    onehot = multilabel_targets(target, [(4, 4)], 3)[0]
    assert abs(ms([h.detach() for h in heads], onehot).item() - loss.item()) > 1e-3


def test_nearest_target_mode_reproduces_monai_deep_supervision_loss():
    (t,) = multilabel_targets(REF, [(2, 2)], num_classes=3, mode="nearest")  # nearest-exact: pixels (1|3, 1|3)
    assert t[0].argmax(0).tolist() == [[2, 1], [0, 0]] and t.sum().item() == 4  # one class per cell
    torch.manual_seed(2)
    heads = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    target = torch.randint(0, 3, (2, 1, 8, 8)).float()
    onehot = multilabel_targets(target, [(8, 8)], 3)[0]
    monai_loss = DeepSupervisionLoss(torch.nn.BCEWithLogitsLoss(), weight_mode="same")(heads, onehot)
    ours = MultiLabelDeepSupervisionLoss(3, level_reduction="sum", target_mode="nearest")(heads, target)
    assert ours.item() == pytest.approx(monai_loss.item(), rel=1e-6)
    assert MultiLabelDeepSupervisionLoss(3, level_reduction="sum")(heads, target).item() != pytest.approx(
        monai_loss.item(), rel=1e-3)  # max-pooled targets differ
    with pytest.raises(ValueError, match="target_mode must be one of"):
        MultiLabelDeepSupervisionLoss(3, target_mode="bilinear")


def test_image_level_samples_supervise_only_the_coarsest_level():
    torch.manual_seed(1)
    heads = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 2, 2, requires_grad=True)]
    loss = MultiLabelDeepSupervisionLoss(3)(heads, torch.cat([REF, torch.full_like(REF, -1)]),
                                            annotation=torch.tensor([0, 2]),
                                            image_labels=torch.tensor([[1.0, 1, 1], [1.0, 0, 1]]))
    loss.backward()
    assert heads[0].grad[1].abs().sum() == 0  # fine level: no gradient from the image-level sample
    assert heads[1].grad[1].abs().sum() > 0  # coarsest level: global max-pool vs image labels
    assert heads[0].grad[0].abs().sum() > 0
    with pytest.raises(ValueError, match="annotation codes"):
        MultiLabelDeepSupervisionLoss(3)(heads, torch.cat([REF, REF]), annotation=torch.tensor([0, 5]))


def test_box_min_level_keeps_boxes_off_the_finest_level():
    torch.manual_seed(2)
    # levels given coarse-first to check that the finest is found by size, not by position
    heads = [torch.randn(2, 3, 2, 2, requires_grad=True), torch.randn(2, 3, 4, 4, requires_grad=True)]
    target = torch.cat([REF, REF.flip(-1)])
    ann = torch.tensor([0, 1])  # a mask sample and a box sample
    loss = MultiLabelDeepSupervisionLoss(3, box_min_level=1)(heads, target, annotation=ann)
    loss.backward()
    assert heads[1].grad[1].abs().sum() == 0  # full resolution: nothing from the box sample
    assert heads[1].grad[0].abs().sum() > 0
    assert heads[0].grad[1].abs().sum() > 0  # the coarse level still learns from the box
    coarse_t, fine_t = multilabel_targets(target, [(2, 2), (4, 4)], 3)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ref = (bce(heads[0], coarse_t) + bce(heads[1][:1], fine_t[:1])) / 2  # finest level: mean over the mask sample
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    # default: boxes supervise like masks, every level
    default = MultiLabelDeepSupervisionLoss(3)(heads, target, annotation=ann)
    assert default.item() == pytest.approx(((bce(heads[0], coarse_t) + bce(heads[1], fine_t)) / 2).item(), rel=1e-6)
    with pytest.raises(ValueError, match="box_min_level"):
        MultiLabelDeepSupervisionLoss(3, box_min_level=-1)
    with pytest.raises(ValueError, match="box_min_level 2 leaves no level"):
        MultiLabelDeepSupervisionLoss(3, box_min_level=2)(heads, target, annotation=ann)


@pytest.mark.parametrize("nd,shape", [(2, (2, 1, 32, 48)), (3, (1, 1, 16, 16, 32))])
def test_heads_one_output_per_level(nd, shape):
    net = DeepSupervisionHeads(UNet(nd, 1, 3, (8, 16, 32, 64), (2, 2, 2), num_res_units=1))
    net.train()
    outs = net(torch.randn(*shape))
    sp = shape[2:]
    assert [tuple(o.shape) for o in outs] == [(shape[0], 3) + tuple(s // f for s in sp) for f in (1, 2, 4)]
    loss = MultiLabelDeepSupervisionLoss(3)(outs, torch.randint(0, 3, (shape[0], 1) + sp).float())
    loss.backward()
    assert all(h.weight.grad is not None for h in net.heads)
    net.eval()
    assert net(torch.randn(*shape)).shape == (shape[0], 3) + sp
    # TorchScript (as MONAI's ckpt_export does) gives the eval-mode network, heads left out, hooks kept in training
    x = torch.randn(*shape)
    scripted = torch.jit.script(net)
    torch.testing.assert_close(scripted(x), net(x))
    net.train()
    assert len(net(x)) == 3


def test_weak_labels_from_masks():
    lab = torch.zeros(1, 10, 12)
    lab[0, 2:4, 3:6] = 1
    lab[0, 5, 7] = 1  # class 1 spread: its box covers rows 2..5, cols 3..7
    lab[0, 7:9, 1:3] = 2
    box = BoxFromMask()(lab)
    assert (box[0, 2:6, 3:8] == 1).all() and int((box == 1).sum()) == 4 * 5
    assert (box[0, 7:9, 1:3] == 2).all() and int((box == 2).sum()) == 4
    assert ImageLabels(4)(lab).tolist() == [1, 1, 1, 0]
    d = WeakAnnotationd("label", num_classes=3, kind="image")({"label": lab})
    assert d["annotation"] == 2 and (d["label"] == -1).all() and d["image_labels"].tolist() == [1, 1, 1]
    d = WeakAnnotationd("label", num_classes=3)({"label": lab, "annotation": "box"})
    assert d["annotation"] == 1 and torch.equal(d["label"], box)
    items = assign_annotations([{"image": str(i)} for i in range(10)], num_masks=3, box_fraction=0.5, seed=0)
    kinds = [it["annotation"] for it in items]
    assert kinds.count("mask") == 3 and kinds.count("box") == 4 and kinds.count("image") == 3
    small = assign_annotations([{"image": str(i)} for i in range(10)], num_masks=2, seed=0)
    assert {i for i, it in enumerate(small) if it["annotation"] == "mask"} <= {
        i for i, it in enumerate(items) if it["annotation"] == "mask"}  # telescopic
    for every in (None, "all", " ALL"):
        assert [it["annotation"] for it in assign_annotations(items, num_masks=every)] == ["mask"] * 10
    with pytest.raises(ValueError, match="num_masks must be an integer, None or 'all', got 'None'"):
        assign_annotations(items, num_masks="None")


def test_weak_label_bad_input():
    with pytest.raises(ValueError, match="outside"):
        box_to_mask([(1, [2, 3], [12, 5])], (10, 10))
    with pytest.raises(ValueError, match="annotation type"):
        annotation_code("scribble")
    with pytest.raises(ValueError, match="annotation type"):
        WeakAnnotationd("label", num_classes=2)({"label": torch.zeros(1, 4, 4), "annotation": "points"})
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\)"):
        MeanTeacherHandler(torch.nn.Linear(2, 2), alpha=1.0)


def test_consistency_loss():
    a = torch.zeros(2, 3, 4, 4)
    assert ConsistencyLoss()(a, a).item() == 0
    b = torch.full_like(a, 100.0)
    assert ConsistencyLoss()(a, b).item() == pytest.approx(0.25)


def test_weak_label_batch_and_dict_targets_with_teacher():
    from weakseg.engines import WeakLabelBatch

    torch.manual_seed(0)
    student = DeepSupervisionHeads(UNet(2, 1, 3, (4, 8, 16), (2, 2), num_res_units=1))
    teacher = copy.deepcopy(student)
    batch = {"image": torch.randn(2, 1, 16, 16), "label": torch.randint(0, 3, (2, 1, 16, 16)).float(),
             "annotation": torch.tensor([0, 1]), "image_labels": torch.ones(2, 3)}
    image, target = WeakLabelBatch(teacher=teacher)(batch)
    assert set(target) == {"label", "annotation", "image_labels", "teacher"}
    assert target["teacher"].shape == (2, 3, 16, 16) and not target["teacher"].requires_grad
    student.train()
    preds = student(image)
    loss_fn = MultiLabelDeepSupervisionLoss(3, consistency_weight=2.0)
    with_t = loss_fn(preds, target)
    without = loss_fn(preds, {k: v for k, v in target.items() if k != "teacher"})
    expect = without + 2.0 * ConsistencyLoss()(preds[0], target["teacher"])
    assert with_t.item() == pytest.approx(expect.item(), rel=1e-6)
    # flips move image and label together
    flipped, t2 = WeakLabelBatch(flip={"prob": 1.0, "spatial_axes": [1], "seed": 0})(batch)
    assert torch.equal(flipped, batch["image"].flip(-1)) and torch.equal(t2["label"], batch["label"].flip(-1))

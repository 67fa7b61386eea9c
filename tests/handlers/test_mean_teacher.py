"""MeanTeacherHandler (ignite EMAHandler): the EMA's closed form, a DataParallel student, the per-epoch snapshot."""

import copy

import pytest
import torch
from ignite.engine import Engine

from weakseg.handlers import MeanTeacherHandler


def test_mean_teacher_ema_closed_form():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn_like(p))
    t0 = [p.detach().clone() for p in teacher.parameters()]
    alpha, k = 0.9, 7
    h = MeanTeacherHandler(student, alpha, teacher=teacher)
    engine = Engine(lambda e, b: None)
    h.attach(engine)
    engine.run([0] * k, max_epochs=1)
    for t, a, s in zip(teacher.parameters(), t0, student.parameters()):
        torch.testing.assert_close(t, alpha ** k * a + (1 - alpha ** k) * s.detach())
    assert not any(p.requires_grad for p in teacher.parameters())
    # a moving student: θ_k = α θ_{k-1} + (1 − α) s_k at every step
    t = teacher[0].weight.detach().clone()
    for _ in range(3):
        with torch.no_grad():
            student[0].weight.add_(1.0)
        h.step()
        t = alpha * t + (1 - alpha) * student[0].weight.detach()
        torch.testing.assert_close(teacher[0].weight, t)


def test_mean_teacher_of_a_data_parallel_student_is_a_plain_network():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 4)
    h = MeanTeacherHandler(torch.nn.DataParallel(net), 0.5)
    assert type(h.teacher) is torch.nn.Linear and h.student is net
    t0 = h.teacher.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(2.0)
    h.step()
    torch.testing.assert_close(h.teacher.weight, 0.5 * t0 + 0.5 * net.weight.detach())
    assert set(h.teacher.state_dict()) == set(net.state_dict())  # no "module." prefix in checkpoints


def test_epoch_snapshot_teacher():
    """event="epoch", alpha=0: during every epoch the teacher holds the student's weights of that epoch's start."""
    student = torch.nn.Linear(2, 1)
    handler = MeanTeacherHandler(student, alpha=0.0, event="epoch")
    seen = []

    def step(engine, batch):
        with torch.no_grad():
            student.weight.add_(1.0)
        seen.append((engine.state.epoch, float(handler.teacher.weight.detach()[0, 0]), float(student.weight.detach()[0, 0])))

    engine = Engine(step)
    handler.attach(engine)
    w0 = float(student.weight.detach()[0, 0])
    engine.run([0, 1, 2], max_epochs=2)
    # epoch 1 starts from w0, epoch 2 from w0 + 3; the teacher never follows the iterations
    assert [round(t - w0, 5) for _, t, _ in seen] == [0, 0, 0, 3, 3, 3]
    assert [round(s - w0, 5) for _, _, s in seen] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="'iteration' or 'epoch'"):
        MeanTeacherHandler(student, event="batch")


def test_teacher_starts_from_the_student_loaded_after_the_handler_was_built():
    """A config builds the handler, then loads pre-trained weights into the student: the EMA must start from them
    (an EMA of the random initial copy would take ~1/(1-α) iterations to forget it); a resumed run keeps its
    restored teacher."""
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 2)
    handler = MeanTeacherHandler(student, alpha=0.99)
    pretrained = torch.nn.Linear(3, 2)
    student.load_state_dict(pretrained.state_dict())
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    engine.run([0], max_epochs=1)
    torch.testing.assert_close(handler.teacher.weight, pretrained.weight)
    # resumed (iteration > 0 when the run starts): the teacher is not reset
    with torch.no_grad():
        handler.teacher.weight.add_(5.0)
    kept = handler.teacher.weight.detach().clone()
    resumed = Engine(lambda e, b: None)
    handler.attach(resumed)
    resumed.load_state_dict({"epoch": 1, "epoch_length": 1, "max_epochs": 2})
    resumed.run([0])  # one more iteration: one EMA step from the kept teacher, no reset
    torch.testing.assert_close(handler.teacher.weight, 0.99 * kept + 0.01 * student.weight.detach())

"""IDSNN kit: ResNet topology, loop-interpolated initialization, distillation loss, training loop."""
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from neurocompile.torch import LIF, init_student_from_teacher, loop_interpolate, replace_relu
from neurocompile.torch.idsnn import distillation_loss, evaluate, fit, resnet, spiking_resnet, train


def _tensors(model):
    """Every conv/BN tensor but the FC's, by name (BN's num_batches_tracked is not a weight)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.") and "num_batches" not in k}


def _shuffle_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.weight.data, m.bias.data, m.running_mean, m.running_var):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model


def test_resnet_topology():
    for depth, blocks in ((18, (2, 2, 2, 2)), (34, (3, 4, 6, 3))):
        for m in (resnet(depth, width=4), spiking_resnet(depth, width=4)):
            assert tuple(len(s) for s in m.stages) == blocks
            assert [s[0].conv1.out_channels for s in m.stages] == [4, 8, 16, 32]
            assert [s[0].conv1.stride for s in m.stages] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    s = spiking_resnet(18, num_classes=7, width=4, time_steps=3)
    assert sum(isinstance(m, LIF) for m in s.modules()) == 1 + 2 * 8
    assert s(torch.rand(2, 3, 16, 16)).shape == (2, 7) and s.time_steps == 3
    tiny = resnet(None, 10, 1, 4, blocks=(1, 1))
    assert tiny(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="depth"):
        resnet(50)


def test_spiking_resnet_is_the_mean_over_time_of_its_fc():
    torch.manual_seed(0)
    s = _shuffle_bn(spiking_resnet(None, 5, 1, 4, blocks=(1,), time_steps=3)).eval()
    x = torch.rand(4, 1, 6, 6)
    with torch.no_grad():  # recompute by hand: direct encoding, per-step layers, LIF over time, mean of FC
        xs = x.expand(3, *x.shape)
        stem = torch.stack([s.stem_bn(s.stem_conv(xt)) for xt in xs])
        h = s.stem_act(stem)
        b = s.stages[0][0]
        y = b.act1(torch.stack([b.bn1(b.conv1(ht)) for ht in h]))
        y = b.act2(torch.stack([b.bn2(b.conv2(yt)) for yt in y]) + h)
        want = torch.stack([s.fc(yt.mean((2, 3))) for yt in y]).mean(0)
        assert torch.allclose(s(x), want, atol=1e-6)


def test_loop_interpolation_copies_the_stated_channels():
    t = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)
    big = loop_interpolate(t, (6, 5, 2, 2))
    assert big.shape == (6, 5, 2, 2)
    for k, c, tk, tc in [(0, 0, 0, 0), (5, 4, 1, 1), (4, 3, 0, 0), (3, 2, 3, 2), (5, 2, 1, 2), (4, 4, 0, 1)]:
        assert torch.equal(big[k, c], t[tk, tc]), (k, c)
    small = loop_interpolate(t, (2, 2, 2, 2))
    assert torch.equal(small, t[:2, :2])
    assert torch.equal(loop_interpolate(torch.tensor([1.0, 2.0, 3.0]), (7,)), torch.tensor([1.0, 2, 3, 1, 2, 3, 1]))
    with pytest.raises(ValueError, match="kernel"):
        loop_interpolate(t, (4, 3, 3, 3))


def test_init_maps_blocks_and_channels_concretely():
    torch.manual_seed(0)
    teacher = _shuffle_bn(resnet(None, 10, 1, 4, blocks=(3, 2)))   # widths 4, 8
    student = spiking_resnet(None, 10, 1, 6, blocks=(2, 1))         # widths 6, 12
    fc_before = {k: v.clone() for k, v in student.fc.state_dict().items()}
    assert init_student_from_teacher(teacher, student) is student
    T0, S0 = teacher.stages[0], student.stages[0]
    # stem: (6, 1, 3, 3) <- (4, 1, 3, 3): out channel 5 <- 1
    assert torch.equal(student.stem_conv.weight[5], teacher.stem_conv.weight[1])
    assert torch.equal(student.stem_bn.running_var[4], teacher.stem_bn.running_var[0])
    # stage 0, student block 1 <- teacher block 1 (not 2): conv1 (6, 6) <- (4, 4)
    assert torch.equal(S0[1].conv1.weight[5, 4], T0[1].conv1.weight[1, 0])
    assert torch.equal(S0[1].conv1.weight[2, 5], T0[1].conv1.weight[2, 1])
    assert torch.equal(S0[1].conv2.weight[3, 3], T0[1].conv2.weight[3, 3])
    assert torch.equal(S0[1].bn2.weight[5], T0[1].bn2.weight[1])
    assert torch.equal(S0[1].bn2.bias[4], T0[1].bn2.bias[0])
    assert torch.equal(S0[1].bn1.running_mean[5], T0[1].bn1.running_mean[1])
    assert not torch.equal(S0[1].conv1.weight, T0[2].conv1.weight[torch.arange(6) % 4][:, torch.arange(6) % 4])
    # stage 1 block 0 shortcut: (12, 6, 1, 1) <- (8, 4, 1, 1): out 9 <- 1, in 5 <- 1
    s_sc, t_sc = student.stages[1][0].shortcut, teacher.stages[1][0].shortcut
    assert torch.equal(s_sc[0].weight[9, 5], t_sc[0].weight[1, 1])
    assert torch.equal(s_sc[1].running_var[11], t_sc[1].running_var[3])
    # and every student tensor is the loop-interpolated teacher tensor of the same name
    tt = _tensors(teacher)
    for name, v in _tensors(student).items():
        assert torch.equal(v, loop_interpolate(tt[name], v.shape)), name
    assert all(torch.equal(student.fc.state_dict()[k], v) for k, v in fc_before.items())  # FC stays random


def test_same_shape_teacher_gives_identical_weights():
    torch.manual_seed(1)
    teacher = replace_relu(_shuffle_bn(resnet(None, 10, 1, 4, blocks=(2, 1))), 8, 1.0)
    student = init_student_from_teacher(teacher, spiking_resnet(None, 10, 1, 4, blocks=(2, 1)))
    tt, st = _tensors(teacher), _tensors(student)
    assert tt.keys() == st.keys()
    assert all(torch.equal(tt[k], st[k]) for k in tt)
    assert not torch.equal(teacher.fc.weight, student.fc.weight)


def test_incompatible_models_raise_clear_errors():
    s = spiking_resnet(None, 10, 1, 4, blocks=(2, 1))
    with pytest.raises(ValueError, match="stages"):
        init_student_from_teacher(resnet(None, 10, 1, 4, blocks=(2, 1, 1)), s)
    with pytest.raises(ValueError, match="stage 0: the teacher has 1 blocks"):
        init_student_from_teacher(resnet(None, 10, 1, 4, blocks=(1, 1)), s)
    t = resnet(None, 10, 1, 4, blocks=(2, 1))
    t.stages[0][1].conv2 = nn.Conv2d(4, 4, 5, padding=2, bias=False)
    with pytest.raises(ValueError, match="stages.0.1.conv2: kernel sizes differ"):
        init_student_from_teacher(t, s)
    with pytest.raises(ValueError, match="not a neurocompile.torch ResNet"):
        init_student_from_teacher(nn.Sequential(nn.Conv2d(1, 4, 3)), s)


def test_distillation_loss_is_the_formula():
    s = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -0.7]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0, 3.0], [-2.0, 1.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 2])
    alpha, T = 0.3, 4.0

    def softmax(v):
        e = [math.exp(a) for a in v]
        return [a / sum(e) for a in e]

    ce = -sum(math.log(softmax(row)[lab]) for row, lab in zip(s.tolist(), y.tolist())) / 2
    kl = 0.0
    for rs, rt in zip(s.tolist(), t.tolist()):
        ps, pt = softmax([a / T for a in rs]), softmax([a / T for a in rt])
        kl += sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt))
    want = ce + alpha * T * T * kl / 2
    loss = distillation_loss(s, t, y, alpha=alpha, T_kd=T)
    assert abs(loss.item() - want) < 1e-6
    loss.backward()
    assert t.grad is None and s.grad is not None  # the teacher is a constant
    assert abs(distillation_loss(s, t, y, alpha=0.0).item() - ce) < 1e-6


def _digits_loader(n=384, batch=32, seed=0):
    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.images))[:n]
    x = torch.tensor(d.images[idx] / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target[idx], dtype=torch.int64)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=False)


def test_training_with_distillation_learns_digits():
    torch.manual_seed(0)
    loader = _digits_loader()
    teacher = resnet(None, 10, 1, 8, blocks=(1, 1))
    hist_t = train(teacher, loader, epochs=5, progress=False)
    student = init_student_from_teacher(teacher, spiking_resnet(None, 10, 1, 8, blocks=(1, 1), time_steps=2))
    hist_s = train(student, loader, epochs=5, teacher=teacher, progress=False)
    assert hist_t[-1] < hist_t[0] and hist_s[-1] < hist_s[0]
    assert evaluate(teacher, loader) > 0.5
    assert evaluate(student, loader) > 0.3  # 10 classes: chance is 0.1
    assert student.training and not teacher.training


def test_train_shows_a_progress_bar(capsys):
    torch.manual_seed(0)
    model = resnet(None, 10, 1, 4, blocks=(1,))
    hist = train(model, _digits_loader(64, 32), epochs=1, progress=True)
    assert len(hist) == 1 and hist[0] > 0
    assert "epoch 1/1" in capsys.readouterr().err


# ---- fit: cosine decay, accuracy per epoch, resumable checkpoints ---------------------------------------
class _FailsOnCall:
    """An evaluation loader whose n-th iteration raises: a run interrupted after its (n-1)-th checkpoint."""

    def __init__(self, loader, n):
        self.loader, self.n, self.calls = loader, n, 0

    def __iter__(self):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("interrupted")
        return iter(self.loader)


def _shuffled_loader(own_generator: bool):
    """Shuffled digits batches: by the loader's own generator, or (None) by torch's global RNG."""
    base = _digits_loader(96, 32)
    return torch.utils.data.DataLoader(base.dataset, batch_size=32, shuffle=True,
                                       generator=torch.Generator().manual_seed(0) if own_generator else None)


def _fresh_student():
    torch.manual_seed(0)
    return spiking_resnet(None, 10, 1, 4, blocks=(1,), time_steps=2)


@pytest.mark.parametrize("own_generator", [True, False])
def test_fit_resumes_after_an_interruption_exactly_as_an_uninterrupted_run(tmp_path, own_generator):
    """Same process, same code path and batching: the resumed run's weights and history are the uninterrupted
    run's (model, optimizer, scheduler, torch's RNG and the loader's shuffling generator all restored), however
    much the global RNG was used in between."""
    evals = _digits_loader(64, 64)
    whole = _fresh_student()
    want = fit(whole, _shuffled_loader(own_generator), 3, lr=0.1, cosine=True, eval_loader=evals, progress=False)
    ckpt = tmp_path / "student.pt"
    with pytest.raises(KeyboardInterrupt):  # epoch 2's evaluation fails: epoch 1 is saved
        fit(_fresh_student(), _shuffled_loader(own_generator), 3, lr=0.1, cosine=True,
            eval_loader=_FailsOnCall(evals, 2), checkpoint=ckpt, progress=False)
    assert ckpt.exists() and not (tmp_path / "student.pt.tmp").exists()
    assert len(torch.load(ckpt)["history"]["loss"]) == 1
    resumed = _fresh_student()
    torch.rand(1000)  # the global RNG moves on, as in a new process
    got = fit(resumed, _shuffled_loader(own_generator), 3, lr=0.1, cosine=True, eval_loader=evals,
              checkpoint=ckpt, progress=False)
    assert got.loss == want.loss and got.accuracy == want.accuracy and got.epochs == 3
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # a finished checkpoint: loaded, not retrained
    again = _fresh_student()
    done = fit(again, _shuffled_loader(own_generator), 3, lr=0.1, cosine=True, eval_loader=_FailsOnCall(evals, 1),
               checkpoint=ckpt, progress=False)
    assert done.loss == want.loss
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), again.state_dict().values()))


def test_fit_refuses_a_checkpoint_of_other_options(tmp_path):
    ckpt = tmp_path / "student.pt"
    fit(_fresh_student(), _shuffled_loader(True), 1, lr=0.1, cosine=True, checkpoint=ckpt, progress=False)
    for kw, field in ((dict(epochs=2, lr=0.1, cosine=True), "epochs = 1, this run has 2"),
                      (dict(epochs=1, lr=0.05, cosine=True), "lr = 0.1, this run has 0.05"),
                      (dict(epochs=1, lr=0.1, cosine=False), "cosine = True, this run has False"),
                      (dict(epochs=1, lr=0.1, cosine=True, teacher=resnet(None, 10, 1, 4, blocks=(1,))),
                       r"distillation = None, this run has \(0.3, 4.0\)")):
        with pytest.raises(ValueError, match=field):
            fit(_fresh_student(), _shuffled_loader(True), checkpoint=ckpt, progress=False, **kw)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(_fresh_student(), _shuffled_loader(True), 0, progress=False)


def test_fit_cosine_decays_to_zero_and_train_keeps_its_constant_rate(monkeypatch):
    seen = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    hist = fit(_fresh_student(), _digits_loader(64, 32), 2, lr=0.2, cosine=True, progress=False)
    train(_fresh_student(), _digits_loader(64, 32), 1, lr=0.2, progress=False)
    assert hist.accuracy == [None, None] and len(hist.seconds) == 2
    # CosineAnnealingLR over the 4 steps: 0.2 * (1 + cos(pi k / 4)) / 2 for k = 0..3, then the constant 0.2
    want = [0.2 * (1 + np.cos(np.pi * k / 4)) / 2 for k in range(4)] + [0.2, 0.2]
    np.testing.assert_allclose(seen, want, rtol=1e-9)

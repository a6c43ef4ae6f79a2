"""deepcausal.optim.Adam: PyTorch's Adam update, without importing torch._dynamo."""

import copy
import subprocess
import sys

import pytest
import torch

from deepcausal.optim import Adam


def _train_side_by_side(pairs, loss, steps):
    """``steps`` optimiser steps of every (model, optimiser) pair on ``loss(model)``, interleaved."""
    for _ in range(steps):
        for model, opt in pairs:
            opt.zero_grad()
            loss(model).backward()
            opt.step()


def test_matches_torch_adam_bit_for_bit():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    ref, ours = torch.optim.Adam(a.parameters(), lr=1e-2, foreach=False), Adam(b.parameters(), lr=1e-2)
    x = torch.randn(64, 3)
    _train_side_by_side(((a, ref), (b, ours)), lambda model: model(x).pow(2).mean(), 30)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(next(net.parameters()), next(b.parameters()))  # it did train


def test_parameters_without_gradients_do_not_move_and_the_others_match_torch():
    """A step in which only some parameters have gradients moves only those, exactly as torch.optim.Adam does."""
    torch.manual_seed(0)
    net = torch.nn.ModuleList([torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)])
    ref_net, before = copy.deepcopy(net), copy.deepcopy(net)
    ref, ours = torch.optim.Adam(ref_net.parameters(), lr=1e-2, foreach=False), Adam(net.parameters(), lr=1e-2)
    x = torch.randn(16, 3)
    # the second layer takes no part in the loss
    _train_side_by_side(((ref_net, ref), (net, ours)), lambda model: model[0](x).pow(2).mean(), 4)
    assert torch.equal(net[1].weight, before[1].weight) and torch.equal(net[1].bias, before[1].bias)
    assert not torch.equal(net[0].weight, before[0].weight)
    for p, q in zip(ref_net[0].parameters(), net[0].parameters()):
        assert torch.equal(p, q)


def test_a_fit_does_not_import_torch_dynamo():
    code = ("import sys; from deepcausal import DFIV; from deepcausal.datasets import lowdim; "
            "d = lowdim(300, g='sin', seed=0); DFIV(n_estimators=1, n_epochs=2, n_bootstrap=0, random_state=0)"
            ".fit(d.train, **d.fit_kwargs()); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_annealed_lr_is_flat_then_linear_down_to_its_floor():
    from deepcausal.optim import annealed_lr

    rates = [annealed_lr(2.0, s, 100) for s in range(100)]
    assert rates[:50] == [2.0] * 50  # constant for the first half of the budget
    assert all(a > b for a, b in zip(rates[50:98], rates[51:99]))  # then strictly falling
    assert rates[75] == pytest.approx(1.0)  # halfway down at three quarters
    assert rates[99] == pytest.approx(2.0 * 0.02)  # the floor at the last step
    assert annealed_lr(2.0, 99, 100, floor=0.5) == pytest.approx(1.0)


def test_weight_decay_matches_torch_adam_and_touches_only_the_decayed_parameters():
    torch.manual_seed(0)
    net = torch.nn.ModuleList([torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)])
    x = torch.randn(32, 3)

    def loss(model):
        return model[1](torch.relu(model[0](x))).pow(2).mean()

    a, b = copy.deepcopy(net), copy.deepcopy(net)
    ref = torch.optim.Adam(a.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    ours = Adam(b.parameters(), lr=1e-2, weight_decay=0.1)
    _train_side_by_side(((a, ref), (b, ours)), loss, 20)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # one step with the decay on the first layer only: the second layer moves exactly as without decay,
    # the first does not, and the gradients backward wrote are left as they were
    c, d = copy.deepcopy(net), copy.deepcopy(net)
    part, plain = Adam(c.parameters(), lr=1e-2, weight_decay=0.1, decayed=c[0].parameters()), Adam(d.parameters(), lr=1e-2)
    for model, opt in ((c, part), (d, plain)):
        loss(model).backward()
    grad_before = c[0].weight.grad.clone()
    part.step(), plain.step()
    assert torch.equal(c[1].weight, d[1].weight) and torch.equal(c[1].bias, d[1].bias)
    assert not torch.equal(c[0].weight, d[0].weight)
    assert torch.equal(c[0].weight.grad, grad_before)


def test_decay_on_a_later_layer_only_matches_torch_adam_with_two_groups():
    """The decayed parameters are stored first in the flat buffer; the result must not depend on that order."""
    torch.manual_seed(1)
    net = torch.nn.ModuleList([torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)])
    x = torch.randn(32, 3)

    def loss(model):
        return model[1](torch.relu(model[0](x))).pow(2).mean()

    a, b = copy.deepcopy(net), copy.deepcopy(net)
    ref = torch.optim.Adam([{"params": a[0].parameters(), "weight_decay": 0.0},
                            {"params": a[1].parameters(), "weight_decay": 0.3}], lr=1e-2, foreach=False)
    ours = Adam(b.parameters(), lr=1e-2, weight_decay=0.3, decayed=b[1].parameters())
    _train_side_by_side(((a, ref), (b, ours)), loss, 25)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_parameters_become_views_of_one_buffer_and_a_replaced_storage_still_updates_exactly():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    before = [p.detach().clone() for p in net.parameters()]
    ours = Adam(net.parameters(), lr=1e-2)
    # the values are unchanged and every parameter now lies inside the optimiser's buffer
    flat = ours._flat
    lo, hi = flat.data_ptr(), flat.data_ptr() + flat.numel() * flat.element_size()
    for p, q in zip(net.parameters(), before):
        assert torch.equal(p, q) and p.is_leaf and lo <= p.data_ptr() < hi
    ref_net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        for p, q in zip(ref_net.parameters(), before):
            p.copy_(q)
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, foreach=False)
    x = torch.randn(16, 3)

    def loss(model):
        return model(x).pow(2).mean()

    _train_side_by_side(((ref_net, ref), (net, ours)), loss, 5)
    # a parameter given new storage is no longer in the buffer: the steps go on per tensor, with the same moments
    net[0].weight.data = net[0].weight.data.clone()
    moved = net[0].weight.detach().clone()
    _train_side_by_side(((ref_net, ref), (net, ours)), loss, 5)
    assert not torch.equal(net[0].weight, moved)
    for p, q in zip(ref_net.parameters(), net.parameters()):
        assert torch.equal(p, q)


def test_parameters_of_two_dtypes_are_updated_one_by_one_as_torch_does():
    torch.manual_seed(3)
    a32, a64 = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    b32, b64 = (torch.nn.Parameter(t.detach().clone()) for t in (a32, a64))
    ref, ours = torch.optim.Adam([a32, a64], lr=1e-2, foreach=False), Adam([b32, b64], lr=1e-2)
    assert ours._flat is None
    for _ in range(5):
        for (p, q), opt in (((a32, a64), ref), ((b32, b64), ours)):
            opt.zero_grad()
            (p.pow(2).sum() + q.pow(3).sum()).backward()
            opt.step()
    assert torch.equal(a32, b32) and torch.equal(a64, b64) and b64.dtype == torch.float64

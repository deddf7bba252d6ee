"""Optimizers and their weight-decay groups; the schedule against its formula written out by hand."""

import math

import pytest
import torch
from lion_pytorch import Lion

from emnist_dist.errors import UserError
from emnist_dist.train.optim import build_optimizer, build_scheduler


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize("name, cls", [("lion", Lion), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_two_groups_no_decay_on_biases_and_norm_weights(name, cls):
    net = small_net()
    opt = build_optimizer(net, name, lr=0.1, weight_decay=0.5, betas=(0.8, 0.95), momentum=0.7)
    assert type(opt) is cls
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_decay == {
        0.5: {id(net[0].weight), id(net[3].weight)},
        0.0: {id(net[0].bias), id(net[1].weight), id(net[1].bias), id(net[3].bias)},
    }
    if name == "sgd":
        assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.7
    else:
        assert opt.defaults["betas"] == (0.8, 0.95)


def test_lion_decays_only_the_decayed_group():
    """With zero gradients Lion's update is sign(0) = 0, leaving only the decay p *= 1 - lr * wd."""
    net = small_net()
    before = [p.detach().clone() for p in net.parameters()]
    opt = build_optimizer(net, "lion", lr=0.1, weight_decay=0.5)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, old in zip(net.parameters(), before):
        torch.testing.assert_close(p.detach(), old * (0.95 if p.ndim > 1 else 1.0))


def test_unknown_optimizer_is_a_user_error():
    with pytest.raises(UserError, match="train.optimizer='adam'"):
        build_optimizer(small_net(), "adam", lr=0.1, weight_decay=0.0)


def lr_trajectory(scheduler, optimizer, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def fresh_optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def closed_form(k, *, lr, warmup, cycle, mult, eta_min):
    """The learning rate of step ``k`` from the formula alone: linear warmup over ``warmup`` steps, then
    cosine from ``lr`` to ``eta_min`` over cycles of ``cycle``, ``cycle * mult``, ... steps."""
    if k < warmup:
        return lr * (k + 1) / (warmup + 1)
    t, length = k - warmup, cycle
    while t >= length:
        t, length = t - length, length * mult
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / length)) / 2


def test_lr_trajectory_by_hand():
    """2 steps/epoch, 1 warmup epoch, T_0 = 1 epoch doubling: warmup 1/3, 2/3, then cycles of 2, 4 and 8 steps."""
    opt = fresh_optimizer(1.0)
    sched = build_scheduler(opt, steps_per_epoch=2, warmup_epochs=1, T_0=1, T_mult=2, eta_min=0.0)
    c8, c4, c38 = math.cos(math.pi / 8), math.cos(math.pi / 4), math.cos(3 * math.pi / 8)
    expected = [1 / 3, 2 / 3,  # warmup: (k + 1) / (W + 1)
                1.0, 0.5,  # cycle of 2 steps
                1.0, (1 + c4) / 2, 0.5, (1 - c4) / 2,  # cycle of 4
                1.0, (1 + c8) / 2, (1 + c4) / 2, (1 + c38) / 2, 0.5, (1 - c38) / 2, (1 - c4) / 2, (1 - c8) / 2,  # of 8
                1.0]
    assert lr_trajectory(sched, opt, len(expected)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("warmup_epochs, T_0, T_mult", [(1.5, 2.0, 1), (2.0, 1.25, 2), (0.0, 1.0, 1), (0.2, 0.01, 1)])
def test_lr_trajectory_matches_the_closed_form(warmup_epochs, T_0, T_mult):
    steps_per_epoch, lr, eta_min = 4, 0.5, 0.01
    opt = fresh_optimizer(lr)
    sched = build_scheduler(opt, steps_per_epoch=steps_per_epoch, warmup_epochs=warmup_epochs, T_0=T_0,
                            T_mult=T_mult, eta_min=eta_min)
    got = lr_trajectory(sched, opt, 40)
    warmup, cycle = round(warmup_epochs * steps_per_epoch), max(1, round(T_0 * steps_per_epoch))
    expected = [closed_form(k, lr=lr, warmup=warmup, cycle=cycle, mult=T_mult, eta_min=eta_min) for k in range(40)]
    assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("stop", [2, 9])  # mid-warmup and after the switch to the cosine
def test_state_dict_round_trip_continues_identically(stop):
    def build():
        opt = fresh_optimizer(0.3)
        return opt, build_scheduler(opt, steps_per_epoch=3, warmup_epochs=1, T_0=2, T_mult=2, eta_min=1e-3)

    opt, sched = build()
    uninterrupted = lr_trajectory(sched, opt, 30)

    opt, sched = build()
    head = lr_trajectory(sched, opt, stop)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt, sched = build()
    opt.load_state_dict(opt_state)
    sched.load_state_dict(sched_state)
    assert head + lr_trajectory(sched, opt, 30 - stop) == pytest.approx(uninterrupted, abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps_per_epoch": 0}, "no optimizer step"),
        ({"warmup_epochs": -1}, "train.warmup_epochs=-1"),
        ({"T_0": 0}, "train.T_0=0"),
        ({"T_mult": 0}, "train.T_mult=0"),
    ],
)
def test_bad_schedule_settings_are_user_errors(kwargs, match):
    args = dict(steps_per_epoch=10, warmup_epochs=1, T_0=1, T_mult=1) | kwargs
    with pytest.raises(UserError, match=match):
        build_scheduler(fresh_optimizer(), **args)

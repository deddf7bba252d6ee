"""Device loader: identical per-epoch order on every rank, exact shards, mid-epoch resume."""

import numpy as np
import pytest
import torch

from emnist_dist.errors import UserError
from emnist_dist.train.batches import TrainLoader, eval_batches


def make_split(n):
    """Labels are the sample ids; each image's pixels encode the id too, so rows can be traced."""
    ids = torch.arange(n)
    images = (ids % 251).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()
    return images, ids


def documented_order(n, seed, epoch):
    """The epoch's order as TrainLoader documents it, re-derived: torch.randperm on a CPU generator seeded
    with numpy's SeedSequence hash of (seed, epoch)."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(mixed))


def epoch_batches(loader, epoch):
    loader.seek(epoch, 0)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_ranks_together_see_exactly_the_single_process_batch():
    images, ids = make_split(103)
    single = TrainLoader(images, ids, 12, seed=7)
    ranks = [TrainLoader(images, ids, 12, seed=7, rank=r, world_size=3) for r in range(3)]
    assert len(single) == 8 and all(len(r) == 8 for r in ranks)  # 103 // 12, tail dropped
    reference = epoch_batches(single, 2)
    per_rank = [epoch_batches(r, 2) for r in ranks]
    perm = documented_order(103, seed=7, epoch=2)
    assert torch.equal(single.permutation(2), perm)
    for i, (x, y) in enumerate(reference):
        assert torch.equal(y, perm[i * 12 : (i + 1) * 12])
        shards = [per_rank[r][i] for r in range(3)]
        for rx, ry in shards:  # equal, even-sized batches, uint8 images, int64 labels
            assert rx.shape == (4, 1, 28, 28) and rx.dtype == torch.uint8 and ry.dtype == torch.int64
            assert torch.equal(rx[:, 0, 0, 0], (ry % 251).to(torch.uint8))
        # contiguous blocks in rank order: disjoint, and together the whole global batch
        assert torch.equal(torch.cat([ry for _, ry in shards]), y)
        assert torch.equal(torch.cat([rx for rx, _ in shards]), x)
    seen = torch.cat([y for _, y in reference])
    assert len(seen.unique()) == len(seen) == 96


def test_order_depends_on_seed_and_epoch_only():
    images, ids = make_split(64)
    a, b = TrainLoader(images, ids, 8, seed=1), TrainLoader(images, ids, 8, seed=1)
    assert torch.equal(a.permutation(3), b.permutation(3))
    assert not torch.equal(a.permutation(3), a.permutation(4))
    assert not torch.equal(a.permutation(3), TrainLoader(images, ids, 8, seed=2).permutation(3))
    first, again = epoch_batches(a, 0), epoch_batches(a, 0)
    assert all(torch.equal(y1, y2) for (_, y1), (_, y2) in zip(first, again))


def test_mid_epoch_resume_yields_the_very_next_batch():
    images, ids = make_split(80)
    full = [y for _, y in epoch_batches(TrainLoader(images, ids, 8, seed=3, rank=1, world_size=2), 5)]

    loader = TrainLoader(images, ids, 8, seed=3, rank=1, world_size=2)
    loader.seek(5, 0)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 5, "batch": 3, "batch_size": 8, "samples": 80}

    resumed = TrainLoader(images, ids, 8, seed=3, rank=1, world_size=2)
    resumed.load_state_dict(state)
    rest = [y for _, y in resumed]
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a, b) for a, b in zip(rest, full[3:]))
    assert resumed.state_dict()["batch"] == len(full)
    resumed.seek(6, 0)
    assert (resumed.state_dict()["epoch"], resumed.state_dict()["batch"]) == (6, 0)


@pytest.mark.parametrize("saved_by, resumed_on", [(1, 2), (2, 1), (2, 4)])
def test_a_position_saved_by_n_processes_resumes_on_m(saved_by, resumed_on):
    """The rest of the epoch, concatenated over the M new ranks, is the rest the N old ranks would have seen."""
    images, ids = make_split(96)
    old = [TrainLoader(images, ids, 16, seed=4, rank=r, world_size=saved_by) for r in range(saved_by)]
    for loader in old:
        loader.seek(2, 0)
        iterator = iter(loader)
        next(iterator), next(iterator)
    states = [loader.state_dict() for loader in old]
    assert all(state == states[0] for state in states)  # nothing in it depends on the rank
    expected = [torch.cat([y for _, y in rank_batches]) for rank_batches in zip(*(list(loader) for loader in old))]

    new = [TrainLoader(images, ids, 16, seed=4, rank=r, world_size=resumed_on) for r in range(resumed_on)]
    for loader in new:
        loader.load_state_dict(states[0])
    got = [torch.cat([y for _, y in rank_batches]) for rank_batches in zip(*(list(loader) for loader in new))]
    assert len(got) == len(expected) == 96 // 16 - 2
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_a_position_for_another_global_batch_is_refused():
    images, ids = make_split(96)
    state = TrainLoader(images, ids, 16, seed=0).state_dict()
    with pytest.raises(UserError, match="global batch 16 over 96 samples: expected global batch 32 over 96"):
        TrainLoader(images, ids, 32, seed=0).load_state_dict(state)


def test_seek_restarts_an_epoch_at_batch_zero():
    images, ids = make_split(40)
    loader = TrainLoader(images, ids, 8, seed=0)
    loader.seek(1, 0)
    next(iter(loader))
    loader.seek(1, 0)
    assert (loader.state_dict()["epoch"], loader.state_dict()["batch"]) == (1, 0)


def test_three_dimensional_images_get_a_channel_axis():
    images, ids = make_split(16)
    x, _ = next(iter(TrainLoader(images[:, 0], ids, 4, seed=0)))
    assert x.shape == (4, 1, 28, 28)


@pytest.mark.parametrize(
    "batch_size, world_size, n, expected",
    [
        (6, 2, 100, "train.batch_size=6 with 2 processes"),  # 3 per rank: odd
        (10, 4, 100, "train.batch_size=10 with 4 processes"),  # not divisible
        (64, 1, 50, "only 50 samples"),
    ],
)
def test_bad_batch_sizes_are_user_errors(batch_size, world_size, n, expected):
    images, ids = make_split(n)
    with pytest.raises(UserError, match=expected) as err:
        TrainLoader(images, ids, batch_size, seed=0, world_size=world_size)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("n, world_size", [(10, 3), (101, 4), (2, 3)])
def test_eval_shards_cover_every_sample_exactly_once(n, world_size):
    images, ids = make_split(n)
    shards = []
    for rank in range(world_size):
        batches = list(eval_batches(images, ids, 3, rank=rank, world_size=world_size))
        assert all(len(y) <= 3 for _, y in batches)
        for x, y in batches:
            assert torch.equal(x[:, 0, 0, 0], (y % 251).to(torch.uint8))
        shards.append(torch.cat([y for _, y in batches]) if batches else torch.empty(0, dtype=torch.int64))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1  # balanced, nothing padded
    assert torch.equal(torch.cat(shards), torch.arange(n))  # contiguous, in order, each sample once


def test_eval_batches_by_default_cover_every_sample_once_as_int64_labels():
    images, labels = torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10, dtype=torch.int32)
    # By hand: one process takes all 10 samples in batches of 3; rank 1 of 2 takes samples 5..9, in 2 batches.
    alone = list(eval_batches(images, labels, 3))
    assert [b.tolist() for _, b in alone] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert all(b.dtype == torch.int64 for _, b in alone) and all(x.shape[1:] == (1, 28, 28) for x, _ in alone)
    assert [b.tolist() for _, b in eval_batches(images, labels, 3, rank=1, world_size=2)] == [[5, 6, 7], [8, 9]]
    with pytest.raises(UserError) as err:
        list(eval_batches(images, labels, 0))
    assert str(err.value) == "train.eval_batch_size=0: expected a positive integer"

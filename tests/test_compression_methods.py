"""Behaviour of the compression methods on tiny synthetic models (no dataset needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the method modules register themselves (else: duplicate names)
from robench.tasks.compression.methods.base import apply_masks, prunable_layers
from robench.tasks.compression.methods.dense import Dense
from robench.tasks.compression.methods.dns import (DynamicNetworkSurgery, DynamicNetworkSurgeryNoSplice,
                                                   dns_thresholds, hysteresis_mask)
from robench.tasks.compression.methods.magnitude import MagnitudePruning
from robench.tasks.compression.methods.random_prune import RandomPruning
from robench.training import fit, make_sgd
from tests.compression_helpers import small_net, toy_data  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def weights(model):
    return [layer.weight for _, layer in prunable_layers(model)]


# -- DNS -------------------------------------------------------------------------------
def splice_setup():
    """A 4→2 linear layer with two large and two tiny input columns, and data that only
    uses feature 1 with label 1: the gradient drives the pruned W[:, 1] far above b."""
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.01, -1.0, 0.01], [-1.0, 0.01, 1.0, 0.01]]))
    x = torch.zeros(8, 4)
    x[:, 1] = 1.0
    y = torch.ones(8, dtype=torch.long)
    return model, x, y


@pytest.mark.parametrize("cls", [DynamicNetworkSurgery, DynamicNetworkSurgeryNoSplice])
def test_dns_splicing_brings_back_a_pruned_weight_only_with_splicing(cls):
    model, x, y = splice_setup()
    method = cls(c=0.0, gamma=0.0)  # a, b = 0.9·mean|W|, 1.1·mean|W|; a mask update every step
    method.prepare(model, None, total_steps=40, seed=0)
    a, b = method.thresholds_["0"]
    assert 0.01 < a < b < 1.0
    assert not method.masks_["0"][:, 1].any() and not method.masks_["0"][:, 3].any()

    fit(model, x, y, epochs=40, batch_size=8, optimizer=make_sgd(model, 0.1), seed=0, hooks=method)
    model = method.finalize(model)
    w, mask = model[0].weight.detach(), method.masks_["0"]
    if cls.splice:
        assert mask[:, 1].all(), "the gradient pushed |W[:, 1]| above b: it must be spliced back"
        assert (w[:, 1].abs() >= b).all()
        assert w[1, 1] > 0 > w[0, 1]
    else:
        assert not mask[:, 1].any(), "without splicing a pruned weight never comes back"
        assert (w[:, 1] == 0).all()
    assert not mask[:, 3].any()  # feature 3 never has a gradient: stays pruned either way
    assert mask[:, [0, 2]].all()
    assert torch.equal(w == 0, ~mask)  # the finalized model holds W⊙T


def test_dns_forward_uses_masked_weights_and_dense_weights_get_the_step():
    model, x, y = splice_setup()
    method = DynamicNetworkSurgery(c=0.0, gamma=0.0, mask_update_fraction=0.01)  # masks frozen after step 0
    method.prepare(model, None, total_steps=100, seed=0)
    seen = []
    model[0].register_forward_pre_hook(lambda module, inp: seen.append(module.weight.detach().clone()))
    fit(model, x, y, epochs=3, batch_size=8, optimizer=make_sgd(model, 0.01), seed=0, hooks=method)
    for w in seen:
        assert (w[:, 1] == 0).all() and (w[:, 3] == 0).all()  # forward sees W⊙T
    assert (model[0].weight[:, 1].detach().abs() > 0.01).all()  # dense W learned where T = 0


def test_hysteresis_keeps_the_mask_between_a_and_b():
    a, b = 1.0, 2.0
    magnitude = torch.tensor([0.5, 0.5, 1.0, 1.5, 1.5, 1.99, 1.99, 2.0, 3.0, 3.0])
    mask = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    new = hysteresis_mask(magnitude, mask, a, b)
    assert new.tolist() == [False, False, False, True, False, True, False, True, True, True]
    between = (magnitude >= a) & (magnitude < b)
    assert torch.equal(new[between], mask[between])


def test_dns_method_keeps_masks_of_weights_between_a_and_b():
    model = nn.Sequential(nn.Linear(10, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.2, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]]))
    method = DynamicNetworkSurgery(c=0.0, gamma=0.0).prepare(model, None, total_steps=10, seed=0)
    a, b = method.thresholds_["0"]  # mean |W| = 1.43: a = 1.287, b = 1.573
    magnitude = model[0].weight.detach().abs()
    between = (magnitude >= a) & (magnitude < b)
    assert not between.any()  # no weight sits in the band yet: put two there
    with torch.no_grad():
        model[0].weight[0, 2:4] = (a + b) / 2
    method.masks_["0"][0, 2] = False  # one pruned, one kept, both in the band
    method.masks_["0"][0, 3] = True
    method.before_forward(model, 0)  # a mask update happens (probability 1 at step 0)
    method.after_backward(model, 0)
    assert method.masks_["0"][0].tolist() == [False, False, False, True, False, False, True, True, True, True]
    assert method.mask_updates_ == 2  # one at prepare, one at step 0


def test_dns_thresholds_follow_mean_and_std_of_magnitudes():
    w = torch.tensor([[-3.0, 1.0], [2.0, -2.0]])
    mu, sigma = 2.0, (0.5 ** 0.5)
    a, b = dns_thresholds(w, 1.5)
    assert a == pytest.approx(0.9 * (mu + 1.5 * sigma)) and b == pytest.approx(1.1 * (mu + 1.5 * sigma))
    assert dns_thresholds(w, -10.0) == (0.0, 0.0)


def test_dns_mask_updates_stop_at_the_iteration_limit():
    model = small_net()
    x, y = toy_data()
    method = DynamicNetworkSurgery(c=1.0, gamma=0.0, mask_update_fraction=0.5)
    method.prepare(model, None, total_steps=12, seed=0)
    fit(model, x, y, epochs=4, batch_size=16, optimizer=make_sgd(model, 0.05), seed=0, hooks=method)
    assert method.stop_step_ == 6
    assert method.mask_updates_ == 3 * (1 + 6)  # 3 layers: prepare + steps 0..5 (probability 1)


def test_dns_per_layer_c_and_bad_values():
    """Each layer gets its own c: its thresholds and first mask are those of a DNS with that
    one c for every layer, and a larger c prunes more of the same layer."""
    cs = [0.0, 1.0, 2.0]
    model = small_net()
    layers = dict(prunable_layers(model))
    method = DynamicNetworkSurgery(c=cs).prepare(model, None, 10, 0)
    assert list(method.thresholds_) == list(method.masks_) == list(layers)
    for index, (name, c) in enumerate(zip(layers, cs)):
        alone = DynamicNetworkSurgery(c=c).prepare(small_net(), None, 10, 0)
        assert method.thresholds_[name] == alone.thresholds_[name] == dns_thresholds(layers[name].weight, c)
        assert torch.equal(method.masks_[name], alone.masks_[name])
        a, _ = method.thresholds_[name]
        assert torch.equal(method.masks_[name], layers[name].weight.abs() >= a)  # the first update from all-kept
    for name in layers:  # per layer, sparsity grows with c: the list is not one shared c
        sparsity = [1 - DynamicNetworkSurgery(c=c).prepare(small_net(), None, 10, 0).masks_[name].float().mean().item()
                    for c in cs]
        assert sparsity[0] < sparsity[1] < sparsity[2]
    with pytest.raises(UserError, match="3 prunable"):
        DynamicNetworkSurgery(c=[1.0, 2.0]).prepare(small_net(), None, 10, 0)
    with pytest.raises(UserError, match="mask_update_fraction"):
        DynamicNetworkSurgery(c=1.0, mask_update_fraction=0.0).prepare(small_net(), None, 10, 0)


# -- one-shot pruners --------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [0.3, 0.77, 0.95])
def test_global_magnitude_hits_the_sparsity_exactly_even_with_ties(sparsity):
    model = small_net()
    with torch.no_grad():
        model[3].weight[:, :40] = 0.05  # many exact ties at the global cut
        model[5].weight[:] = 0.05
    n = sum(w.numel() for w in weights(model))
    original = [w.detach().clone() for w in weights(model)]
    masks = MagnitudePruning(sparsity=sparsity, scope="global").prepare(model, None, 10, 0).masks_
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * n)
    assert sum(int((w == 0).sum()) for w in weights(model)) == round(sparsity * n)
    # every kept weight is at least as large as every pruned one
    kept = torch.cat([w.detach().abs()[m] for w, m in zip(weights(model), masks.values())])
    dropped = torch.cat([w.abs()[~m] for w, m in zip(original, masks.values())])
    assert kept.min() >= dropped.max()


def test_global_magnitude_ties_are_broken_deterministically():
    def masks():
        model = small_net()
        with torch.no_grad():
            for w in weights(model):
                w.fill_(0.1)
        return MagnitudePruning(sparsity=0.5, scope="global").prepare(model, None, 10, 0).masks_
    first, second = masks(), masks()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("cls,kwargs", [(MagnitudePruning, {"scope": "layer"}), (RandomPruning, {})])
def test_layerwise_pruners_hit_the_sparsity_in_every_layer(cls, kwargs):
    model = small_net()
    cls(sparsity=0.8, **kwargs).prepare(model, None, 10, seed=3)
    for w in weights(model):
        assert int((w == 0).sum()) == round(0.8 * w.numel())


def test_layerwise_magnitude_prunes_the_smallest_of_each_layer():
    model, reference = small_net(), small_net()
    masks = MagnitudePruning(sparsity=0.6).prepare(model, None, 10, 0).masks_
    for w, mask in zip(weights(reference), masks.values()):
        assert w.detach().abs()[mask].min() >= w.detach().abs()[~mask].max()


def test_random_pruning_depends_on_the_seed_only():
    a = RandomPruning(0.5).prepare(small_net(0), None, 10, seed=1).masks_
    b = RandomPruning(0.5).prepare(small_net(1), None, 10, seed=1).masks_
    c = RandomPruning(0.5).prepare(small_net(0), None, 10, seed=2).masks_
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("method", [MagnitudePruning(0.7, "global"), MagnitudePruning(0.7, "layer"),
                                    RandomPruning(0.7), DynamicNetworkSurgeryNoSplice(c=0.5)])
def test_pruned_weights_stay_exactly_zero_through_fine_tuning(method):
    model = small_net()
    x, y = toy_data()
    method.prepare(model, None, total_steps=12, seed=0)
    before = [w.detach().clone() for w in weights(model)]
    masks_after_prepare = {k: m.clone() for k, m in method.masks_.items()}
    fit(model, x, y, epochs=4, batch_size=16, optimizer=make_sgd(model, 0.1), seed=0, hooks=method)
    model = method.finalize(model)
    for w, w0, mask in zip(weights(model), before, method.masks_.values()):
        assert (w[~mask] == 0).all()
        assert not torch.equal(w[mask], w0[mask])  # the kept weights were fine-tuned
    if not isinstance(method, DynamicNetworkSurgery):
        assert all(torch.equal(masks_after_prepare[k], method.masks_[k]) for k in method.masks_)


def test_dense_changes_nothing_and_bad_params_are_user_errors():
    model = small_net()
    before = [w.detach().clone() for w in weights(model)]
    assert Dense().prepare(model, None, 10, 0).finalize(model) is model
    assert all(torch.equal(w, w0) for w, w0 in zip(weights(model), before))
    with pytest.raises(UserError, match="scope"):
        MagnitudePruning(0.5, scope="blockwise").prepare(small_net(), None, 10, 0)
    with pytest.raises(UserError, match="sparsity"):
        RandomPruning(1.5).prepare(small_net(), None, 10, 0)


def test_constructors_store_params_only_and_registry_names_resolve():
    expected = {"dense": Dense, "random": RandomPruning, "magnitude": MagnitudePruning,
                "dns": DynamicNetworkSurgery, "dns-nosplice": DynamicNetworkSurgeryNoSplice}
    for name, cls in expected.items():
        assert registry.methods.get(name, task="compression") is cls
        method = cls()
        assert vars(method) == method.get_params()
    assert MagnitudePruning(0.5, "global").get_params() == {"sparsity": 0.5, "scope": "global"}
    assert DynamicNetworkSurgeryNoSplice().get_params() == DynamicNetworkSurgery().get_params()


def test_apply_masks_zeroes_in_place():
    model = small_net()
    masks = {name: torch.zeros_like(layer.weight, dtype=torch.bool) for name, layer in prunable_layers(model)}
    params = [id(p) for p in model.parameters()]
    apply_masks(model, masks)
    assert all((w == 0).all() for w in weights(model))
    assert params == [id(p) for p in model.parameters()]

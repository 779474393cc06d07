"""Restoration methods: DL-Net's fidelity steps, the shared network cache, the oracle/base
identity, the classic methods against scikit-image, paste, and method checks (tiny sizes)."""

import dataclasses

import numpy as np
import pytest
import torch

from robench.errors import UserError
from robench.tasks.restoration_spectrum import networks
from robench.tasks.restoration_spectrum.architectures import VDSR, ContextEncoder, FidelityRefinement, build_net
from robench.tasks.restoration_spectrum.degradations import degrade
from robench.tasks.restoration_spectrum.methods.base import RestorationProblem
from robench.tasks.restoration_spectrum.methods.base_net import BaseNetwork
from robench.tasks.restoration_spectrum.methods.classic import Bicubic, Biharmonic
from robench.tasks.restoration_spectrum.methods.dlnet import DLNet
from robench.tasks.restoration_spectrum.methods.oracle import Oracle
from robench.tasks.restoration_spectrum.methods.paste import BasePaste
from robench.tasks.restoration_spectrum.methods.spectrum_ft import SpectrumFineTune
from robench.tasks.restoration_spectrum.networks import NetSpec, trained_network

LEVELS = {"inpainting": (3, 6, 9), "interpolation": (0.2, 0.5, 0.8), "super_resolution": (2, 3, 4)}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions: threads only contend


def images(n=4, size=16, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).random((n, 3, size, size)), dtype=torch.float32)


def smooth_images(n=4, size=16, seed=0):
    """Low-frequency images (blurred noise) so inpainting has something to recover."""
    x = images(n, size, seed)
    return torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)


def random_tail(net):
    """A new network's last layer is zero (it starts as the identity, so dE/dz = 0); give
    its tail random weights so the fidelity steps have something to do."""
    torch.manual_seed(1)
    for conv in net.tail:
        torch.nn.init.normal_(conv.weight, std=0.1)
        torch.nn.init.normal_(conv.bias, std=0.01)
    return net


def tiny_spec(family, level, seed=0, **kw):
    base = dict(family=family, image_size=16, width=4, data="bundled", n_train=16, steps=3,
                batch_size=4, lr=1e-3, seed=seed, level=float(level))
    base.update(kw)
    return NetSpec(**base)


def problem(tmp_path, family="inpainting", seed=0):
    levels = tuple(float(v) for v in LEVELS[family])
    patches = smooth_images(16, 16, seed=1)
    return RestorationProblem(family=family, train_level=levels[1], test_levels=levels, image_size=16,
                              seed=seed, base_spec=tiny_spec(family, levels[1], seed), finetune_steps=2,
                              cache_dir=tmp_path, patches=lambda: patches)


# ---------------------------------------------------------------- DL-Net's fidelity steps

@pytest.mark.parametrize("family", ["inpainting", "interpolation", "super_resolution"])
@pytest.mark.parametrize("step_size", [0.3, 1.0, 1.9])
@pytest.mark.parametrize("training", [False, True])
def test_every_fidelity_step_lowers_the_masked_error(family, step_size, training):
    torch.manual_seed(0)
    model = FidelityRefinement(random_tail(build_net(family, 4)), steps=5, step_size=step_size)
    model.train(training)
    x = smooth_images(3, 16)
    level = {"inpainting": 8, "interpolation": 0.6, "super_resolution": 3}[family]
    obs = degrade(family, x, level, seed=1)
    out, energies = model(obs.network_input, obs.y, obs.mask, obs.forward_operator, return_energies=True)
    assert energies.shape == (6, 3)
    assert out.shape == x.shape
    # E(z_{k+1}) < E(z_k) for every step and image (strictly: the masked residual is not zero)
    assert bool((energies[1:] < energies[:-1]).all()), energies
    # and E is the documented fidelity: ½‖M ⊙ (y − A(x))‖² of the returned image
    assert torch.allclose(energies[-1], 0.5 * obs.fidelity(out.detach()), rtol=1e-4)


def test_fidelity_steps_descend_on_a_trained_dlnet(tmp_path):
    """The property holds for learned step sizes too (γ_k stays in (0, 2) by construction)."""
    prob = problem(tmp_path, "interpolation")
    method = DLNet(steps=3).fit(prob)
    assert bool(((method.model_.step_sizes() > 0) & (method.model_.step_sizes() < 2)).all())
    obs = degrade("interpolation", smooth_images(3, 16, seed=5), 0.8, seed=2)
    with torch.no_grad():
        _, energies = method.model_(obs.network_input, obs.y, obs.mask, obs.forward_operator,
                                    return_energies=True)
    assert bool((energies[1:] < energies[:-1]).all()), energies


@pytest.mark.parametrize("net", [ContextEncoder(4), VDSR(4)], ids=["context-encoder", "vdsr"])
def test_the_tail_is_affine_so_the_line_search_is_exact(net):
    random_tail(net)
    torch.manual_seed(0)
    x = images(2, 16)
    z = net.features(x).detach()
    v = torch.randn_like(z)
    assert torch.allclose(net.decode(z + v, x) - net.decode(z, x), net.tail_linear(v), atol=1e-5)


def test_a_new_network_starts_as_the_identity():
    for family in ("inpainting", "super_resolution"):
        x = images(2, 16)
        assert torch.equal(build_net(family, 4)(x), x)


def test_dlnet_training_reaches_the_weights_and_step_sizes():
    torch.manual_seed(0)
    model = FidelityRefinement(random_tail(build_net("inpainting", 4)), steps=2).train()
    x = smooth_images(2, 16)
    obs = degrade("inpainting", x, 6)
    loss = (model(obs.network_input, obs.y, obs.mask, obs.forward_operator) - x).square().mean()
    loss.backward()
    assert model.step_logits.grad is not None and bool(model.step_logits.grad.abs().sum() > 0)
    assert model.net.enc1.weight.grad is not None


# ---------------------------------------------------------------- the shared cache

def test_networks_are_trained_once_and_shared(tmp_path, monkeypatch):
    calls = []
    real = networks.train_network
    monkeypatch.setattr(networks, "train_network", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    patches = smooth_images(8, 16)
    spec = tiny_spec("inpainting", 6)
    first = trained_network(spec, tmp_path, lambda: patches)
    second = trained_network(spec, tmp_path, lambda: pytest.fail("patches loaded for a cached net"))
    assert calls == [spec]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    saved = torch.load(networks.cache_path(spec, tmp_path), weights_only=True)  # a device-free state dict
    assert saved.keys() == first.state_dict().keys() and all(t.device.type == "cpu" for t in saved.values())
    # a different seed is a different network
    assert tiny_spec("inpainting", 6, seed=1).key() != spec.key()


def test_oracle_at_the_training_level_is_the_base(tmp_path):
    prob = problem(tmp_path, "inpainting")
    assert prob.spec_at(prob.train_level) == prob.base_spec  # same spec → same cache file
    base = BaseNetwork().fit(prob).net_
    oracle = Oracle().fit(prob)
    at_train = oracle.nets_[prob.train_level]
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), at_train.state_dict().values()))
    x = smooth_images(2, 16)
    for level in prob.test_levels:
        obs = degrade("inpainting", x, level)
        with torch.no_grad():
            expected = oracle.nets_[level](obs.network_input)
            assert torch.equal(oracle.restore(obs), expected)
    obs = degrade("inpainting", x, 3)
    with torch.no_grad():
        assert torch.equal(oracle.restore(degrade("inpainting", x, prob.train_level)),
                          base(degrade("inpainting", x, prob.train_level).network_input))
    assert not torch.equal(oracle.nets_[3.0].enc1.weight, base.enc1.weight)


def test_finetuned_methods_start_from_the_base_and_share_one_schedule(tmp_path):
    prob = problem(tmp_path, "super_resolution")
    ft = prob.finetune_spec(module_steps=0)
    dl = prob.finetune_spec(module_steps=5)
    assert ft.init == prob.base_spec == dl.init
    assert ft.spectrum == dl.spectrum == (2.0, 4.0) and ft.level is None
    assert dataclasses.replace(dl, module_steps=0, step_size=1.0, learn_step=True) == ft
    SpectrumFineTune().fit(prob)
    DLNet(steps=2).fit(prob)
    files = sorted(p.name for p in (tmp_path / "restoration").glob("*.pt"))
    assert len(files) == 3 and sum("level3-" in f for f in files) == 1  # the base, trained once


# ---------------------------------------------------------------- classic methods, paste, checks

def test_biharmonic_is_scikit_image(tmp_path):
    from skimage.restoration import inpaint_biharmonic

    x = smooth_images(2, 16)
    obs = degrade("interpolation", x, 0.5, seed=3)
    out = Biharmonic().restore(obs)
    for i in range(2):
        ref = inpaint_biharmonic(obs.y[i].permute(1, 2, 0).double().numpy(), obs.mask[i, 0].numpy() == 0,
                                 channel_axis=-1)
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), ref, atol=1e-6)
    observed = obs.mask.bool().expand_as(x)
    assert torch.allclose(out[observed], x[observed])


def test_bicubic_is_the_upsampled_observation():
    x = smooth_images(2, 16)
    obs = degrade("super_resolution", x, 2)
    assert torch.equal(Bicubic().restore(obs), obs.network_input)


def test_paste_keeps_every_observed_pixel(tmp_path):
    method = BasePaste().fit(problem(tmp_path, "interpolation"))
    x = smooth_images(2, 16)
    obs = degrade("interpolation", x, 0.3, seed=4)
    with torch.no_grad():
        out = method.restore(obs)
        raw = method.net_(obs.network_input)
    observed = obs.mask.bool().expand_as(x)
    assert torch.equal(out[observed], x[observed])
    assert torch.equal(out[~observed], raw[~observed])


@pytest.mark.parametrize("method,family", [(Biharmonic(), "super_resolution"), (Bicubic(), "inpainting"),
                                           (BasePaste(), "super_resolution")])
def test_methods_refuse_families_they_do_not_handle(method, family):
    with pytest.raises(UserError, match="does not apply to family") as err:
        method.check(family)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": 2.5}, {"step_size": 2.0}, {"step_size": 0},
                                    {"train_on": "everything"}])
def test_dlnet_rejects_bad_params(kwargs):
    with pytest.raises(UserError, match="dlnet"):
        DLNet(**kwargs)

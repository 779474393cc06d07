"""room_layout methods and their building blocks: rendering, keypoint fitting, the
physics-inspired refinement, semantic transfer, the geometric pipeline (tiny data)."""

import numpy as np
import pytest
import torch

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the method modules register themselves (else: duplicate names)

from robench.tasks.room_layout import synth  # noqa: E402
from robench.tasks.room_layout.methods.base import (  # noqa: E402
    FitSetup, LayoutPrediction, default_keypoints, type_priors,
)
from robench.tasks.room_layout.metrics import corner_error, pixel_error  # noqa: E402
from robench.tasks.room_layout.methods._pio import Evidence, LayoutEnergy, Problem, refine_layout, refine_layouts  # noqa: E402
from robench.tasks.room_layout.render import (  # noqa: E402
    boundary_mask, clean_segmentation, fit_keypoints, render_segmentation, surface_constraints,
)
from robench.tasks.room_layout.room_types import N_KEYPOINTS, ROOM_TYPES  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rooms():
    return synth.generate(44, 5, (64, 64))


@pytest.fixture(scope="module")
def clean_rooms():
    return synth.generate(12, 6, (64, 64), clutter="none")


def perfect_evidence(sample, confidence=0.96):
    probs = np.full((5, *sample.shape), (1 - confidence) / 4)
    for label in range(1, 6):
        probs[label - 1][sample.segmentation == label] = confidence
    return Evidence(probs, boundary_mask(sample.segmentation, 2).astype(float))


# ------------------------------------------------------------------ rendering

def test_rendering_the_true_keypoints_gives_the_true_segmentation(rooms):
    for s in synth.generate(40, 9, (48, 80)) + rooms:
        seg = render_segmentation(s.room_type, s.keypoints, s.shape)
        assert seg.shape == s.shape and seg.dtype == np.uint8
        assert pixel_error(seg, s.segmentation) < 0.005, (s.name, s.room_type)
        assert set(np.unique(seg)) == set(ROOM_TYPES[s.room_type].surfaces)


def test_any_keypoints_render_to_a_full_partition_of_the_types_surfaces():
    rng = np.random.default_rng(0)
    for t in range(11):
        kp = rng.uniform(0, 63, (N_KEYPOINTS[t], 2))
        seg = render_segmentation(t, kp, (64, 64))
        assert set(np.unique(seg)) <= set(ROOM_TYPES[t].surfaces)
        assert seg.min() >= 1


def test_fitting_keypoints_to_a_true_segmentation_recovers_them(rooms):
    errors = [corner_error(fit_keypoints(s.segmentation, s.room_type), s.keypoints, s.shape)
              for s in rooms]
    assert max(errors) < 0.02 and np.mean(errors) < 0.005


def test_clean_segmentation_merges_slivers_and_names_walls():
    seg = np.full((32, 32), 1, dtype=np.uint8)
    seg[:, 16:] = 3  # two walls named frontal/right: canonical names are left/right
    seg[0, 0] = 5  # a one-pixel "ceiling"
    out = clean_segmentation(seg)
    assert set(np.unique(out)) == {2, 3}
    assert out[0, 0] == 2


def test_default_keypoints_are_valid_layouts():
    for t in range(11):
        kp = default_keypoints(t, (64, 64))
        assert kp.shape == (N_KEYPOINTS[t], 2)
        assert set(np.unique(render_segmentation(t, kp, (64, 64)))) == set(ROOM_TYPES[t].surfaces)


# ------------------------------------------------------------------ physics-inspired refinement

def test_refinement_never_increases_the_energy_it_minimizes(rooms):
    """The defining property: from any start, the returned state has at most the start's
    energy (here from noisy maps and badly perturbed starts)."""
    rng = np.random.default_rng(1)
    problems = []
    for s in rooms[:16]:
        ev = perfect_evidence(s, 0.8)
        noisy = np.clip(ev.surface_probs + rng.uniform(0, 0.5, ev.surface_probs.shape), 0, None)
        noisy /= noisy.sum(axis=0, keepdims=True)
        start = s.keypoints + rng.normal(0, 6, s.keypoints.shape)
        problems.append(Problem(s.room_type, start, Evidence(noisy, ev.edge_probs * rng.uniform(0, 1, s.shape))))
    energy = LayoutEnergy(problems)
    results = refine_layouts(energy, steps=40)
    for p, r in zip(problems, results):
        assert np.isfinite(r.energy) and r.energy <= r.initial_energy + 1e-9
        assert r.energy == pytest.approx(min(r.energies), abs=1e-6)
        kp = np.zeros((1, 8, 2))
        kp[0, :len(r.keypoints)] = r.keypoints
        single = LayoutEnergy([Problem(p.type_id, p.keypoints, p.evidence)])
        assert single.values(kp)[0] == pytest.approx(r.energy, abs=1e-4)
        assert r.keypoints.shape == (N_KEYPOINTS[p.type_id], 2)


def test_refinement_pulls_perturbed_keypoints_back_to_the_evidence(rooms):
    rng = np.random.default_rng(2)
    before, after = [], []
    for s in rooms[:12]:
        start = s.keypoints + rng.normal(0, 3, s.keypoints.shape)
        r = refine_layout(s.room_type, start, perfect_evidence(s), steps=80)
        before.append(pixel_error(render_segmentation(s.room_type, start, s.shape), s.segmentation))
        after.append(pixel_error(render_segmentation(s.room_type, r.keypoints, s.shape), s.segmentation))
    assert np.mean(after) < 0.5 * np.mean(before)


def test_refinement_keeps_border_keypoints_on_the_border(rooms):
    s = rooms[0]
    r = refine_layout(s.room_type, s.keypoints + 2.0, perfect_evidence(s), steps=20)
    for spec, (x, y) in zip(ROOM_TYPES[s.room_type].keypoints, r.keypoints):
        assert 0 <= x <= 63 and 0 <= y <= 63
        if not spec.is_corner:
            assert min(x, y, 63 - x, 63 - y) < 1e-6


def test_energy_is_lowest_near_the_truth_for_perfect_evidence(rooms):
    s = rooms[3]
    energy = LayoutEnergy([Problem(s.room_type, s.keypoints, perfect_evidence(s))])
    truth = np.zeros((1, 8, 2))
    truth[0, :len(s.keypoints)] = s.keypoints
    shifted = truth.copy()
    shifted[0, :len(s.keypoints)] += 4.0
    assert energy.values(truth)[0] < energy.values(energy.project(shifted))[0]


def test_surface_constraints_cover_every_visible_surface(rooms):
    for s in rooms:
        cons = surface_constraints(s.room_type, s.keypoints)
        assert {c.surface for c in cons} == set(ROOM_TYPES[s.room_type].surfaces)
        assert all(c.side in (-1.0, 1.0) for c in cons)


# ------------------------------------------------------------------ methods

def setup_for(tmp_path, epochs=1):
    return FitSetup(epochs=epochs, batch_size=8, seed=0, cache_dir=tmp_path, data_key="unit")


def test_prior_predicts_the_most_frequent_type_with_mean_keypoints(rooms, tmp_path):
    from robench.tasks.room_layout.methods.prior import Prior

    train = rooms[:30]
    m = Prior().fit(train, setup_for(tmp_path))
    counts = np.bincount([s.room_type for s in train], minlength=11)
    pred = m.predict(np.stack([s.image for s in rooms[30:]]))
    pred.validate(14, (64, 64), "prior")
    assert set(pred.room_types) == {int(np.argmax(counts))}
    same = [s.keypoints for s in train if s.room_type == int(np.argmax(counts))]
    np.testing.assert_allclose(pred.keypoints[0], np.mean(same, axis=0))


def test_geometric_finds_boxes_better_than_the_prior(clean_rooms, rooms, tmp_path):
    from robench.tasks.room_layout.methods.geometric import Geometric
    from robench.tasks.room_layout.methods.prior import Prior

    images = np.stack([s.image for s in clean_rooms])
    truth = [s.segmentation for s in clean_rooms]
    geo = Geometric().fit(rooms, setup_for(tmp_path)).predict(images)
    geo.validate(len(images), (64, 64), "geometric")
    prior = Prior().fit(rooms, setup_for(tmp_path)).predict(images)
    geo_err = np.mean([pixel_error(p, t) for p, t in zip(geo.segmentations, truth)])
    prior_err = np.mean([pixel_error(p, t) for p, t in zip(prior.segmentations, truth)])
    assert geo_err < prior_err


def test_vanishing_points_of_a_clean_room_match_its_edges(clean_rooms):
    """The depth vanishing point found lies near the intersection of the true receding
    edges of a type-0 room (both computed in homogeneous coordinates)."""
    from robench.tasks.room_layout.methods import _geometry as g

    s = next(s for s in synth.generate(30, 8, (64, 64), clutter="none") if s.room_type == 0)
    segs, edges, orientation = g.detect_segments(s.image)
    vps = g.estimate_vanishing_points(segs, edges, orientation)
    kp = s.keypoints  # type 0: corner (F,L,C)=0 -> border 1, corner (F,L,Fl)=2 -> border 3, ...
    lines = [np.cross([*kp[a], 1.0], [*kp[b], 1.0]) for a, b in ((0, 1), (2, 3), (4, 5), (6, 7))]
    truth = np.linalg.lstsq(np.array(lines)[:, :2], -np.array(lines)[:, 2], rcond=None)[0]
    found = [g._finite(v) for v in vps.horizontal if g._finite(v) is not None]
    assert found and min(np.hypot(*(f - truth)) for f in found) < 12


def test_semantic_transfer_initializes_from_the_pretrained_weights(rooms, tmp_path, monkeypatch):
    from robench.tasks.room_layout.methods import fcn as fcn_module
    from robench.tasks.room_layout.methods.stpio import STPIO, semantic_targets, transfer
    from robench.tasks.room_layout.methods._nets import CLUTTER_CLASS, LayoutNet

    # the pre-training targets carry the clutter class where clutter hides the layout
    targets = semantic_targets(rooms[:4])
    assert (targets.seg == CLUTTER_CLASS).any()
    assert ((targets.seg == CLUTTER_CLASS).numpy() == np.stack([s.clutter for s in rooms[:4]])).all()

    # transfer copies every weight; the classifier keeps the five layout rows
    pre = LayoutNet(n_classes=6, width=4)
    net = transfer(pre)
    ps, ns = pre.state_dict(), net.state_dict()
    assert set(ps) == set(ns)
    for k in ps:
        expected = ps[k][:5] if k.startswith("seg_head") else ps[k]
        assert torch.equal(ns[k], expected), k
    assert net.seg_head.weight.data_ptr() != pre.seg_head.weight.data_ptr()

    # inside fit: layout training starts from exactly the pre-trained weights
    seen = {}
    original = fcn_module.NetworkMethod._train

    def spy(self, net, train, setup, epochs):
        seen["start"] = {k: v.clone() for k, v in net.state_dict().items()}
        return original(self, net, train, setup, epochs)

    monkeypatch.setattr(fcn_module.NetworkMethod, "_train", spy)
    method = STPIO(width=4, pretrain_epochs=1).fit(rooms[:16], setup_for(tmp_path))
    pre_state = method.pretrained_.state_dict()
    fresh = LayoutNet(n_classes=6, width=4).state_dict()
    assert any(not torch.equal(pre_state[k], fresh[k]) for k in pre_state
               if k.endswith("weight"))  # pre-training changed the weights
    for k, v in seen["start"].items():
        expected = pre_state[k][:5] if k.startswith("seg_head") else pre_state[k]
        assert torch.equal(v, expected), k
    # and training then moved away from them
    assert any(not torch.equal(v, method.net_.state_dict()[k]) for k, v in seen["start"].items()
               if k.endswith("weight"))
    # a second fit with the same data and seed reuses the cached pre-trained network
    again = STPIO(width=4, pretrain_epochs=1).fit(rooms[:16], setup_for(tmp_path))
    for k, v in again.pretrained_.state_dict().items():
        assert torch.equal(v, pre_state[k])
    assert len(list((tmp_path / "room_layout" / "pretrained").glob("*.pt"))) == 1


def test_without_pretraining_st_pio_starts_from_scratch(rooms, tmp_path):
    from robench.tasks.room_layout.methods.stpio import STPIO

    m = STPIO(width=4, pretrain_epochs=0, pio_steps=5).fit(rooms[:8], setup_for(tmp_path))
    assert m.pretrained_ is None
    assert not (tmp_path / "room_layout" / "pretrained").exists()


@pytest.mark.parametrize("refine", [True, False])
def test_st_pio_predictions_keep_the_contract(rooms, tmp_path, refine):
    from robench.tasks.room_layout.methods.stpio import STPIO

    m = STPIO(width=4, pretrain_epochs=1, refine=refine, pio_steps=10).fit(rooms[:16], setup_for(tmp_path))
    images = np.stack([s.image for s in rooms[16:24]])
    pred = m.predict(images)
    pred.validate(8, (64, 64), "st-pio")
    if refine:  # a rendered layout: exactly the surfaces of the predicted type
        for seg, t in zip(pred.segmentations, pred.room_types):
            assert set(np.unique(seg)) <= set(ROOM_TYPES[t].surfaces)


def test_fcn_predictions_keep_the_contract(rooms, tmp_path):
    from robench.tasks.room_layout.methods.fcn import FCN

    m = FCN(width=4).fit(rooms[:16], setup_for(tmp_path))
    pred = m.predict(np.stack([s.image for s in rooms[16:20]]))
    pred.validate(4, (64, 64), "fcn")
    assert len(m.history_) == 1 and np.isfinite(m.history_[0])


def test_prediction_contract_violations_are_reported():
    ok = LayoutPrediction(np.ones((1, 8, 8), np.uint8), np.array([8]), [np.zeros((2, 2))])
    ok.validate(1, (8, 8), "x")
    with pytest.raises(ValueError, match="labels"):
        LayoutPrediction(np.zeros((1, 8, 8), np.uint8), np.array([8]), [np.zeros((2, 2))]).validate(1, (8, 8), "x")
    with pytest.raises(ValueError, match="keypoints"):
        LayoutPrediction(np.ones((1, 8, 8), np.uint8), np.array([0]), [np.zeros((2, 2))]).validate(1, (8, 8), "x")
    with pytest.raises(ValueError, match="room_types"):
        LayoutPrediction(np.ones((1, 8, 8), np.uint8), np.array([11]), [np.zeros((2, 2))]).validate(1, (8, 8), "x")


@pytest.mark.parametrize("name, params", [
    ("fcn", {"width": 0}), ("fcn", {"lr": -1.0}), ("fcn", {"extra_epochs": -1}),
    ("st-pio", {"pio_steps": 0}), ("st-pio", {"refine": "yes"}), ("st-pio", {"pretrain_epochs": -2}),
    ("geometric", {"n_rays": 0}), ("geometric", {"penalty": -0.1}),
])
def test_bad_method_parameters_are_rejected(name, params):
    with pytest.raises(UserError, match=next(iter(params))):
        registry.methods.get(name, task="room_layout")(**params)


def test_type_priors_count_types_and_average_keypoints(rooms):
    pri = type_priors(rooms)
    assert pri.frequencies.sum() == pytest.approx(1.0)
    for t, kp in pri.mean_keypoints.items():
        assert kp.shape == (N_KEYPOINTS[t], 2)

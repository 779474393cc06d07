"""Storage accounting (compression_ratio_bits), the sparse inference path, the segmented
learning-rate schedule and method pipelines of the compression task."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the method modules register themselves (else: duplicate names)
from robench.spec import expand, load_suite  # noqa: E402
from robench.tasks.compression import metrics  # noqa: E402
from robench.tasks.compression.methods.base import CompressionMethod, prunable_layers  # noqa: E402
from robench.tasks.compression.methods.magnitude import MagnitudePruning  # noqa: E402
from robench.tasks.compression.methods.pipeline import Pipeline  # noqa: E402
from robench.training import cosine_segments, fit, make_sgd  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


# -- storage -----------------------------------------------------------------------------
def reference_relative_index_entries(flat: list[float], p: int) -> int:
    """Entries of Deep Compression's relative-index encoding, by walking the tensor:
    a gap longer than 2^p is bridged by filler entries."""
    entries, last = 0, -1
    for i, v in enumerate(flat):
        if v != 0:
            gap = i - last
            while gap > 2 ** p:
                entries += 1  # filler (a stored zero)
                gap -= 2 ** p
            entries += 1
            last = i
    return entries


def reference_bits(flat: list[float]) -> int:
    """Cheapest of the documented encodings, computed independently in plain Python."""
    n = len(flat)
    nonzero = [v for v in flat if v != 0]

    def code(count, distinct):
        float_bits = 32 * count
        width = max(1, math.ceil(math.log2(distinct))) if distinct > 1 else 1
        return min(float_bits, width * count + 32 * distinct) if count else float_bits

    candidates = [code(n, len(set(flat)))]
    if len(nonzero) < n:
        candidates.append(n + code(len(nonzero), max(len(set(nonzero)), 1)))
        for p in range(1, 17):
            entries = reference_relative_index_entries(flat, p)
            fillers = entries - len(nonzero)
            candidates.append(entries * p + code(entries, max(len(set(nonzero)) + (1 if fillers else 0), 1)))
    return min(candidates)


def test_dense_float_weights_cost_32_bits_each():
    w = torch.randn(20, 30)
    s = metrics.weight_storage(w)
    assert s == {"bits": 32 * 600, "encoding": "dense", "value_code": "float32", "index_bits": None}


def test_few_distinct_values_use_a_codebook():
    w = torch.tensor([0.5, -0.5, 0.25, 0.0] * 250)  # 4 distinct values, dense: 2 bits each + table
    s = metrics.weight_storage(w)
    assert s["bits"] == 2 * 1000 + 32 * 4 and s["value_code"] == "codebook2"


def test_relative_index_hand_count():
    # 1000 entries, nonzeros every 100 positions (gaps of 100 after the first at index 99):
    # p = 7 (gaps up to 128) gives 10 entries of 7 + 32 bits (one distinct value → 1-bit codes
    # + a 32-bit table is cheaper: 10·1 + 32).
    w = torch.zeros(1000)
    w[99::100] = 0.3
    s = metrics.weight_storage(w)
    assert s["encoding"] == "relative-index" and s["index_bits"] == 7
    assert s["bits"] == 10 * 7 + (10 * 1 + 32)
    assert reference_relative_index_entries(w.tolist(), 3) == 10 * math.ceil(100 / 8)


@pytest.mark.parametrize("sparsity,distinct", [(0.0, None), (0.5, None), (0.9, None), (0.99, None),
                                               (0.9, 17), (0.95, 3), (1.0, None)])
def test_storage_matches_an_independent_count(sparsity, distinct):
    gen = torch.Generator().manual_seed(int(sparsity * 100) + (distinct or 0))
    w = torch.randn(3000, generator=gen)
    if distinct:
        levels = torch.linspace(-1, 1, distinct)
        w = levels[torch.randint(0, distinct, (3000,), generator=gen)]
    w[torch.rand(3000, generator=gen) < sparsity] = 0
    assert metrics.weight_storage(w)["bits"] == reference_bits(w.tolist())


def test_model_storage_counts_biases_as_float_and_uses_declared_bits():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    class Declares(CompressionMethod):
        def storage_bits(self, name, module):
            return 123

    total, records = metrics.model_storage(model, Declares())
    assert total == 123 + 32 * 10 and records[0]["encoding"] == "method"
    total, records = metrics.model_storage(model)
    assert total == 32 * (640 + 10) and records[0]["bits_per_weight"] == 32


def test_storage_of_a_pruned_model_beats_the_count_ratio_only_with_cheap_values():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
    MagnitudePruning(0.98, "global").prepare(model, None, 1, 0)
    total_params = sum(p.numel() for p in model.parameters())
    bits, _ = metrics.model_storage(model)
    ratio_bits = 32 * total_params / bits
    # float values + indices: fewer than 32 bits saved per pruned weight → below the count ratio
    assert 1 < ratio_bits < metrics.compression_ratio(model)


# -- sparse inference ----------------------------------------------------------------------
def test_dense_layers_are_not_candidates():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    fast = metrics.sparse_inference_model(model, torch.rand(2, 16))
    assert fast.sparse_layers_ == {} and isinstance(fast[1], nn.Linear)


# -- learning-rate segments ------------------------------------------------------------------
def test_cosine_segments_restart_and_decay_within_each_segment():
    f = cosine_segments(0.1, 100, [75, 50, 0, 100, 150])  # out-of-range restarts are ignored
    assert f(0) == f(50) == f(75) == pytest.approx(0.1)
    assert f(25) == pytest.approx(0.05) and f(62) < f(51) and f(99) < 0.01
    plain = cosine_segments(0.1, 100)
    assert plain(50) == pytest.approx(0.05) and plain(99) < 1e-3


# -- pipelines -------------------------------------------------------------------------------
class Recorder(CompressionMethod):
    """Records the calls it gets (a stand-in stage, registered below)."""
    log: list = []

    def __init__(self, tag: str = "a", restarts: list[int] | None = None, finetune: bool = True):
        self.tag, self.restarts, self.finetune = tag, restarts, finetune

    def prepare(self, model, data, total_steps, seed):
        Recorder.log.append((self.tag, "prepare", total_steps, seed))
        return self

    def before_forward(self, model, step):
        Recorder.log.append((self.tag, "step", step))

    def finalize(self, model):
        Recorder.log.append((self.tag, "finalize"))
        return model

    def wants_finetuning(self):
        return self.finetune

    def lr_restarts(self, total_steps):
        return self.restarts or []

    def extra_metrics(self, model, data):
        return {f"seen_{self.tag}": 1.0}


@pytest.fixture(scope="module")
def recorder():
    if ("test-recorder", "compression") not in registry.methods:
        registry.methods.add("test-recorder", Recorder, task="compression")
    return "test-recorder"


def drive(method, total_steps, model=None):
    model = model or nn.Sequential(nn.Linear(2, 2))
    method.prepare(model, None, total_steps, 7)
    for step in range(total_steps):
        method.before_forward(model, step)
        method.after_backward(model, step)
        method.after_step(model, step)
    return method.finalize(model)


def test_pipeline_splits_the_budget_and_runs_stages_in_order(recorder):
    Recorder.log = []
    pipe = Pipeline([{"name": recorder, "params": {"tag": "a"}},
                     {"name": recorder, "params": {"tag": "b", "restarts": [2]}}], shares=[1, 3])
    drive(pipe, 8)
    assert Recorder.log == [("a", "prepare", 2, 7), ("a", "step", 0), ("a", "step", 1), ("a", "finalize"),
                            ("b", "prepare", 6, 8)] + [("b", "step", s) for s in range(6)] + [("b", "finalize")]
    assert pipe.lr_restarts(8) == [2, 4]  # the stage boundary and stage b's own restart (2 + 2)
    assert pipe.extra_metrics(None, None) == {"seen_a": 1.0, "seen_b": 1.0}


def test_pipeline_gives_no_steps_to_a_stage_that_does_not_fine_tune(recorder):
    Recorder.log = []
    pipe = Pipeline([{"name": recorder, "params": {"tag": "a", "finetune": False}},
                     {"name": recorder, "params": {"tag": "b"}}])
    assert pipe.wants_finetuning()
    drive(pipe, 4)
    assert Recorder.log[:3] == [("a", "prepare", 0, 7), ("a", "finalize"), ("b", "prepare", 4, 8)]
    Recorder.log = []
    drive(pipe, 0)  # a zero budget still prepares and finalizes every stage
    assert [e[:2] for e in Recorder.log] == [("a", "prepare"), ("a", "finalize"), ("b", "prepare"),
                                             ("b", "finalize")]


def test_pipeline_of_real_methods_keeps_the_first_stage_zeros():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.rand(32, 1, 4, 4), torch.randint(0, 3, (32,))
    pipe = Pipeline([{"name": "magnitude", "params": {"sparsity": 0.5}},
                     {"name": "magnitude", "params": {"sparsity": 0.75}}])
    pipe.prepare(model, None, 8, 0)
    fit(model, x, y, epochs=1, batch_size=4, optimizer=make_sgd(model, 0.1), seed=0, hooks=pipe)
    first_zeros = {name: ~mask for name, mask in pipe._methods[0].masks_.items()}
    model = pipe.finalize(model)
    for name, layer in prunable_layers(model):
        assert (layer.weight[first_zeros[name]] == 0).all()  # stage-1 zeros are still zero
        assert (layer.weight == 0).float().mean().item() == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("stages,match", [
    ([], "non-empty"),
    ([{"name": "no-such-method"}], r"stages\[0\].*no-such-method"),
    ([{"name": "magnitude", "params": {"sparsty": 0.5}}], r"stages\[0\].*sparsty"),
    ([{"name": "magnitude", "extra": 1}], r"stages\[0\]: expected a mapping"),
    (["magnitude"], r"stages\[0\]: expected a mapping"),
])
def test_bad_pipelines_are_rejected_with_the_stage_named(stages, match):
    with pytest.raises(ValueError, match=match):
        Pipeline(stages)


def test_bad_pipeline_in_a_suite_is_one_line_with_the_file(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ntasks:\n  - task: compression\n    methods:\n      - name: pipeline\n"
                     "        params: {stages: [{name: magnitude, params: {sparsity: lots}}]}\n")
    with pytest.raises(UserError) as err:
        expand(load_suite(suite), str(suite))
    message = str(err.value)
    assert "\n" not in message and str(suite) in message and "stages[0]" in message and "sparsity" in message


def test_a_stage_version_bump_changes_the_pipeline_run_id(tmp_path, monkeypatch):
    from robench.tasks.compression.methods.inq import IncrementalNetworkQuantization

    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ntasks:\n  - task: compression\n    methods:\n      - name: dns+inq\n")
    (before,) = expand(load_suite(suite), str(suite))
    assert before.method_version == "1[dns@1,inq@1]"
    monkeypatch.setattr(IncrementalNetworkQuantization, "version", "2")
    (after,) = expand(load_suite(suite), str(suite))
    assert after.method_version == "1[dns@1,inq@2]" and after.id != before.id


@pytest.mark.parametrize("case", ["few", "many", "one-outside-the-probe", "just-above-cap"])
def test_distinct_count_is_exact_up_to_the_cap(case):
    from robench.tasks.compression.metrics import distinct_count

    g = torch.Generator().manual_seed(0)
    cap = 64
    if case == "few":
        values = torch.randint(-4, 4, (10_000,), generator=g).float() / 8
    elif case == "many":
        values = torch.randn(10_000, generator=g)
    elif case == "one-outside-the-probe":  # a value the evenly spaced probe cannot see
        values = torch.randint(-4, 4, (10_000,), generator=g).float() / 8
        values[4 * cap // 2 * (10_000 // (4 * cap)) + 7] = 0.3
    else:
        values = torch.randint(0, cap + 1, (10_000,), generator=g).float()
    assert distinct_count(values, cap) == min(int(torch.unique(values).numel()), cap + 1)


def test_relative_index_entries_equal_the_direct_sum():
    from robench.tasks.compression.metrics import relative_index_entries

    g = torch.Generator().manual_seed(1)
    kept = torch.rand(300_000, generator=g) < 0.05
    kept[200_000:290_000] = False  # one gap larger than the histogram's range
    nonzero = kept.nonzero().flatten()
    gaps = torch.diff(nonzero, prepend=torch.tensor([-1])).double()
    expected = {p: int(torch.ceil(gaps / (1 << p)).sum()) for p in range(1, 17)}
    assert relative_index_entries(nonzero, small=1 << 10) == expected
    assert relative_index_entries(torch.zeros(0, dtype=torch.long)) == {p: 0 for p in range(1, 17)}

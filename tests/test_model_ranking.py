"""'How does my model rank?': benchmark() checks a model before anything is stored, and with
compare=True runs the same protocol on the built-in models and returns the ranking."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(baseline_epochs=1, finetune_epochs=1, latency_repeats=2, latency_batch_size=8)


def _bad_models():
    from torch import nn

    return {
        "softmax": (nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Softmax(dim=1)),
                    "returns logits, not probabilities"),
        "7 outputs": (nn.Sequential(nn.Flatten(), nn.Linear(784, 7)),
                      "returns (N, classes) outputs: got (16, 7), expected (16, 10)"),
        "3 channels": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)),
                       "runs on a batch: does not take the input the classification tasks feed"),
        "wrong input size": (nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10)),
                             "(N, 1, 28, 28) float images"),
    }


@pytest.mark.parametrize("case", ["softmax", "7 outputs", "3 channels", "wrong input size"])
def test_a_bad_model_is_one_line_and_nothing_is_stored(tmp_path, case):
    import robench
    from tests.conftest import check_one_line_user_error

    net, words = _bad_models()[case]
    store = tmp_path / "r.sqlite"
    check_one_line_user_error(lambda: robench.benchmark(net, task="compression", store=store, progress=False,
                                                        compare=True, **TINY),
                              "fails the model contract", words, "nothing was run or stored")
    assert not store.exists()


@pytest.mark.slow
def test_benchmark_compare_ranks_the_model_beside_the_builtins(tmp_path):
    import torch
    from torch import nn

    import robench

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    store = tmp_path / "r.sqlite"
    ranking = robench.benchmark(net, task="compression", store=store, progress=False, compare=True, **TINY)
    assert sorted(ranking["model"].str.replace(r"^sequential-.*", "yours", regex=True)) == \
        ["lenet-300-100", "lenet-5", "linear", "yours"]
    assert ranking["yours"].sum() == 1 and ranking.attrs["primary_metric"] == "accuracy"
    values = list(ranking["accuracy"])
    assert values == sorted(values, reverse=True)  # best first
    place = ranking.attrs["place"]
    assert ranking.loc[ranking["yours"], "rank"].iloc[0] == place and 1 <= place <= 4
    runs = ranking.attrs["runs"]
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    for model, value in zip(ranking["model"], ranking["accuracy"]):  # each row is its runs' mean
        mine = runs[runs["task_params"].map(lambda p: p["model"] == model)]
        assert value == pytest.approx(mine["primary_value"].mean())
    again = robench.benchmark(net, task="compression", store=store, progress=False, compare=True, **TINY)
    assert list(again["model"]) == list(ranking["model"])  # the cached runs are reused, not recomputed
    assert sorted(again.attrs["runs"]["id"]) == sorted(runs["id"])
    alone = robench.benchmark(net, task="compression", store=store, progress=False, **TINY)
    assert len(alone) == 1 and alone.iloc[0]["task_params"]["model"].startswith("sequential-")


def test_ties_share_a_rank():
    import pandas as pd

    from robench.api import _ranking

    def runs(model, values):
        return [{"status": "done", "primary_metric": "accuracy", "greater_is_better": True, "primary_value": v,
                 "task_params": {"model": model}} for v in values]
    frame = pd.DataFrame(runs("a", [0.90, 0.94]) + runs("b", [0.91, 0.92]) + runs("c", [0.50, 0.52]))
    table = _ranking(frame, "b")
    assert list(table["model"]) == ["a", "b", "c"]
    assert list(table["rank"]) == [1, 1, 3]  # a and b are within a's spread: a tie
    assert table.attrs["place"] == 1
    assert list(table["tie"]) == [True, True, False]
    one_seed = _ranking(pd.DataFrame(runs("a", [0.9]) + runs("b", [0.89])), "b")
    assert list(one_seed["rank"]) == [1, 1]  # one seed: no spread to tell them apart (the site's rule too)

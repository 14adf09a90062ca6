"""The drain benchmark's path with a handful of tasks, so that `make bench` cannot rot unseen."""

from __future__ import annotations

import pytest

from tests.bench.drain import bench_scaling


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_few_tasks_drain_through_the_real_path_each_once_and_succeeded() -> None:
    one, two = bench_scaling("postgresql", tasks=4, workers=[1, 2])
    for figure, workers in ((one, 1), (two, 2)):
        assert figure["workers"] == workers
        assert figure["states"] == {"succeeded": 4}
        assert figure["not_succeeded"] == 0
        assert figure["run_twice"] == 0
        assert figure["tasks_per_s"] > 0
        # Each attempt went through the model, its tool, the baseline and the verification.
        steps = figure["attempt_median_s"]
        for step in ("to model.message", "to file.change", "to tests.baseline",
                     "to tests.finished", "between attempts", "total"):  # fmt: skip
            assert step in steps, steps
    assert one["ratio_to_linear"] == 1.0
    assert two["ratio_to_linear"] > 0

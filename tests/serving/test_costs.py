"""Prices per model and the meter that adds up an attempt's calls."""

from __future__ import annotations

import pytest

from serving.base import Completion, Message, Usage
from serving.costs import CostsConfig, Meter, Price, PriceTable, Reading


def reply(model: str, prompt: int, completion: int) -> Completion:
    return Completion(Message("assistant", "x"), "stop", Usage(prompt, completion), model, 0.1)


def test_default_price_is_mistral_medium_35() -> None:
    table = PriceTable()
    assert table.cost(Usage(1_000_000, 1_000_000), "mistral-medium-3.5") == pytest.approx(9.0)
    assert table.cost(Usage(2000, 500), "mistralai/Mistral-Medium-3.5-128B") == pytest.approx(
        0.003 + 0.00375
    )
    assert table.cost(Usage(10**6, 10**6), "scripted") == 0.0


def test_self_hosted_at_gpu_cost_and_longest_prefix_wins() -> None:
    table = PriceTable(
        CostsConfig(
            prices={
                "devstral": Price(input_per_mtok=0.1, output_per_mtok=0.3),
                "devstral-small": Price(input_per_mtok=0, output_per_mtok=0),
            },
            unknown=Price(input_per_mtok=1, output_per_mtok=1),
        )
    )
    assert table.cost(Usage(10**6, 10**6), "mistralai/Devstral-Small-2507") == 0.0
    assert table.cost(Usage(10**6, 10**6), "devstral-2") == pytest.approx(0.4)
    assert table.cost(Usage(10**6, 0), "other") == 1.0


def test_meter_adds_up_calls_and_readings_add_up_to_a_task() -> None:
    meter = Meter()
    one = meter.record(reply("mistral-medium-3.5", 1000, 100))
    meter.record(reply("mistral-medium-3.5", 3000, 300))
    reading = meter.reading()
    assert one.cost_usd == pytest.approx(0.0015 + 0.00075)
    assert reading.usage == Usage(4000, 400)
    assert reading.calls == 2
    assert reading.cost_usd == pytest.approx(0.006 + 0.003)
    task = reading + Reading(Usage(1, 1), 1.0, 1)
    assert task.usage == Usage(4001, 401) and task.calls == 3
    assert task.cost_usd == pytest.approx(1.009)

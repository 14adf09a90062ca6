"""Sandbox settings: what each accepts, how it reads sizes and policies, and what it refuses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.config import FULL_REFUSED, LimitsConfig, SandboxConfig
from sandbox.network import NetworkConfig


def test_sizes_and_paths_given_as_text_are_read() -> None:
    limits = LimitsConfig(memory="256M", disk="1.5g", pids=None)  # type: ignore[arg-type]
    config = SandboxConfig(
        root="/srv/sbx",  # type: ignore[arg-type]
        limits=limits,
        ro_binds=["/opt/tool"],  # type: ignore[list-item]
        max_file_bytes="2K",  # type: ignore[arg-type]
    )

    assert (limits.memory, limits.disk, limits.pids) == (256 << 20, 3 << 29, None)
    assert (config.root, config.ro_binds) == (Path("/srv/sbx"), [Path("/opt/tool")])
    assert (config.max_file_bytes, config.max_diff_bytes) == (2048, 50 << 20)
    assert LimitsConfig(memory=None).memory is None
    assert config.network == NetworkConfig(mode="none") and config.exclude == [".git"]


def test_a_policy_may_be_its_mode_its_fields_or_the_old_switch() -> None:
    allow = {"mode": "allowlist", "allow": ["PyPI.org"]}
    by_fields = SandboxConfig(network=allow)  # type: ignore[arg-type]
    by_mode = SandboxConfig(network="allowlist")  # type: ignore[arg-type]
    switched = SandboxConfig(network=True, allow_full_network=True)  # type: ignore[arg-type]

    assert by_fields.network == NetworkConfig(mode="allowlist", allow=["pypi.org"])
    assert by_mode.network == NetworkConfig(mode="allowlist")
    assert switched.network.mode == "full"
    assert SandboxConfig(network=False).network.mode == "none"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: LimitsConfig(memory="lots"), "not a size: 'lots'"),
        (lambda: LimitsConfig(disk="-1G"), "not a size: '-1G'"),
        (lambda: SandboxConfig(max_diff_bytes="x"), "not a size: 'x'"),
        (lambda: SandboxConfig(host_ids=0), "host_ids: 0 is not at least 1"),
        (lambda: SandboxConfig(network="open"), "network mode: 'open' is not one of"),
        (lambda: SandboxConfig(network={"allow": ["a/b"]}), "not a host name"),
        (lambda: SandboxConfig(network="full"), FULL_REFUSED),
        (lambda: SandboxConfig(network=True), FULL_REFUSED),
    ],
)
def test_bad_settings_are_refused_with_the_reason(make: object, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        make()  # type: ignore[operator]
    assert reason in str(refused.value)


def test_a_changed_copy_is_checked_as_a_new_one_is() -> None:
    allowed = SandboxConfig(network="full", allow_full_network=True)  # type: ignore[arg-type]
    smaller = replace(allowed, limits=LimitsConfig(memory="64M"))  # type: ignore[arg-type]

    assert (smaller.network.mode, smaller.limits.memory) == ("full", 64 << 20)
    assert allowed.limits.memory == 2 << 30
    with pytest.raises(ValueError, match="the `full` network policy is off"):
        replace(allowed, allow_full_network=False)

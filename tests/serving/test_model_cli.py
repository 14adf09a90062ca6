"""`autan model serve|check|scripted`, run through the typer app and as a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.model import app
from serving.base import Message
from serving.client import OpenAIClient
from serving.scripted import ScriptedServer
from tests.live import free_port
from tests.serving.conftest import TOOL_SCRIPT, fast
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MISTRAL_TOOLS = "--tool-call-parser mistral --enable-auto-tool-choice"


def autan_model(*args: str, **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env or None, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            "medium-3.5-8gpu",
            "vllm serve mistralai/Mistral-Medium-3.5-128B --tensor-parallel-size 8 "
            f"{MISTRAL_TOOLS} --reasoning-parser mistral --max-num-batched-tokens 16384 "
            "--max-num-seqs 128 --gpu-memory-utilization 0.8",
        ),
        (
            "medium-3.5-4gpu",
            "vllm serve mistralai/Mistral-Medium-3.5-128B --tensor-parallel-size 4 "
            f"{MISTRAL_TOOLS} --reasoning-parser mistral --max-num-batched-tokens 16384 "
            "--max-num-seqs 64 --gpu-memory-utilization 0.9",
        ),
        (
            "devstral-small-1gpu",
            "vllm serve mistralai/Devstral-Small-2507 --tokenizer-mode mistral "
            f"--config-format mistral --load-format mistral {MISTRAL_TOOLS}",
        ),
    ],
)
def test_serve_dry_run_prints_the_exact_command(profile: str, expected: str) -> None:
    code, out, err = autan_model("serve", "--profile", profile, "--dry-run")
    assert (code, out, err) == (0, expected + "\n", "")


def test_serve_dry_run_adds_host_and_port_quoted() -> None:
    code, out, _ = autan_model(
        "serve",
        "--profile",
        "devstral-small-1gpu",
        "--dry-run",
        "--host",
        "0.0.0.0",
        "--port",
        "9000",
    )
    assert code == 0
    assert out.endswith("--enable-auto-tool-choice --host 0.0.0.0 --port 9000\n")


def test_serve_an_unknown_profile_lists_the_valid_ones() -> None:
    code, out, err = autan_model("serve", "--profile", "large", "--dry-run")
    assert code == 1 and out == ""
    assert err.strip() == (
        "error: unknown vLLM profile 'large'; valid names: "
        "devstral-small-1gpu, medium-3.5-4gpu, medium-3.5-8gpu"
    )


def test_serve_without_vllm_says_how_to_install_it(tmp_path: Path) -> None:
    code, _, err = autan_model("serve", "--profile", "medium-3.5-8gpu", PATH=str(tmp_path))
    assert code == 1
    assert "pip install 'autan[serving]'" in err


def test_check_an_endpoint_that_works(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(mistral_strict=True)
    code, out, _ = autan_model("check", server.url)
    lines = out.splitlines()
    assert code == 0, out
    assert [line.split()[0] for line in lines[:5]] == ["[ok]"] * 5
    assert lines[0].split()[1:] == ["health", "GET", "/health", "200"]
    assert "using scripted" in lines[1]
    assert 'add({"a": 2, "b": 3})' in lines[2]
    assert "'2 + 3 = 5.'" in lines[3]
    assert lines[4].split()[1:3] == ["first", "token"] and lines[4].endswith("ms (streamed)")
    assert lines[5] == f"{server.url}: endpoint OK"
    assert [r["messages"][-1]["role"] for r in server.requests] == ["user", "tool"]


def test_check_a_dead_port_fails_plainly() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, out, _ = autan_model("check", url, "--timeout", "5")
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("[FAIL] health") and "cannot be reached" in lines[0]
    assert all(line.startswith("[skip]") for line in lines[1:5])
    assert lines[5] == f"{url}: endpoint NOT usable: see [FAIL] above"


def test_check_a_server_without_tool_support(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(supports_tools=False)
    code, out, _ = autan_model("check", server.url)
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("[ok]") and lines[1].startswith("[ok]")
    assert lines[2].startswith("[FAIL] tool call")
    assert "--enable-auto-tool-choice --tool-call-parser mistral" in lines[2]
    assert lines[3].startswith("[skip] tool answer")


def test_check_a_model_that_answers_in_text(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted({"fallback": {"content": "The answer is 5."}})
    code, out, _ = autan_model("check", server.url)
    assert code == 1
    assert "answered in text instead of calling the tool ('The answer is 5.')" in out


def test_check_a_model_that_is_not_served(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted()
    code, out, _ = autan_model("check", server.url, "--model", "mistral-medium-3.5")
    assert code == 1
    assert "model 'mistral-medium-3.5' is not served; this endpoint serves: scripted" in out


def test_check_an_unset_api_key_variable() -> None:
    code, _, err = autan_model(
        "check", "http://127.0.0.1:1/v1", "--api-key-env", "AUTAN_TEST_NO_KEY"
    )
    assert code == 1
    assert "AUTAN_TEST_NO_KEY is not set" in err


def test_scripted_runs_as_a_process_and_answers(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(TOOL_SCRIPT))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "cli.model",
        "scripted",
        "--port",
        str(port),
        "--script",
        str(script),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                return False

        wait_until(healthy, timeout=30, what="the scripted model process to answer")
        with OpenAIClient(fast(url)) as client:
            reply = client.stream([Message("user", "fix it")])
        assert reply.message.content == "Let me look at the files."
        assert [c.name for c in reply.message.tool_calls] == ["bash", "read_file"]
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert f"scripted model 'scripted' on http://127.0.0.1:{port}/v1" in err.decode()


def test_scripted_with_a_bad_script_exits_1(tmp_path: Path) -> None:
    code, _, err = autan_model("scripted", "--port", "1", "--script", str(tmp_path / "none.json"))
    assert code == 1
    assert "cannot be used" in err

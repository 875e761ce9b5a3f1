"""The CLI of the contract: `rostra space create|start|end|list|invite` print JSON with absolute
URLs; every command has --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, Server

CONTRACT_KEYS = {
    "id",
    "host_url",
    "speaker_invite_url",
    "whip_url",
    "listen_url",
    "hls_url",
    "stream_url",
    "opus_stream_url",
    "state_url",
    "replay_url",
}


def rostra(*args: str, server: Server | None = None, token: str = ADMIN_TOKEN) -> Any:
    env = dict(os.environ, ROSTRA_ADMIN_TOKEN=token)
    if server is not None:
        env["ROSTRA_SERVER"] = server.url
    result = subprocess.run(
        [sys.executable, "-m", "rostra", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return result


def test_space_lifecycle_from_the_command_line(server: Server) -> None:
    created = rostra("space", "create", "--title", "From the CLI", server=server)
    assert created.returncode == 0, created.stderr
    space = json.loads(created.stdout)
    assert set(space) >= CONTRACT_KEYS
    assert space["status"] == "scheduled"
    sid = space["id"]
    assert space["hls_url"] == f"{server.url}/live/{sid}/index.m3u8"
    assert space["stream_url"] == f"{server.url}/live/{sid}/stream.aac"
    assert space["opus_stream_url"] == f"{server.url}/live/{sid}/stream.opus"
    assert space["state_url"] == f"{server.url}/live/{sid}/state.json"
    assert space["replay_url"] == f"{server.url}/replay/{sid}/index.m3u8"
    assert space["whip_url"] == f"{server.whip_base}/whip/{sid}"
    assert "?invite=" in space["speaker_invite_url"]

    invite = rostra("space", "invite", sid, "--name", "Guest", "--uses", "2", server=server)
    assert invite.returncode == 0, invite.stderr
    minted = json.loads(invite.stdout)
    assert minted["speaker_invite_url"].startswith(f"{server.url}/speak/{sid}?invite=")
    assert minted["expires_at"].endswith("Z")
    assert minted["studio"] is False
    studio = json.loads(rostra("space", "invite", sid, "--studio", server=server).stdout)
    assert studio["studio"] is True
    assert studio["speaker_invite_url"].endswith("#studio")

    started = json.loads(rostra("space", "start", sid, server=server).stdout)
    assert started["status"] == "live"
    listed = json.loads(rostra("space", "list", server=server).stdout)
    assert [s["id"] for s in listed["spaces"]] == [sid]
    ended = json.loads(rostra("space", "end", sid, "--server", server.url).stdout)
    assert ended["status"] == "ended"
    assert ended["ended_at"].endswith("Z")


def test_cli_reports_server_errors_plainly(server: Server) -> None:
    wrong = rostra("space", "list", server=server, token="not-the-token")
    assert wrong.returncode == 1
    assert "401" in wrong.stderr
    missing = rostra("space", "start", "nosuchspace1", server=server)
    assert missing.returncode == 1
    assert "no space has id" in missing.stderr
    unreachable = rostra("space", "list", "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["space"],
        ["space", "create"],
        ["space", "start"],
        ["space", "end"],
        ["space", "list"],
        ["space", "invite"],
        ["speak"],
        ["gate"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = rostra(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_gate_refuses_to_start_without_redis_or_the_shared_secret() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTRA_")}
    no_secret = subprocess.run(
        [sys.executable, "-m", "rostra", "gate", "--redis", "redis://127.0.0.1:9/0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert no_secret.returncode == 2
    assert "ROSTRA_SIGNING_SECRET" in no_secret.stderr
    no_redis = subprocess.run(
        [sys.executable, "-m", "rostra", "gate"],
        capture_output=True,
        text=True,
        env=dict(env, ROSTRA_SIGNING_SECRET="s" * 40),
        timeout=60,
        check=False,
    )
    assert no_redis.returncode == 2
    assert "--redis" in no_redis.stderr

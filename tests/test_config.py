"""Settings come from defaults < rostra.toml < ROSTRA_* < flags; secrets are generated once."""

from __future__ import annotations

import stat
from pathlib import Path

from rostra.config import load_settings, with_secrets


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    toml = tmp_path / "rostra.toml"
    toml.write_text('port = 9000\nice_servers = ["stun:a:1"]\nmax_voices = 5\n')
    env = {"ROSTRA_PORT": "9100", "ROSTRA_ICE_HOST_ADDRESSES": "127.0.0.1, ::1"}
    settings = load_settings({"port": 9200}, environ=env, toml_path=toml)
    assert settings.port == 9200
    assert settings.max_voices == 5
    assert settings.ice_servers == ("stun:a:1",)
    assert settings.ice_host_addresses == ("127.0.0.1", "::1")
    assert load_settings(environ=env, toml_path=toml).port == 9100


def test_public_url_is_the_base_of_every_absolute_url() -> None:
    assert load_settings(environ={}).base_url == "http://127.0.0.1:8080"
    public = load_settings(environ={"ROSTRA_PUBLIC_URL": "https://audio.example.org/"})
    assert public.base_url == "https://audio.example.org"


def test_secrets_are_generated_once_private_and_overridable(tmp_path: Path) -> None:
    settings = load_settings({"data": tmp_path}, environ={})
    first, created = with_secrets(settings)
    assert sorted(created) == ["admin_token", "signing_secret"]
    assert len(first.signing_secret) >= 40
    mode = stat.S_IMODE((tmp_path / "signing_secret").stat().st_mode)
    assert mode == 0o600
    again, created_again = with_secrets(settings)
    assert created_again == []
    assert again.signing_secret == first.signing_secret
    shared = load_settings({"data": tmp_path}, environ={"ROSTRA_SIGNING_SECRET": "s" * 40})
    assert with_secrets(shared)[0].signing_secret == "s" * 40

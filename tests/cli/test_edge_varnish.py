"""`rostra edge --engine varnish` rendering: the shipped VCL renders for an origin and compiles
with Debian's varnishd; what Varnish cannot do is refused before it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rostra.cli.edge import EdgeConfig, EdgeMisconfigured
from rostra.cli.edge_varnish import (
    VCL_TEMPLATE,
    check_command,
    prepare_vcl,
    render_edge_vcl,
    run_command,
)
from tests.conftest import ROOT

VARNISHD = Path("/usr/sbin/varnishd")


def config(
    tmp_path: Path, origin: str = "http://10.0.0.5:8080", *, serve_stale: bool = False
) -> EdgeConfig:
    return EdgeConfig(
        origin=origin,
        whip_origin="http://[::1]:8081",
        cache_dir=tmp_path,
        port=8099,
        serve_stale_while_revalidate=serve_stale,
    )


@pytest.mark.parametrize("serve_stale", [False, True])
def test_rendered_vcl_names_both_backends_and_compiles_with_varnishd(
    tmp_path: Path, serve_stale: bool
) -> None:
    if not VARNISHD.is_file():
        pytest.fail("Debian's varnish is needed: `make system-test-deps` installs it")
    vcl = prepare_vcl(config(tmp_path, serve_stale=serve_stale), VCL_TEMPLATE.read_text())
    text = vcl.read_text()

    assert f"(({str(serve_stale).lower()}" in text

    assert '.host = "10.0.0.5";' in text
    assert '.port = "8080";' in text
    assert '.host = "::1";' in text
    assert '.port = "8081";' in text
    assert "${" not in text
    compiled = subprocess.run(
        check_command(str(VARNISHD), config(tmp_path), vcl),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    command = run_command(str(VARNISHD), config(tmp_path), vcl)
    assert command[:2] == [str(VARNISHD), "-F"]
    assert "default_ttl=1" in command
    assert "default_grace=0" in command
    assert "127.0.0.1:8099" in command


def test_varnish_edge_refuses_an_https_origin(tmp_path: Path) -> None:
    with pytest.raises(EdgeMisconfigured, match="plain HTTP"):
        render_edge_vcl(config(tmp_path, "https://origin.example"), VCL_TEMPLATE.read_text())
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "rostra",
            "edge",
            "--engine",
            "varnish",
            "--origin",
            "https://origin.example",
            "--cache-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert "plain HTTP" in refused.stderr

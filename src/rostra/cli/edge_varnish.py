"""`rostra edge --engine varnish`: Debian's Varnish as the HTTP cache in front of the origin,
rendered from deploy/varnish/edge.vcl.template and run in the foreground.

CLI. Varnish wakes requests waiting for the same object the moment it arrives, where nginx's
cache lock re-checks every 500 ms; the rest is the nginx edge's behaviour (docs/edge.md).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import NoReturn

import typer

from rostra.cli.edge import EdgeConfig, EdgeMisconfigured, EdgeTemplate, host_port, upstream

VCL_TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / "varnish" / "edge.vcl.template"
VCL_NAME = "edge.vcl"
WORK_DIR_NAME = "varnish"
VARNISHD_CANDIDATES = ("/usr/sbin/varnishd", "varnishd")
VARNISHNCSA_CANDIDATES = ("/usr/bin/varnishncsa", "varnishncsa")
# nginx's client_max_body_size 1m
MAX_BODY_BYTES = 1_048_576
# Varnish's Transient storage (passes, hit-for-miss markers) is unbounded unless sized: passed
# bodies are freed behind delivery, and a stalled stream listener is cut after varnishd's
# idle_send_timeout (60 s, some 0.7 MB of stream), so this is room for thousands
TRANSIENT_SIZE = "256M"
# a progressive listener may listen this long (nginx: proxy_read_timeout 1h on streams)
STREAM_TIMEOUT = "3600s"
# how long an expired copy is kept for serving while the origin errs (nginx: inactive=10m)
KEEP_ON_ERROR = "600s"
# One line per request in the access log, shaped like the nginx edge's: client lines carry the
# cache status and `upstream=c`, lines for requests the edge made to the origin `upstream=b`.
ACCESS_LOG_FORMAT = (
    '%{sec}t.%{usec_frac}t %s %m "%U%q" cache=%{X-Cache-Status}o '
    "upstream=%{Varnish:side}x time=%D bytes=%b"
)
PR_SET_PDEATHSIG = 1
# varnishd's own settings: with these the origin's headers alone decide (docs/edge.md)
PARAMETERS = (
    # an answer with no freshness of its own is kept 1 s (nginx: proxy_cache_valid any 1s)
    ("default_ttl", "1"),
    # grace comes from the origin's stale-while-revalidate alone
    ("default_grace", "0"),
    ("default_keep", "0"),
    # shorter than the origin's own keep-alive (30 s): never reuse a connection it is closing
    ("backend_idle_timeout", "20"),
    # idle client keep-alive, as nginx's keepalive_timeout 75s
    ("timeout_idle", "75"),
)


def backend_address(url: str) -> tuple[str, str]:
    """(host, port) of an http:// origin URL as a VCL backend takes them (no brackets)."""
    scheme, server = upstream(url)
    if scheme != "http":
        raise EdgeMisconfigured(
            f"'{url}': Varnish speaks plain HTTP to its backends; use --engine nginx for an "
            "https:// origin, or reach the origin over http on a private network"
        )
    host, _, port = server.rpartition(":")
    return host.strip("[]"), port


def vcl_placeholders(config: EdgeConfig) -> dict[str, str]:
    origin_host, origin_port = backend_address(config.origin)
    whip_host, whip_port = backend_address(config.whip_origin)
    return {
        "origin_host": origin_host,
        "origin_port": origin_port,
        "whip_host": whip_host,
        "whip_port": whip_port,
        "max_body_bytes": str(MAX_BODY_BYTES),
        "stream_timeout": STREAM_TIMEOUT,
        "keep_on_error": KEEP_ON_ERROR,
        "serve_stale_while_revalidate": str(config.serve_stale_while_revalidate).lower(),
    }


def render_edge_vcl(config: EdgeConfig, template: str) -> str:
    """The whole VCL for `config` (pure: reads and writes nothing)."""
    try:
        return EdgeTemplate(template).substitute(vcl_placeholders(config))
    except KeyError as exc:
        raise EdgeMisconfigured(f"the template has an unknown placeholder {exc}") from exc


def find_binary(candidates: tuple[str, ...], explicit: str | None = None) -> str:
    for candidate in (explicit,) if explicit else candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise EdgeMisconfigured(
        f"{candidates[-1]} is not installed: `apt-get install varnish` (Debian's package)"
    )


def prepare_vcl(config: EdgeConfig, template: str) -> Path:
    """Writes the cache folder's edge.vcl and Varnish's working folder; returns the VCL's path."""
    cache_dir = config.cache_dir.resolve()
    (cache_dir / WORK_DIR_NAME).mkdir(parents=True, exist_ok=True)
    vcl = cache_dir / VCL_NAME
    vcl.write_text(render_edge_vcl(config, template))
    return vcl


def jail(config: EdgeConfig) -> str:
    """Run as root, Varnish's processes take the cache folder's owner (as nginx's workers do);
    otherwise they keep the caller's rights."""
    if not config.worker_user:
        return "none"
    user = config.worker_user.split()[0]
    return "none" if user == "root" else f"unix,user={user}"


def check_command(varnishd: str, config: EdgeConfig, vcl: Path) -> list[str]:
    """`varnishd -C` compiles the VCL (to C, printed and discarded) and exits, in the jail
    varnishd will run in (so it reads the VCL with the same rights)."""
    work_dir = str(vcl.parent / WORK_DIR_NAME)
    return [varnishd, "-C", "-f", str(vcl), "-n", work_dir, "-j", jail(config)]


def run_command(varnishd: str, config: EdgeConfig, vcl: Path) -> list[str]:
    """varnishd in the foreground: listener, VCL, working folder, storage sized like nginx's."""
    command = [varnishd, "-F", "-f", str(vcl), "-n", str(vcl.parent / WORK_DIR_NAME)]
    command += ["-a", host_port(config.host, config.port)]
    command += ["-s", f"malloc,{config.cache_max_size.upper()}"]
    command += ["-s", f"Transient=malloc,{TRANSIENT_SIZE}", "-j", jail(config)]
    for name, value in PARAMETERS:
        command += ["-p", f"{name}={value}"]
    return command


def _die_with_parent() -> None:
    """In the access logger, before exec: end when the process that started it (which then
    became varnishd) ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_access_log(varnishncsa: str, vcl: Path, log: Path) -> subprocess.Popen[bytes]:
    """varnishncsa writing client and origin requests to `log`, waiting for varnishd to start."""
    command = [varnishncsa, "-n", str(vcl.parent / WORK_DIR_NAME), "-c", "-b", "-t", "off"]
    command += ["-F", ACCESS_LOG_FORMAT, "-w", str(log.resolve())]
    return subprocess.Popen(  # noqa: S603 - Debian's varnishncsa, our own arguments
        command,
        preexec_fn=_die_with_parent,
        stdin=subprocess.DEVNULL,
    )


def run(config: EdgeConfig, template: str, varnishd_path: str | None) -> NoReturn:
    """Render, compile-check, start the access logger if asked, then become varnishd (its PID
    is this process's: SIGTERM or SIGINT stop it, and the access logger with it)."""
    varnishd = find_binary(VARNISHD_CANDIDATES, varnishd_path)
    vcl = prepare_vcl(config, template)
    checked = subprocess.run(  # noqa: S603 - the operator's own varnishd and our rendered VCL
        check_command(varnishd, config, vcl), capture_output=True, text=True, timeout=60
    )
    if checked.returncode != 0:
        raise EdgeMisconfigured(f"varnishd refused {vcl}:\n{checked.stderr.strip()}")
    typer.echo(
        f"Rostra edge (Varnish) on http://{host_port(config.host, config.port)} → origin "
        f"{config.origin}, WHIP {config.whip_origin}  (VCL: {vcl}); set ROSTRA_PUBLIC_URL on "
        "the origin to the edge's URL"
    )
    if config.access_log is not None:
        start_access_log(find_binary(VARNISHNCSA_CANDIDATES), vcl, config.access_log)
    command = run_command(varnishd, config, vcl)
    os.execv(command[0], command)  # noqa: S606 - becoming varnishd is the point of this command

"""`rostra edge`: Debian's nginx (or, with `--engine varnish`, Debian's Varnish: see
edge_varnish.py) as the HTTP cache in front of the origin, rendered from
deploy/nginx/edge.conf.template and run in the foreground.

CLI. The rendering is a pure function (`render_edge_conf`); the command only writes, checks and
execs.
"""

from __future__ import annotations

import grp
import os
import pwd
import resource
import shutil
import string
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

import typer

TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / "nginx" / "edge.conf.template"
CONF_NAME = "edge.conf"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "nginx")
TEMP_DIRS = ("client", "proxy", "fastcgi", "uwsgi", "scgi")
DEFAULT_PORT = 8088
CHECK_TIMEOUT_S = 30.0
MAX_OPEN_FILES = 65_536


class EdgeEngine(StrEnum):
    NGINX = "nginx"
    VARNISH = "varnish"


class EdgeMisconfigured(ValueError):
    """An origin URL or a folder the edge cannot use."""


class EdgeTemplate(string.Template):
    """`${name}` only: nginx's own `$variables` pass through untouched."""

    pattern = r"""
    \$(?:
      (?P<escaped>(?!))
      | (?P<named>(?!))
      | \{(?P<braced>[a-z_]+)\}
      | (?P<invalid>(?!))
    )
    """  # type: ignore[assignment]  # typeshed types the class attribute as str | Pattern


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    origin: str
    whip_origin: str
    cache_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    access_log: Path | None = None
    # a waiter on the cache lock gives up after this and asks the origin itself (not stored)
    lock_timeout_ms: int = 2_000
    # an origin request older than this lets one more request through to the origin
    lock_age_ms: int = 1_000
    cache_max_size: str = "1g"
    error_log_level: str = "warn"
    # descriptors per worker: a listener connection and, on a miss or a stream, an origin one
    open_files: int = 20_000
    # when run as root, the workers take this account (the cache folder's owner by default)
    worker_user: str = ""
    # Varnish only: serve an expired copy within the origin's stale-while-revalidate while it
    # is refreshed (nginx always does; see docs/edge.md for what it costs LL-HLS players)
    serve_stale_while_revalidate: bool = False


def upstream(url: str) -> tuple[str, str]:
    """(scheme, host:port) of an http(s) URL with no path beyond `/`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EdgeMisconfigured(f"'{url}' is not an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query:
        raise EdgeMisconfigured(f"'{url}' has a path or query: give the origin's base URL only")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, host_port(parts.hostname, port)


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_whip_origin(origin: str) -> str:
    """`rostra serve` puts WHIP on the listener port + 1 unless told otherwise."""
    scheme, server = upstream(origin)
    host, _, port = server.rpartition(":")
    return f"{scheme}://{host}:{int(port) + 1}"


def placeholders(config: EdgeConfig) -> dict[str, str]:
    """The template's values for `config`; raises EdgeMisconfigured on a bad origin URL."""
    origin_scheme, origin_server = upstream(config.origin)
    whip_scheme, whip_server = upstream(config.whip_origin)
    access_log = (
        f"access_log {config.access_log.resolve()} rostra_edge buffer=64k flush=1s;"
        if config.access_log is not None
        else "access_log off;"
    )
    is_tls = "https" in (origin_scheme, whip_scheme)
    return {
        "cache_dir": str(config.cache_dir.resolve()),
        "error_log_level": config.error_log_level,
        "user_directive": f"user {config.worker_user};" if config.worker_user else "",
        "access_log": access_log,
        "cache_max_size": config.cache_max_size,
        "origin_server": origin_server,
        "origin_scheme": origin_scheme,
        "whip_server": whip_server,
        "whip_scheme": whip_scheme,
        "origin_tls": "proxy_ssl_server_name on;" if is_tls else "",
        "listen": host_port(config.host, config.port),
        "lock_age": f"{config.lock_age_ms}ms",
        "lock_timeout": f"{config.lock_timeout_ms}ms",
        "open_files": str(config.open_files),
        # a proxied request holds two descriptors: the listener's and the origin's
        "worker_connections": str(config.open_files // 2),
    }


def render_edge_conf(config: EdgeConfig, template: str) -> str:
    """The whole nginx.conf for `config` (pure: reads and writes nothing)."""
    try:
        return EdgeTemplate(template).substitute(placeholders(config))
    except KeyError as exc:
        raise EdgeMisconfigured(f"the template has an unknown placeholder {exc}") from exc


def folder_owner(path: Path) -> str:
    """`user group` owning `path`: nginx's workers run as them when the master runs as root."""
    stat = path.stat()
    return f"{pwd.getpwuid(stat.st_uid).pw_name} {grp.getgrgid(stat.st_gid).gr_name}"


def open_files_limit() -> int:
    """What this process may raise its descriptor limit to (nginx inherits it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)


def find_nginx(explicit: str | None = None) -> str:
    for candidate in (explicit,) if explicit else NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise EdgeMisconfigured(
        "nginx is not installed: `apt-get install nginx` (Debian's package), or pass --nginx PATH"
    )


def prepare(config: EdgeConfig, template: str) -> Path:
    """Writes the cache folder's nginx.conf and temp folders; returns the conf's path."""
    cache_dir = config.cache_dir.resolve()
    for name in TEMP_DIRS:
        (cache_dir / "temp" / name).mkdir(parents=True, exist_ok=True)
    conf = cache_dir / CONF_NAME
    conf.write_text(render_edge_conf(config, template))
    return conf


def check_command(nginx: str, conf: Path) -> list[str]:
    return [nginx, "-t", "-q", "-e", "stderr", "-p", str(conf.parent), "-c", str(conf)]


def run_command(nginx: str, conf: Path) -> list[str]:
    return [nginx, "-e", "stderr", "-p", str(conf.parent), "-c", str(conf)]


def edge(
    origin: Annotated[
        str,
        typer.Option(help="Base URL of `rostra serve`'s listener port, e.g. http://10.0.0.5:8080"),
    ],
    whip_origin: Annotated[
        str | None,
        typer.Option(help="Base URL of the origin's WHIP port (default: the origin's port + 1)"),
    ] = None,
    port: Annotated[int, typer.Option(help="Port the edge listens on")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address the edge listens on")] = "127.0.0.1",
    cache_dir: Annotated[
        Path, typer.Option(help="Scratch folder: rendered conf, cache, temp files, pid")
    ] = Path("data/edge"),
    access_log: Annotated[
        Path | None,
        typer.Option(help="Write an access log here (cache status and upstream per request)"),
    ] = None,
    nginx: Annotated[
        str | None, typer.Option(help="The nginx binary (default: /usr/sbin/nginx, else PATH)")
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(help="The config template to render (default: the engine's in deploy/)"),
    ] = None,
    engine: Annotated[
        EdgeEngine,
        typer.Option(help="nginx, or varnish (wakes coalesced requests at once: LL-HLS)"),
    ] = EdgeEngine.NGINX,
    varnishd: Annotated[
        str | None, typer.Option(help="The varnishd binary (default: /usr/sbin/varnishd)")
    ] = None,
    stale_while_revalidate: Annotated[
        bool,
        typer.Option(
            help="Varnish: serve expired copies within the origin's stale-while-revalidate "
            "(default: refresh them first; players then start nearer the live edge)"
        ),
    ] = False,
) -> None:
    """Render the edge config, check it with `nginx -t` (or `varnishd -C`), then become nginx
    (or varnishd): signals reach it directly, SIGTERM/SIGINT stop it fast."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        config = EdgeConfig(
            origin=origin,
            whip_origin=whip_origin or default_whip_origin(origin),
            cache_dir=cache_dir,
            host=host,
            port=port,
            access_log=access_log,
            open_files=open_files_limit(),
            worker_user=folder_owner(cache_dir) if os.geteuid() == 0 else "",
            serve_stale_while_revalidate=stale_while_revalidate,
        )
        if engine == EdgeEngine.VARNISH:
            run_varnish(config, template, varnishd)
        binary = find_nginx(nginx)
        conf = prepare(config, (template or TEMPLATE).read_text())
    except (EdgeMisconfigured, OSError) as exc:
        typer.echo(f"rostra edge: {exc}", err=True)
        raise typer.Exit(2) from exc
    checked = subprocess.run(  # noqa: S603 - the operator's own nginx and our rendered conf
        check_command(binary, conf), capture_output=True, text=True, timeout=CHECK_TIMEOUT_S
    )
    if checked.returncode != 0:
        typer.echo(f"rostra edge: nginx refused {conf}:\n{checked.stderr.strip()}", err=True)
        raise typer.Exit(2)
    typer.echo(
        f"Rostra edge on http://{host}:{port} → origin {config.origin}, WHIP {config.whip_origin}"
        f"  (conf: {conf}); set ROSTRA_PUBLIC_URL=http://{host}:{port} on the origin"
    )
    command = run_command(binary, conf)
    os.execv(command[0], command)  # noqa: S606 - becoming nginx is the point of this command


def run_varnish(config: EdgeConfig, template: Path | None, varnishd: str | None) -> NoReturn:
    """Becomes varnishd, or raises EdgeMisconfigured/OSError."""
    # imported here: edge_varnish imports this module
    from rostra.cli import edge_varnish

    edge_varnish.run(config, (template or edge_varnish.VCL_TEMPLATE).read_text(), varnishd)

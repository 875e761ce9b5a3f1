"""Settings: read once from flags, ROSTRA_* environment variables and an optional rostra.toml.

Foundation module: imports no plane. Secrets are generated into the data folder on first start
unless the deployment supplies them (every node of a deployment must share one signing secret).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ENV_PREFIX = "ROSTRA_"
SECRET_BYTES = 32
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
# the Opus bitrate the WHIP answer asks speakers for: below 16 kbit/s speech loses its top band,
# above 256 kbit/s mono gains nothing audible
MIN_SPEAKER_BITRATE_KBPS = 16
MAX_SPEAKER_BITRATE_KBPS = 256


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data: Path = Path("data")
    public_url: str = ""
    ice_servers: tuple[str, ...] = ()
    # Host addresses offered as ICE candidates; empty: every non-loopback interface.
    ice_host_addresses: tuple[str, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""
    admin_token: str = ""
    signing_secret: str = ""
    invite_ttl_s: int = 7 * 24 * 3600
    # host links expire (a rotation ends them sooner: `rostra space host-link ID --rotate`)
    host_token_ttl_s: int = 30 * 24 * 3600
    # coturn's `use-auth-secret`: TURN servers named without a password get time-limited ones
    turn_secret: str = ""
    turn_ttl_s: int = 3600
    max_voices: int = 13
    # the Opus average bitrate a speaker's WHIP answer asks for (mono, full band, in-band FEC)
    speaker_bitrate_kbps: int = 96
    max_sdp_bytes: int = 64 * 1024
    live_window_segments: int = 6
    log_level: str = "info"
    # the audience: tickets, heartbeats and the count's sliding window
    presence_window: float = 60.0
    presence_slices: int = 6
    heartbeat_interval_s: float = 20.0
    ticket_ttl_s: int = 2 * 3600
    reactions_per_10s: int = 10
    # joins admitted per second per space, and the bucket's burst (docs/audience.md: why these);
    # a host or admin overrides them per space (`rostra space defend`)
    admission_rate: float = 5_000.0
    admission_burst: int = 10_000
    redis: str = ""
    gate_workers: int = 1
    # longer than the heartbeat interval, so a listener's connection is reused between beats
    keep_alive_s: float = 30.0
    # processes (`rostra serve`): the origin carries the speakers' path; listener workers the rest
    workers: int = 2
    # the origin's WHIP port (0: the listener port + 1) and the base of printed whip_url values
    # (empty: the public URL when one is set, since an edge routes /whip/ to the origin; else
    # this WHIP port on the bind address)
    whip_port: int = 0
    whip_public_url: str = ""
    # niceness of the listener workers (0: the origin's priority). bench/isolation.py measured
    # a lower priority hurting the speakers under a listener flood (speaker-to-speaker p95 +40
    # to +59 ms niced at 5, +4 to +5 ms at 0; not yet explained, the origin's feed to niced
    # workers is the first suspect)
    worker_nice: int = 0
    # the listener side is bounded: connections per worker, time to send request headers,
    # progressive-stream listeners per worker
    max_connections: int = 4_000
    header_timeout_s: float = 10.0
    max_stream_listeners: int = 1_000
    # /healthz fails below this much free space in the data folder
    min_free_mb: int = 512
    # peers whose X-Forwarded-For is believed (an edge); empty: none
    trusted_proxies: tuple[str, ...] = ()
    # proof-of-work (ALTCHA) on join, for spaces whose defence sets none: off, on, or auto (on
    # under attack); `auto` also counts bad tickets per second per deployment as an attack
    pow: str = "off"
    pow_bad_tickets_per_s: float = 50.0
    # per-source limits ("N/second|minute|hour", the `limits` package's notation), per client
    # address and per prefix (/24 IPv4, /48 IPv6): generous per address, for carrier NAT
    limit_join_ip: str = "30/minute"
    limit_join_prefix: str = "600/minute"
    limit_write_ip: str = "600/minute"
    limit_write_prefix: str = "6000/minute"
    limit_admin_ip: str = "300/minute"
    limit_admin_prefix: str = "3000/minute"
    # a space whose proof-of-work is on (`space defend --pow on`) is under attack: its joins'
    # per-prefix limit tightens to this
    limit_join_prefix_defended: str = "120/minute"
    # addresses or networks no limit applies to: loopback by default (a local edge or rehearsal
    # without --trusted-proxies would otherwise put every listener behind one address)
    limits_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # the incident log keeps its per-second rows this long
    incident_retention_days: int = 30
    # live captions (speech recognition in a child of the origin, docs/media.md "Captions"):
    # off by default, since it costs more than 15 % of a core per space while people speak
    captions: bool = False
    # an Icecast 2.4 server fed each live space's program as mounts /ID.aac and /ID.opus
    # (icecast://source:PASSWORD@HOST:PORT; empty: none), the base of the public relay URLs
    # (empty: http://HOST:PORT of that URL) and relays' status URLs counted with it (docs/relays.md)
    icecast: str = ""
    icecast_public_url: str = ""
    icecast_relays: tuple[str, ...] = ()
    # Testing aid: drop this fraction of speaker RTP packets (seeded), to prove concealment.
    ingest_drop_rate: float = 0.0
    ingest_drop_seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not MIN_SPEAKER_BITRATE_KBPS <= self.speaker_bitrate_kbps <= MAX_SPEAKER_BITRATE_KBPS:
            raise ValueError(
                "speaker_bitrate_kbps (ROSTRA_SPEAKER_BITRATE_KBPS) is"
                f" {self.speaker_bitrate_kbps}; it must be {MIN_SPEAKER_BITRATE_KBPS}"
                f" to {MAX_SPEAKER_BITRATE_KBPS} kbit/s"
            )
        if self.icecast:
            parse_icecast_url(self.icecast)
        for url in (self.icecast_public_url, *self.icecast_relays):
            parts = urlsplit(url)
            if url and (parts.scheme not in {"http", "https"} or not parts.hostname):
                raise ValueError(
                    f"{url[:100]!r} (ROSTRA_ICECAST_PUBLIC_URL, ROSTRA_ICECAST_RELAYS) must be "
                    "an http:// or https:// URL with a host"
                )

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def origin_whip_port(self) -> int:
        return self.whip_port or self.port + 1

    @property
    def whip_base_url(self) -> str:
        """Where speakers reach WHIP: never through the listener workers."""
        if self.whip_public_url:
            return self.whip_public_url.rstrip("/")
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.origin_whip_port}"

    @property
    def run_dir(self) -> Path:
        """Sockets and per-process status files of one running server."""
        return self.data / "run"

    @property
    def icecast_base_url(self) -> str:
        """Where players reach the Icecast mounts; empty without `--icecast`."""
        if not self.icecast:
            return ""
        if self.icecast_public_url:
            return self.icecast_public_url.rstrip("/")
        return parse_icecast_url(self.icecast).base_url


@dataclass(frozen=True, slots=True)
class IcecastTarget:
    """Where `--icecast` feeds: an Icecast 2.4 server's source login."""

    host: str
    port: int
    user: str
    password: str

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_icecast_url(url: str) -> IcecastTarget:
    """`icecast://source:PASSWORD@HOST:PORT`, strictly; ValueError names what is wrong."""
    where = "--icecast (ROSTRA_ICECAST)"
    parts = urlsplit(url.strip())
    if parts.scheme != "icecast":
        raise ValueError(f"{where} must start with icecast://, not {parts.scheme or 'nothing'}")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValueError(
            f"{where} names a server, not a mount: icecast://source:PASSWORD@HOST:PORT "
            "(the mounts are /ID.aac and /ID.opus)"
        )
    if not parts.hostname:
        raise ValueError(f"{where} has no host: icecast://source:PASSWORD@HOST:PORT")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{where} has an invalid port: it must be 1 to 65535") from exc
    if port is None or port == 0:
        raise ValueError(f"{where} has no port: icecast://source:PASSWORD@HOST:PORT")
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if not user or not password:
        raise ValueError(
            f"{where} needs the source login: icecast://source:PASSWORD@HOST:PORT "
            "(Icecast's <source-password>)"
        )
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in user + password):
        raise ValueError(f"{where}: the login may not hold control characters")
    return IcecastTarget(host=parts.hostname, port=port, user=user, password=password)


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f for f in fields(Settings)}[name].type
    text = str(kind)
    if isinstance(raw, str):
        if "tuple" in text:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if text == "int":
            return int(raw)
        if text == "float":
            return float(raw)
        if text == "Path":
            return Path(raw)
        if text == "bool":
            return raw.strip().lower() not in {"0", "false", "no", "off"}
    if "tuple" in text and isinstance(raw, list):
        return tuple(str(item) for item in raw)
    if text == "Path":
        return Path(str(raw))
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Settings:
    """Defaults < rostra.toml < ROSTRA_* environment < explicit overrides (flags)."""
    env = os.environ if environ is None else environ
    names = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    path = toml_path or Path(env.get(ENV_PREFIX + "CONFIG", "rostra.toml"))
    if path.is_file():
        with path.open("rb") as handle:
            for key, raw in tomllib.load(handle).items():
                if key in names:
                    values[key] = _coerce(key, raw)
    for key in names:
        raw_env = env.get(ENV_PREFIX + key.upper())
        if raw_env is not None and raw_env != "":
            values[key] = _coerce(key, raw_env)
    for key, raw in (overrides or {}).items():
        if raw is not None and key in names:
            values[key] = _coerce(key, raw)
    return Settings(**values)


def _read_or_create_secret(path: Path) -> tuple[str, bool]:
    if path.is_file():
        return path.read_text().strip(), False
    value = secrets.token_urlsafe(SECRET_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value, True


ADMIN_TOKEN_FILE = "admin_token"  # noqa: S105 - a file name, not a secret
SIGNING_SECRET_FILE = "signing_secret"  # noqa: S105 - a file name, not a secret


def with_secrets(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill the admin token and signing secret from config, or from/into the data folder.

    Returns the settings and the names of secrets generated just now.
    """
    created: list[str] = []
    admin = settings.admin_token
    if not admin:
        admin, is_new = _read_or_create_secret(settings.data / ADMIN_TOKEN_FILE)
        if is_new:
            created.append(ADMIN_TOKEN_FILE)
    secret = settings.signing_secret
    if not secret:
        secret, is_new = _read_or_create_secret(settings.data / SIGNING_SECRET_FILE)
        if is_new:
            created.append(SIGNING_SECRET_FILE)
    return replace(settings, admin_token=admin, signing_secret=secret), created

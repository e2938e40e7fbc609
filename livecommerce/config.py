"""Settings from environment variables, validated once at start."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line meant for the operator."""


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


SMTP_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    def __repr__(self) -> str:
        # never the password, wherever a target is logged
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        return f"SmtpTarget({scheme}://{user}{self.host}:{self.port})"


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://user:password@host:port` or `smtps://...`; ValueError with the reason otherwise.
    The user name and password may be percent-encoded (an address as user name: `me%40example.com`)."""
    parts = urlsplit(url)
    if parts.scheme not in SMTP_DEFAULT_PORTS:
        raise ValueError("must be an smtp:// or smtps:// URL")
    if not parts.hostname:
        raise ValueError("names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("is smtp(s)://[user:password@]host[:port], nothing after the port")
    try:
        port = parts.port or SMTP_DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class Settings(BaseSettings):
    """Every knob of the server. Environment variables use the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("data")
    public_url: str = ""
    node_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{secrets.token_hex(3)}",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
    )
    # How the other nodes (and, for redirects, viewers) reach this node: http://host:port
    node_url: str = ""

    database_url: str = ""
    db_pool_size: int = Field(20, ge=1, le=500)
    redis_url: str = ""

    secret_key: str = ""
    session_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    guest_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)

    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_publishable_key: str = ""
    stripe_api_base: str = ""
    reservation_ttl_seconds: int = Field(600, ge=5, le=7 * 24 * 3600)
    order_batch_window_ms: float = Field(2.0, ge=0, le=1000)
    # False: one row-locking transaction per tap (the baseline the batched hot-SKU path is measured against)
    order_batching: bool = True

    # Mail to buyers (a receipt when an order is paid, a confirmation of each refund), queued with
    # the order change and sent in the background: SMTP_URL is smtp://user:password@host:587
    # (STARTTLS when the server offers it) or smtps://user:password@host:465 (TLS from the
    # start); without it no mail is queued. MAIL_FROM is the sender's address, shown with the
    # merchant's name. A failed try waits MAIL_RETRY_SECONDS, doubling each time (up to an hour),
    # and the mail is given up after MAIL_MAX_ATTEMPTS tries.
    smtp_url: str = ""
    mail_from: str = ""
    mail_retry_seconds: float = Field(30.0, gt=0, le=3600)
    mail_max_attempts: int = Field(10, ge=1, le=100)

    ice_servers: Annotated[list[dict[str, Any]], NoDecode] = Field(default_factory=list)
    rtc_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_announced_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_viewers_per_node: int = Field(500, ge=1)
    publisher_grace_seconds: float = Field(10.0, ge=0)
    # A node relaying a room feeds at most this many other relays of it; more make the tree deeper
    relay_fanout: int = Field(8, ge=1)
    relay_idle_seconds: float = Field(15.0, ge=0)
    # LL-HLS from the origin node: segments end at the first keyframe past half of
    # HLS_SEGMENT_SECONDS (a keyframe is asked for at HLS_SEGMENT_SECONDS), parts last up to
    # HLS_PART_SECONDS, and the live playlist keeps HLS_WINDOW_SEGMENTS segments
    hls_segment_seconds: float = Field(2.0, ge=1.0, le=10.0)
    hls_part_seconds: float = Field(0.5, ge=0.2, le=2.0)
    hls_window_segments: int = Field(6, ge=3, le=100)
    # Every HLS live is recorded as its CMAF segments under RECORDINGS_DIR (default
    # DATA_DIR/recordings); recordings that ended more than RECORDING_RETENTION_DAYS ago are
    # deleted (0: kept until deleted by hand)
    recording_enabled: bool = True
    recordings_dir: Path | None = None
    recording_retention_days: float = Field(30.0, ge=0)
    # Recordings in an S3-compatible bucket instead of RECORDINGS_DIR (the `s3` extra); the
    # endpoint for MinIO, R2 and the like; credentials the usual AWS way (AWS_ACCESS_KEY_ID, ...)
    recordings_s3_bucket: str = ""
    recordings_s3_prefix: str = "recordings/"
    recordings_s3_endpoint_url: str = ""
    recordings_s3_region: str = ""

    max_request_bytes: int = Field(1024 * 1024, ge=1024)
    ws_max_frame_bytes: int = Field(8 * 1024, ge=256)
    ws_send_queue: int = Field(256, ge=8)
    chat_max_length: int = Field(500, ge=1, le=10_000)
    room_history: int = Field(1000, ge=10)
    chat_rate_per_second: float = Field(1.0, gt=0)
    chat_burst: int = Field(5, ge=1)
    coalesce_connections: int = Field(100, ge=1)
    chat_max_per_second: int = Field(50, ge=1)
    realtime_tick_ms: int = Field(100, ge=10, le=2000)
    presence_interval_seconds: float = Field(1.0, gt=0, le=60)
    draw_min_watch_seconds: float = Field(30.0, ge=0)

    # Origins besides PUBLIC_URL's (and the request's own host) that may open the room socket
    # and send cookie-authenticated writes, e.g. https://shop.example.com
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Who may read /metrics: clients at these addresses or networks (not through a proxy) or
    # with `Authorization: Bearer METRICS_TOKEN`
    metrics_allow: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    metrics_token: str = ""
    # Sign-in attempts per minute for one login (ten times as many for one client address, which
    # may be a whole office behind NAT); guest identities per minute for one client address,
    # generous because a venue's audience may share one address (0: unlimited)
    login_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    guests_per_minute: int = Field(600, ge=0)

    log_level: str = "INFO"

    @field_validator(
        "rtc_host_addresses", "rtc_announced_addresses", "allowed_origins", "metrics_allow", mode="before"
    )
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.fullmatch(r"https?://[^/?#\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://shop.example.com")
        return [origin.lower() for origin in value]

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP address or network") from None
        return value

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _ice_servers(cls, value: Any) -> Any:
        """ICE_SERVERS is a JSON list of RTCIceServer objects or a comma list of URLs."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not valid JSON: {exc.msg}") from None
            return [{"urls": url} for url in _split_list(text)]
        return value

    @field_validator("ice_servers")
    @classmethod
    def _ice_urls(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for server in value:
            urls = server.get("urls")
            urls = [urls] if isinstance(urls, str) else urls
            if not urls or not all(
                isinstance(u, str) and u.split(":", 1)[0] in ("stun", "turn", "turns") for u in urls
            ):
                raise ValueError("every entry needs urls starting with stun:, turn: or turns:")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("must be a postgresql:// URL")
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://", "valkey://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value.replace("valkey://", "redis://", 1)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if value:
            parse_smtp_url(value)  # its ValueError says what is wrong
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+", value):
            raise ValueError("must be a plain email address, e.g. shop@example.com")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _stripe_pair(self) -> Settings:
        if bool(self.stripe_secret_key) != bool(self.stripe_webhook_secret):
            raise ValueError("STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET must be set together")
        if self.smtp_url and not self.mail_from:
            raise ValueError("MAIL_FROM (the sender's address) must be set with SMTP_URL")
        if self.secret_key and len(self.secret_key) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters")
        return self

    @property
    def payments_test_mode(self) -> bool:
        return not self.stripe_secret_key

    @property
    def smtp_target(self) -> SmtpTarget | None:
        """Where mail goes (None: no mail)."""
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @property
    def trusted_origins(self) -> frozenset[str]:
        """PUBLIC_URL's origin and ALLOWED_ORIGINS: pages there may act with a viewer's cookie."""
        origins = set(self.allowed_origins)
        if self.public_url:
            scheme, _, rest = self.public_url.partition("://")
            origins.add(f"{scheme}://{rest.split('/', 1)[0]}".lower())
        return frozenset(origins)

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def node_address(self) -> str:
        """NODE_URL, or this node's own HOST and PORT (never PUBLIC_URL: a load balancer's); a node
        listening on every interface is reached by its host name (a container's, in compose)."""
        if self.node_url:
            return self.node_url.rstrip("/")
        return f"http://{self.reachable_host}:{self.port}"

    @property
    def reachable_host(self) -> str:
        """HOST, or the host name when listening on every interface."""
        return socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host

    def ensure_secret_key(self) -> None:
        """Without SECRET_KEY, keep one in the data directory so tokens survive restarts."""
        if self.secret_key:
            return
        path = self.data_dir / "secret_key"
        if path.exists():
            self.secret_key = path.read_text().strip()
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.secret_key = secrets.token_urlsafe(48)
        path.write_text(self.secret_key)
        path.chmod(0o600)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (overrides win); raise ConfigError with one line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper() or "configuration"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {name}: {message}") from None

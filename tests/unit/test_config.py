"""Configuration errors are one line and a non-zero exit; good values parse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from livecommerce.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a postgresql:// URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"ICE_SERVERS": "[{"}, "ICE_SERVERS: not valid JSON"),
        ({"ICE_SERVERS": "http://stun.example"}, "ICE_SERVERS"),
        (
            {"STRIPE_SECRET_KEY": "sk_test_x"},
            "STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET must be set together",
        ),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"ALLOWED_ORIGINS": "shop.example.com"}, "ALLOWED_ORIGINS: 'shop.example.com' is not an origin"),
        ({"ALLOWED_ORIGINS": "https://shop.example.com/page"}, "ALLOWED_ORIGINS"),
        ({"METRICS_ALLOW": "10.0.0.0/8, prometheus"}, "METRICS_ALLOW: 'prometheus' is not an IP address"),
        ({"GUESTS_PER_MINUTE": "-1"}, "GUESTS_PER_MINUTE"),
        ({"NODE_ID": "node/a"}, "NODE_ID"),
        ({"SMTP_URL": "mail.example.com:587"}, "SMTP_URL: must be an smtp:// or smtps:// URL"),
        ({"SMTP_URL": "smtp://:587"}, "SMTP_URL: names no host"),
        ({"SMTP_URL": "smtp://mail.example.com:99999"}, "SMTP_URL: has a port"),
        (
            {"SMTP_URL": "smtp://mail.example.com"},
            "MAIL_FROM (the sender's address) must be set with SMTP_URL",
        ),
        ({"MAIL_FROM": "Shop <shop@example.com>"}, "MAIL_FROM: must be a plain email address"),
        ({"MAIL_MAX_ATTEMPTS": "0"}, "MAIL_MAX_ATTEMPTS"),
    ],
)
def test_bad_setting_is_a_one_line_error(monkeypatch, env, fragment):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_lists_and_urls_are_normalised(monkeypatch):
    monkeypatch.setenv("ICE_SERVERS", "stun:stun.example.org:3478, turn:turn.example.org")
    monkeypatch.setenv("RTC_HOST_ADDRESSES", "127.0.0.1, ::1")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    settings = load_settings()
    assert settings.ice_servers == [{"urls": "stun:stun.example.org:3478"}, {"urls": "turn:turn.example.org"}]
    assert settings.rtc_host_addresses == ["127.0.0.1", "::1"]
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.payments_test_mode


def test_secret_key_is_generated_once_per_data_dir(tmp_path):
    first = load_settings(data_dir=tmp_path)
    first.ensure_secret_key()
    second = load_settings(data_dir=tmp_path)
    second.ensure_secret_key()
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32


def test_cli_exits_non_zero_with_one_line_on_bad_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "livecommerce", "serve", "--data-dir", str(tmp_path)],
        env={"PATH": "/usr/bin:/bin", "PORT": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting PORT: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_trusted_origins_are_public_urls_origin_and_the_allowed_list(monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", "https://Live.Example.com/shop/")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example.com, http://localhost:3000")
    monkeypatch.setenv("METRICS_ALLOW", "10.0.0.0/8, ::1")
    settings = load_settings()
    assert settings.trusted_origins == {
        "https://live.example.com",
        "https://shop.example.com",
        "http://localhost:3000",
    }
    assert settings.metrics_allow == ["10.0.0.0/8", "::1"]


def test_other_nodes_reach_a_node_at_node_url_or_its_own_address():
    import socket

    assert load_settings(host="127.0.0.1", port=8001).node_address == "http://127.0.0.1:8001"
    assert load_settings(host="0.0.0.0", port=8001).node_address == f"http://{socket.gethostname()}:8001"
    assert load_settings(
        node_url="http://10.0.0.5:9000/", public_url="https://live.example.com"
    ).node_address == ("http://10.0.0.5:9000")


def test_smtp_url_names_the_server_its_tls_and_a_percent_encoded_login(monkeypatch):
    monkeypatch.setenv("SMTP_URL", "smtps://me%40example.com:p%3Ass@mail.example.com")
    monkeypatch.setenv("MAIL_FROM", "shop@example.com")
    target = load_settings().smtp_target
    assert (target.host, target.port, target.implicit_tls) == ("mail.example.com", 465, True)
    assert (target.username, target.password) == ("me@example.com", "p:ss")
    assert "p:ss" not in repr(target)
    plain = load_settings(smtp_url="smtp://mail.example.com").smtp_target
    assert (plain.port, plain.implicit_tls, plain.username) == (587, False, None)
    assert load_settings(smtp_url="").smtp_target is None

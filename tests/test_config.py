"""Settings: reeldb.toml < REELDB_* environment < explicit overrides; unknown keys refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from reeldb.config import DEFAULT_DATABASE, SETTINGS, Settings, load_settings
from reeldb.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.database == DEFAULT_DATABASE
    assert {s.name for s in SETTINGS} == set(Settings.__dataclass_fields__)


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "reeldb.toml"
    config.write_text('database = "sqlite:///from-file.db"\nbusy_timeout = 5\nread_timeout = 2\n')
    env = {"REELDB_DATABASE": "sqlite:///from-env.db", "REELDB_UNRELATED": "x"}
    settings = load_settings({"busy_timeout": 9}, config_file=config, environ=env)
    assert settings.database == "sqlite:///from-env.db"
    assert settings.busy_timeout == 9.0
    assert settings.read_timeout == 2.0
    assert load_settings(config_file=config, environ={}).database == "sqlite:///from-file.db"


def test_config_file_found_in_working_directory_or_env(tmp_path: Path) -> None:
    (tmp_path / "reeldb.toml").write_text('[reeldb]\nsqlite_synchronous = "normal"\n')
    assert load_settings(environ={}).sqlite_synchronous == "normal"
    other = tmp_path / "other.toml"
    other.write_text("max_document_bytes = 1000\n")
    assert load_settings(environ={"REELDB_CONFIG": str(other)}).max_document_bytes == 1000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("colour = 1\n", "unknown setting 'colour'", id="unknown-key"),
        pytest.param("busy_timeout = 'soon'\n", "must be a number", id="not-a-number"),
        pytest.param("busy_timeout = -1\n", "positive", id="negative"),
        pytest.param("sqlite_synchronous = 'off'\n", "'full' or 'normal'", id="unsafe-mode"),
        pytest.param("database = [\n", "cannot read config file", id="bad-toml"),
    ],
)
def test_bad_settings_say_where_to_fix_them(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(config_file=config, environ={})
    if "positive" in message or "number" in message:
        assert "REELDB_BUSY_TIMEOUT" in str(info.value)


def test_environment_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="REELDB_READ_TIMEOUT"):
        load_settings(environ={"REELDB_READ_TIMEOUT": "fast"})
    assert load_settings(environ={"REELDB_READ_TIMEOUT": "none"}).read_timeout is None

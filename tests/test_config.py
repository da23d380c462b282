import re
from dataclasses import fields

import pytest

from search.config import SETTINGS, Settings, load_settings, settings_table
from search.errors import ConfigError


def test_every_setting_has_a_default_help_and_a_readme_row():
    """The Settings fields and the help table name the same settings, in the same order."""
    assert [f.name for f in fields(Settings)] == list(SETTINGS), "add the setting to both Settings and SETTINGS"
    readme = (__import__("conftest").ROOT / "README.md").read_text()
    for name, default, help_text in settings_table():
        assert len(help_text) > 20 and help_text.endswith("."), f"{name}: say what it does, in a sentence"
        assert f"| `{name}` | `{default}` |" in readme, f"setting {name} is not in README.md's table"


def _other_value(name: str, default: object) -> object:
    """A valid value of setting ``name`` that is not its default."""
    if name == "fusion":
        return "rrf"
    if name == "backend":
        return "qdrant"
    if name == "qdrant_quantization":
        return "int8"
    if name in ("query_embedder", "index_embedder"):
        return "hash"
    if name == "cors_origins":
        return "https://app.example"
    if isinstance(default, float):
        return default / 2 if default else 0.5
    if isinstance(default, int):
        return default + 1
    return f"{default}-other"


@pytest.mark.parametrize("name", [n for n in SETTINGS if n != "fields"])  # fields: a mapping, tested below
def test_every_setting_reads_from_the_environment_and_the_file(name, tmp_path, monkeypatch):
    default = getattr(Settings(), name)
    value = _other_value(name, default)
    if name == "qdrant_write_consistency":
        monkeypatch.setenv("SEARCH_QDRANT_REPLICAS", str(value))  # it may not exceed the replicas
    monkeypatch.setenv(f"SEARCH_{name.upper()}", str(value))
    monkeypatch.chdir(tmp_path)  # no search.yaml here
    assert getattr(load_settings(), name) == value
    monkeypatch.delenv(f"SEARCH_{name.upper()}")
    config = tmp_path / "search.yaml"
    config.write_text(f"{name}: {value!r}\n" if isinstance(value, str) else f"{name}: {value}\n")
    assert getattr(load_settings(config), name) == value


def test_readme_settings_table_is_generated():
    from click.testing import CliRunner

    from search.cli import main

    readme = (__import__("conftest").ROOT / "README.md").read_text()
    table = CliRunner().invoke(main, ["settings", "--markdown"]).output
    assert table in readme, "README's settings table is stale: paste `search-cli settings --markdown`"


def test_precedence_file_env_override(tmp_path, monkeypatch):
    config = tmp_path / "search.yaml"
    config.write_text("alpha: 0.3\nrrf_k: 10\n")
    monkeypatch.setenv("SEARCH_RRF_K", "20")
    settings = load_settings(config, candidates=5)
    assert (settings.alpha, settings.rrf_k, settings.candidates) == (0.3, 20, 5)


@pytest.mark.parametrize("bad", [{"alpha": 2}, {"fusion": "max"}, {"rrf_k": 0}, {"alpha": "high"}, {"nope": 1}])
def test_bad_values_are_refused(bad):
    with pytest.raises(ConfigError):
        Settings().with_overrides(**bad)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.yaml")


def test_fields_section_from_file_and_environment(tmp_path, monkeypatch):
    config = tmp_path / "search.yaml"
    config.write_text("fields:\n  title: hed\n  author: meta.byline\n")
    assert dict(load_settings(config).fields) == {"title": "hed", "authors": "meta.byline"}
    monkeypatch.setenv("SEARCH_FIELDS", "title=headline, url=link")
    assert dict(load_settings(config).fields) == {"title": "headline", "url": "link"}


@pytest.mark.parametrize("bad", ["fields: [title]\n", "fields:\n  titel: hed\n", "fields: 5\n"])
def test_bad_fields_section_is_refused(tmp_path, bad):
    config = tmp_path / "search.yaml"
    config.write_text(bad)
    with pytest.raises(ConfigError):
        load_settings(config)


def test_the_fields_mapping_reads_from_the_environment_and_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEARCH_FIELDS", "title=hed,url=meta.href")
    assert load_settings().fields == (("title", "hed"), ("url", "meta.href"))
    monkeypatch.delenv("SEARCH_FIELDS")
    (tmp_path / "search.yaml").write_text("fields:\n  title: hed\n")
    assert load_settings(tmp_path / "search.yaml").fields == (("title", "hed"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate_burst: 2.5", "not a whole number"),
        ("rrf_k: true", "not a valid int"),
        ("rate_limit: 1e400", "not a finite number"),
        ("query_embedder: foo", "use one of"),
        ("title_boost: -3", "must be above 0"),
        ("approximate_above: -1", "must be 0 or more"),
        ("index_dir: ''", "index_dir is empty"),
        ("cors_origins: example.com", "is not an origin"),
        ("api_keys: ' , '", "holds no value"),
        ("api_keys:\n  - key-one\n  -\n", "non-empty texts"),  # the empty item was the key "None"
        ("api_keys: {a: 1}", "is not a text"),
        ("api_keys: [123]", "non-empty texts"),
        ("alpha: [1", "invalid YAML (line 2, column 1)"),
    ],
)
def test_a_bad_value_in_the_file_is_one_line_naming_the_setting(text, message, tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(config)


def test_a_config_file_named_on_purpose_must_be_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEARCH_CONFIG", str(tmp_path / "serach.yaml"))  # a typo must not drop the API keys
    with pytest.raises(ConfigError, match="SEARCH_CONFIG"):
        load_settings()
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)
    (tmp_path / "latin.yaml").write_bytes(b"alpha: 0.5\n\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(tmp_path / "latin.yaml")
    (tmp_path / "keys.yaml").write_text("api_keys: [k1, ' k2 ']\n")
    assert load_settings(tmp_path / "keys.yaml").api_keys == "k1,k2"

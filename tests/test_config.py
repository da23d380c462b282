import pytest

from search.config import SETTINGS, Settings, load_settings, settings_table
from search.errors import ConfigError


def test_every_setting_has_help_and_is_in_the_readme():
    readme = (__import__("conftest").ROOT / "README.md").read_text()
    for name, _default, help_text in settings_table():
        assert help_text and name in SETTINGS
        assert f"`{name}`" in readme, f"setting {name} is not documented in README.md"


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

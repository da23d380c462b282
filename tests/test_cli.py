"""search-cli through click's CliRunner, on a fresh index built with the hash embedder."""

import json

import pytest
from click.testing import CliRunner

from conftest import IBM_TITLE, SEEDS
from search.cli import main
from search.urls import article_id

IBM = article_id("https://cn.reuters.com/article/ibm-facial-recognition-exports-idCNL1N2G8043")


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_DIR", str(tmp_path / "ix"))
    monkeypatch.setenv("SEARCH_QUERY_EMBEDDER", "hash")
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, [str(a) for a in args])

    return run


@pytest.fixture
def indexed(cli):
    result = cli("index", SEEDS)
    assert result.exit_code == 0, result.output
    return cli


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("index", "query", "related", "show", "stats", "serve", "delete"):
        assert command in result.output


def test_index_prints_a_summary(cli):
    result = cli("index", SEEDS)
    assert result.exit_code == 0
    assert "Indexed" in result.output and "docs/s" in result.output
    assert "Skipped 0 bad file(s) or record(s)." in result.output


def test_index_reports_bad_files_and_strict_fails(cli, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "ok.md").write_text('---\ntitle: Fine\nwebUrl: "https://x.org/ok"\n---\n')
    (bad / "bad.md").write_text("---\ntitle: [broken\n---\n")
    result = cli("index", bad)
    assert result.exit_code == 0 and "bad.md" in result.output
    assert "Skipped 1 bad file(s) or record(s):" in result.output
    strict = cli("index", bad, "--strict", "--rebuild")
    assert strict.exit_code == 1 and "Error:" in strict.output and "Traceback" not in strict.output


def test_query_human_output(indexed):
    result = indexed("query", "export controls")
    assert result.exit_code == 0
    first = result.output.splitlines()[1]
    assert first.strip().startswith("1.") and IBM_TITLE in first
    assert "Reuters · 2020-09-20 · https://cn.reuters.com/" in result.output


def test_query_json_is_the_api_dict(indexed):
    data = json.loads(indexed("query", "export controls", "--json", "--limit", "3").output)
    assert data["hits"][0]["title"] == IBM_TITLE and data["limit"] == 3 and "facets" in data


def test_query_with_filters(indexed):
    data = json.loads(indexed("query", "recognition", "--provider", "Reuters", "--json").output)
    assert {h["provider"] for h in data["hits"]} == {"Reuters"}


def test_related_and_show(indexed):
    related = indexed("related", IBM, "--limit", "3")
    assert related.exit_code == 0 and related.output.count("\n") >= 4
    show = json.loads(indexed("show", IBM, "--json").output)
    assert show["title"] == IBM_TITLE and len(show["related_articles"]) == 4
    assert "Listed as related by the publisher" in indexed("show", IBM).output


def test_stats(indexed):
    result = indexed("stats")
    assert result.exit_code == 0 and "articles" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "AAAAAAAAAAA"), "no article with id"),
        (("related", "not-an-id"), "is not an article id"),
        (("query", "x", "--since", "yesterday"), "is not a date"),
        (("query", "x", "--limit", "0"), "limit"),
    ],
)
def test_errors_are_one_line_without_traceback(indexed, args, message):
    result = indexed(*args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_index_is_a_clear_error(cli):
    result = cli("query", "x")
    assert result.exit_code == 1 and "search-cli index" in result.output


def test_delete(indexed):
    result = indexed("delete", IBM)
    assert result.exit_code == 0 and "Removed 1" in result.output
    assert indexed("show", IBM).exit_code == 1


def test_eval_on_the_toy_collection(cli):
    toy = SEEDS.parent / "tests" / "data" / "toy_beir"
    data = json.loads(cli("eval", toy, "--mode", "all", "--json").output)
    assert set(data["modes"]) == {"keyword", "semantic", "hybrid"}
    assert all(0 < m["mean"]["ndcg@10"] <= 1 for m in data["modes"].values())
    human = cli("eval", toy, "--mode", "keyword", "--fusion", "rrf")
    assert human.exit_code == 0 and "nDCG@10" in human.output and "fusion=rrf" in human.output


def test_eval_related_on_a_news_folder(cli):
    result = cli("eval", SEEDS)
    assert result.exit_code == 0 and "recall@10" in result.output


def test_query_says_no_results_and_suggests_and_notes_corrections(indexed):
    nothing = indexed("query", "xqzv")
    assert nothing.exit_code == 0 and "No results for 'xqzv'." in nothing.output
    assert 'Did you mean: "export controls"' in indexed("query", '"export contrls"').output
    corrected = indexed("query", "export contrlos")
    assert "Including results for 'controls' (you typed 'contrlos')." in corrected.output
    assert IBM_TITLE in corrected.output


# -- indexing exports: formats, field mapping, standard input, exit status ---------------------------------
EXPORTS = SEEDS.parent / "tests" / "data" / "exports"


def test_index_says_which_source_field_filled_which_article_field(cli):
    result = cli("index", EXPORTS / "news.jsonl")
    assert result.exit_code == 0, result.output
    assert "Indexed 5 new" in result.output
    assert "title <- headline (5)" in result.output and "published <- date (5)" in result.output
    assert "authors <- authors (4)" in result.output and "topics <- category (5)" in result.output
    data = json.loads(cli("index", EXPORTS / "news.csv", "--json").output)
    assert data["fields"]["excerpt"] == {"short_description": 5} and data["articles"] == 5


def test_field_option_and_fields_section_in_search_yaml(cli, tmp_path):
    source = tmp_path / "custom.jsonl"
    source.write_text(json.dumps({"hed": "Custom names", "meta": {"href": "https://x.org/c"}, "dek": "The dek."}))
    (tmp_path / "search.yaml").write_text("fields:\n  title: hed\n  url: meta.href\n")
    result = cli("index", source, "--field", "excerpt=dek", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["fields"] == {"title": {"hed": 1}, "url": {"meta.href": 1}, "excerpt": {"dek": 1}}
    show = json.loads(cli("show", article_id("https://x.org/c"), "--json").output)
    assert (show["title"], show["excerpt"]) == ("Custom names", "The dek.")


def test_bad_field_option_is_one_line(cli):
    result = cli("index", EXPORTS / "news.jsonl", "--field", "headline")
    assert result.exit_code == 1 and "ARTICLE_FIELD=SOURCE_FIELD" in result.output and "Traceback" not in result.output
    result = cli("index", EXPORTS / "news.jsonl", "--field", "titel=headline")
    assert result.exit_code == 1 and "not an article field" in result.output


def test_index_reads_standard_input(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_DIR", str(tmp_path / "ix"))
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    feed = (EXPORTS / "news.rss").read_bytes()
    result = runner.invoke(main, ["index", "-", "--json"], input=feed)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["articles"] == 5
    csv_rows = b"headline,link\nPiped,https://x.org/piped\n"
    result = runner.invoke(main, ["index", "-", "--format", "csv"], input=csv_rows)
    assert result.exit_code == 0 and "Indexed 1 new" in result.output and "(6 articles" in result.output


def test_nothing_indexable_exits_non_zero_and_says_why(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"headline": "no link here"}\n')
    result = cli("index", bad)
    assert result.exit_code == 1 and "nothing could be indexed" in result.output and "no URL" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_an_empty_folder_warns(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("index", tmp_path / "empty")
    assert result.exit_code == 0 and "Nothing indexed" in result.output and "no article files" in result.output


def test_index_lists_warnings_with_file_and_line(cli, tmp_path):
    table = tmp_path / "dates.csv"
    table.write_text("headline,link,date\nGood,https://x.org/g,2023-01-02\nOdd,https://x.org/o,31/02/2023\n")
    result = cli("index", table)
    assert result.exit_code == 0 and "Indexed 2 new" in result.output
    assert "1 warning(s):" in result.output and f"{table}:3: date '31/02/2023' is not a date" in result.output

"""search-cli through click's CliRunner, on a fresh index built with the hash embedder."""

import json
import os
from pathlib import Path

import click
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


@pytest.mark.parametrize("name", ["ix#hash", "ix?query", "ix%41", "ix %23 both#?"])
def test_index_dir_names_with_uri_characters(cli, tmp_path, name):
    assert cli("index", SEEDS, "--index-dir", name).exit_code == 0
    result = cli("stats", "--index-dir", name, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["articles"] > 0
    assert cli("query", "export controls", "--index-dir", name).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no stray file named after part of the path


def generations(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))


def test_delete_of_unknown_ids_says_not_found_and_changes_nothing(indexed, tmp_path):
    root = tmp_path / "ix"
    before = (generations(root), (root / "CURRENT").read_text())
    unknown = [article_id(f"https://nowhere.example/{n}") for n in range(2)]
    result = indexed("delete", *unknown)
    assert result.exit_code == 0, result.output
    assert f"Not found (nothing to remove): {unknown[0]}, {unknown[1]}" in result.output
    assert "unchanged" in result.output and "Removed" not in result.output
    assert (generations(root), (root / "CURRENT").read_text()) == before


def test_delete_reports_the_unknown_among_known_ids(indexed):
    result = indexed("delete", IBM, "AAAAAAAAAAA")
    assert result.exit_code == 0
    assert "Not found (nothing to remove): AAAAAAAAAAA" in result.output and "Removed 1 article(s)" in result.output


def test_delete_reports_malformed_ids_and_removes_the_others(indexed):
    result = indexed("delete", IBM, "not-an-id", "CWBiM3PCzZB")  # the last has the form of an id, but no URL gives it
    assert result.exit_code == 0, result.output
    assert "Not article ids (nothing to remove): not-an-id, CWBiM3PCzZB" in result.output
    assert "Removed 1 article(s)" in result.output
    assert indexed("delete", "not-an-id").exit_code == 1
    show = indexed("show", "CWBiM3PCzZB")
    assert show.exit_code == 1 and "it has their form" in show.output and "no URL gives it" in show.output


def test_delete_against_a_missing_index_creates_nothing(cli, tmp_path):
    result = cli("delete", IBM, "--index-dir", tmp_path / "nowhere")
    assert result.exit_code == 1 and "No index in" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_a_model_that_fails_to_load_is_one_line(indexed, tmp_path, monkeypatch):
    """The query model loads in a thread while the index opens; its error still ends the command cleanly."""
    monkeypatch.setenv("SEARCH_QUERY_EMBEDDER", "onnx")
    monkeypatch.setenv("SEARCH_MODEL_PATH", str(tmp_path / "no-model"))
    result = indexed("query", "export controls")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "does not exist" in result.output
    keyword = indexed("query", "export controls", "--mode", "keyword")  # its match set needs meaning too
    assert keyword.exit_code == 1 and len(keyword.output.strip().splitlines()) == 1


def test_the_query_path_imports_no_yaml_or_torch():
    """Import structure of a cold query: what it does not need, it does not load."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import search.cli, search.service, search.store, search.embedding\n"
        "unwanted = ('yaml', 'torch', 'transformers', 'sentence_transformers', 'flask')\n"
        "print(sorted(m for m in unwanted if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=SEEDS.parent)
    assert out.stdout.strip() == "[]"


def test_readme_cli_section_is_generated_from_the_commands():
    readme = (SEEDS.parent / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- cli-usage:start -->\n", "<!-- cli-usage:end -->"
    section = readme[readme.index(start) + len(start) : readme.index(end)]
    usage = CliRunner().invoke(main, ["usage"]).output
    assert section == usage, "README's CLI section is stale: paste the output of `search-cli usage` between the markers"
    for name, command in main.commands.items():
        if not command.hidden:
            assert f"search-cli {name} " in usage or f"search-cli {name}\n" in usage
            for param in command.params:
                if param.name != "help" and isinstance(param, click.Option):
                    assert max(param.opts, key=len) in usage, f"{name}: {param.opts} missing from the synopsis"


def _as_a_process(args, cwd):
    """``search-cli ARGS`` in a real process, with an exit hook that says whether teardown ran."""
    import subprocess
    import sys

    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('TEARDOWN', file=sys.stderr))\n"
        "from search.cli import entry\n"
        "sys.argv = ['search-cli', *sys.argv[1:]]\n"
        "entry()\n"
    )
    env = {**os.environ, "SEARCH_QUERY_EMBEDDER": "hash", "SEARCH_INDEX_EMBEDDER": "hash"}
    command = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def test_read_only_commands_exit_without_teardown_and_lose_no_output(indexed, tmp_path):
    root = SEEDS.parent
    ix = tmp_path / "ix"
    done = _as_a_process(["query", "export controls", "--json", "--index-dir", ix], root)
    assert done.returncode == 0 and "TEARDOWN" not in done.stderr
    assert json.loads(done.stdout)["hits"][0]["title"] == IBM_TITLE  # all of it, flushed
    failed = _as_a_process(["show", "AAAAAAAAAAA", "--index-dir", ix], root)
    assert failed.returncode == 1 and "no article with id" in failed.stderr and "TEARDOWN" not in failed.stderr
    written = _as_a_process(["index", SEEDS, "--index-dir", ix], root)
    assert written.returncode == 0 and "TEARDOWN" in written.stderr  # a writer exits the ordinary way


def test_a_search_loads_no_module_it_does_not_use(indexed, tmp_path):
    """numpy's set functions import numpy.ma (about 80 ms of a cold query); the query path avoids them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from search.cli import main\n"
        "for mode in ('hybrid', 'keyword', 'semantic'):\n"
        "    out = CliRunner().invoke(main, ['query', 'export controls', '--mode', mode, '--index-dir', sys.argv[1]])\n"
        "    assert out.exit_code == 0, out.output\n"
        "print(sorted(m for m in ('numpy.ma', 'yaml', 'flask') if m in sys.modules))"
    )
    env = {**os.environ, "SEARCH_QUERY_EMBEDDER": "hash", "SEARCH_INDEX_EMBEDDER": "hash"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ix")], cwd=SEEDS.parent, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_changed_field_mapping_reads_the_files_again(cli, tmp_path):
    source = tmp_path / "custom.jsonl"
    source.write_text(json.dumps({"headline": "Mapped", "link": "https://x.org/m", "dek": "The dek.", "by": "Ann"}))
    assert "Indexed 1 new" in cli("index", source, "--field", "excerpt=by").output
    again = cli("index", source, "--field", "excerpt=dek")  # the file did not change; how it is read did
    assert again.exit_code == 0 and "0 new, 1 updated" in again.output, again.output
    assert json.loads(cli("show", article_id("https://x.org/m"), "--json").output)["excerpt"] == "The dek."
    assert "1 files read, 0 changed" in cli("index", source, "--field", "excerpt=dek").output


def test_standard_input_read_in_another_format_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_DIR", str(tmp_path / "ix"))
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    lines = "".join(json.dumps({"headline": f"Line {n}", "link": f"https://x.org/{n}"}) + "\n" for n in range(3))
    runner = CliRunner()
    wrong = runner.invoke(main, ["index", "-", "--format", "json"], input=lines)  # one JSON document: the first line
    assert "Indexed 1 new" in wrong.output
    right = runner.invoke(main, ["index", "-", "--format", "jsonl"], input=lines)
    assert right.exit_code == 0 and "Indexed 2 new" in right.output, right.output


def test_markdown_files_without_a_url_are_told_apart_by_their_folder(cli, tmp_path):
    for year in ("2023", "2024"):
        (tmp_path / "notes" / year).mkdir(parents=True)
        (tmp_path / "notes" / year / "report.md").write_text(f"---\ntitle: Annual report {year}\n---\nBody.\n")
    result = cli("index", tmp_path / "notes")
    assert result.exit_code == 0 and "Indexed 2 new" in result.output
    for year in ("2023", "2024"):
        assert cli("show", article_id(f"file:///{year}/report.md")).exit_code == 0


def test_an_index_inside_the_folder_indexed_is_not_read_as_articles(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.md").write_text('---\ntitle: One\nwebUrl: "https://x.org/one"\n---\n')
    runner = CliRunner()
    for _ in range(2):  # the second run finds index/ (the default index_dir) under "."
        result = runner.invoke(main, ["index", ".", "--strict"])
        assert result.exit_code == 0 and "Skipped 0 bad" in result.output, result.output


def test_an_index_dir_that_is_a_file_is_one_line(cli, tmp_path):
    (tmp_path / "plain").write_text("not an index")
    for args in (("index", SEEDS), ("query", "x"), ("stats",)):
        for where in ("plain", "plain/sub"):
            result = cli(*args, "--index-dir", tmp_path / where)
            assert result.exit_code == 1 and "not a directory" in result.output and "Traceback" not in result.output


def test_a_query_may_start_with_an_excluded_word(indexed):
    plain = json.loads(indexed("query", "facial recognition", "--json", "--no-collapse").output)
    excluding = indexed("query", "-ibm facial recognition", "--json", "--no-collapse")
    assert excluding.exit_code == 0, excluding.output
    titles = [h["title"] for h in json.loads(excluding.output)["hits"]]
    assert IBM_TITLE in [h["title"] for h in plain["hits"]] and IBM_TITLE not in titles and titles
    assert indexed("query", "x", "--limt", "3").exit_code == 2  # a misspelled option is still refused


def test_a_read_only_index_answers_queries_and_refuses_writes_in_one_line(indexed, monkeypatch):
    import errno

    import search.generations as gen

    real_open = os.open

    def read_only(path, flags, *args):  # as on a read-only volume: nothing can be created or opened for writing
        if flags & (os.O_CREAT | os.O_RDWR | os.O_WRONLY):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    for lock in Path(os.environ["SEARCH_INDEX_DIR"]).glob("gen-*/readers.lock"):
        lock.unlink()  # no reader has made the lock file yet
    monkeypatch.setattr(gen.os, "open", read_only)
    result = indexed("query", "export controls")
    assert result.exit_code == 0 and IBM_TITLE in result.output, result.output
    assert indexed("stats").exit_code == 0
    write = indexed("index", SEEDS)
    assert write.exit_code == 1 and "cannot write the index" in write.output and "Traceback" not in write.output


def test_eval_of_a_folder_with_nothing_to_evaluate_says_so(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("eval", tmp_path / "empty")
    assert result.exit_code == 1 and "nothing to evaluate" in result.output
    assert "search-eval-" not in result.output and len(result.output.strip().splitlines()) == 1


def test_serve_refuses_bad_ports_and_threads_and_a_taken_port_in_one_line(indexed):
    import socket

    for args in (("--port", "99999"), ("--port", "-1"), ("--threads", "0")):
        result = indexed("serve", *args)
        assert result.exit_code == 2 and "Invalid value" in result.output and "Traceback" not in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = indexed("serve", "--port", port)
    assert result.exit_code == 1 and f"cannot serve on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1

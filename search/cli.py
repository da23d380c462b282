"""search-cli: index news articles and search them from the command line.

The only module that prints or exits. Heavy modules are imported inside the commands so
that ``--help`` and keyword queries stay fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps

import click

from search.config import MODES, load_settings
from search.errors import SearchError


def _fail_cleanly(func: Callable) -> Callable:
    """Library errors become one-line ClickExceptions (exit 1), never tracebacks."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SearchError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted - the previous index generation is intact") from None

    return wrapper


index_dir_option = click.option(
    "--index-dir", default=None, help="Index directory (default: setting index_dir, 'index')."
)
config_option = click.option(
    "--config", "config_file", default=None, help="YAML settings file (default: search.yaml if present)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON the web API returns.")


def _settings(config_file: str | None, **overrides):
    return load_settings(config_file, **overrides)


def _service(config_file: str | None, index_dir: str | None, **overrides):
    from search.service import SearchService

    return SearchService(_settings(config_file, index_dir=index_dir, **overrides))


def _print_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="news-search", prog_name="search-cli")
def main() -> None:
    """Keyword, semantic and hybrid search over news articles."""


@main.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@index_dir_option
@config_option
@click.option("--strict", is_flag=True, help="Fail (and write nothing) if any file is bad.")
@click.option("--prune", is_flag=True, help="Remove articles whose source files under PATHS are gone.")
@click.option("--rebuild", is_flag=True, help="Build from scratch instead of updating the live index.")
@click.option("--wait", type=float, default=0.0, show_default=True, help="Seconds to wait for another writer.")
@json_option
@_fail_cleanly
def index_command(paths, index_dir, config_file, strict, prune, rebuild, wait, as_json):
    """Index article files (Markdown + YAML front matter, or JSON Lines) under PATHS.

    An existing index is updated: new articles are added, changed ones replaced,
    unchanged ones left alone. The new index is swapped in atomically.
    """
    from search.indexer import Indexer

    settings = _settings(config_file, index_dir=index_dir)
    bar = _ProgressBars(enabled=not as_json)
    report = Indexer(settings).index(paths, strict=strict, prune=prune, rebuild=rebuild, wait=wait, progress=bar)
    bar.close()
    if as_json:
        _print_json(report.to_dict())
        return
    click.echo(
        f"Indexed {report.added} new, {report.updated} updated, {report.removed} removed "
        f"({report.articles} articles in {settings.index_dir}/{report.generation}); "
        f"{report.files} files read, {report.files_changed} changed."
    )
    click.echo(f"Embedded {report.embedded} texts ({report.cache_hits} from cache).")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in report.stages.items())
    click.echo(f"Time {report.seconds:.2f}s, {report.docs_per_second:.0f} docs/s ({stages}).")
    click.echo(f"Skipped {len(report.skipped)} bad file(s)" + (":" if report.skipped else "."))
    for reason in report.skipped:
        click.echo(f"  {reason}")


class _ProgressBars:
    """One click progress bar per indexing stage, on stderr."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None
        self._stage = ""
        self._done = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self._stage:
            self.close()
            self._bar = click.progressbar(length=total, label=f"{stage:>6}", file=sys.stderr)
            self._bar.__enter__()
            self._stage, self._done = stage, 0
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@main.command()
@click.argument("text")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--limit", type=int, default=10, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--provider", default=None, help="Only articles from this provider (exact name).")
@click.option("--topic", default=None, help="Only articles with this topic.")
@click.option("--since", default=None, help="Published on or after this date (YYYY-MM-DD).")
@click.option("--until", default=None, help="Published on or before this date (YYYY-MM-DD).")
@click.option("--sort", type=click.Choice(["relevance", "newest"]), default="relevance", show_default=True)
@index_dir_option
@config_option
@json_option
@_fail_cleanly
def query(text, mode, limit, offset, provider, topic, since, until, sort, index_dir, config_file, as_json):
    """Search for TEXT. Words are OR-ed; "quoted phrases", field:value, AND/OR/NOT work."""
    with _service(config_file, index_dir) as service:
        results = service.search(
            text,
            mode=mode,
            limit=limit,
            offset=offset,
            provider=provider,
            topic=topic,
            since=since,
            until=until,
            sort=sort,
        )
    if as_json:
        _print_json(results.to_dict())
        return
    shown = f"{results.offset + 1}-{results.offset + len(results.hits)} of " if results.hits else ""
    click.echo(f"{shown}{results.total} results ({results.mode}, {results.took_ms:.0f} ms)")
    _print_hits(results.hits)


@main.command()
@click.argument("article_id")
@click.option("--limit", type=int, default=10, show_default=True)
@index_dir_option
@config_option
@json_option
@_fail_cleanly
def related(article_id, limit, index_dir, config_file, as_json):
    """Articles like the stored article ARTICLE_ID ("more like this")."""
    with _service(config_file, index_dir) as service:
        results = service.related(article_id, limit=limit)
    if as_json:
        _print_json(results.to_dict())
        return
    click.echo(f"Related to: {results.query}")
    _print_hits(results.hits)


@main.command()
@click.argument("article_id")
@index_dir_option
@config_option
@json_option
@_fail_cleanly
def show(article_id, index_dir, config_file, as_json):
    """Show one stored article and the related items its publisher listed."""
    with _service(config_file, index_dir) as service:
        article = service.get(article_id)
        listed = service.get_many(list(article.related))
    if as_json:
        _print_json(dict(article.to_dict(), related_articles=[a.to_dict() for a in listed]))
        return
    click.echo(article.title)
    click.echo(f"{article.provider} · {_date(article.published)} · {article.url}")
    if article.topics:
        click.echo("Topics: " + ", ".join(article.topics))
    if article.excerpt:
        click.echo("\n" + article.excerpt)
    if listed:
        click.echo("\nListed as related by the publisher:")
        for a in listed:
            click.echo(f"  - {a.title} [{a.id}]")


@main.command()
@index_dir_option
@config_option
@json_option
@_fail_cleanly
def stats(index_dir, config_file, as_json):
    """Counts and facts about the live index."""
    with _service(config_file, index_dir) as service:
        data = service.stats()
    if as_json:
        _print_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        click.echo(f"{key:<{width}}  {value}")


@main.command()
@click.argument("ids", nargs=-1, required=True)
@index_dir_option
@config_option
@click.option("--wait", type=float, default=0.0, show_default=True, help="Seconds to wait for another writer.")
@_fail_cleanly
def delete(ids, index_dir, config_file, wait):
    """Remove articles by id.

    An article comes back if its source file changes and is indexed again, or on --rebuild.
    """
    from search.indexer import Indexer
    from search.urls import is_valid_id

    bad = [i for i in ids if not is_valid_id(i)]
    if bad:
        raise click.ClickException(f"not an article id: {bad[0]!r}")
    report = Indexer(_settings(config_file, index_dir=index_dir)).delete(ids, wait=wait)
    click.echo(f"Removed {report.removed} article(s); {report.articles} remain ({report.generation}).")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--threads", type=int, default=4, show_default=True, help="Worker threads of the WSGI server (4 beat 8 on 2 cores)."
)
@index_dir_option
@config_option
@_fail_cleanly
def serve(host, port, threads, index_dir, config_file):
    """Serve the web UI and the JSON API with waitress (a production WSGI server)."""
    from waitress import serve as waitress_serve

    from web.app import create_app

    settings = _settings(config_file, index_dir=index_dir)
    _limit_malloc_arenas()
    app = create_app(settings)
    click.echo(f"Serving {settings.index_dir}/ on http://{host}:{port}/ (Ctrl-C to stop)")
    waitress_serve(app, host=host, port=port, threads=threads, ident="news-search")


@main.command()
@config_option
@click.option("--markdown", is_flag=True, help="Print the README's table of settings and defaults.")
@_fail_cleanly
def settings(config_file, markdown):
    """Show every setting: its effective value (file, environment) and what it does."""
    from search.config import settings_table

    effective = _settings(config_file)
    if markdown:
        click.echo("| name | default | meaning |\n|---|---|---|")
        for name, default, help_text in settings_table():
            click.echo(f"| `{name}` | `{default}` | {help_text} |")
        return
    for name, _default, help_text in settings_table():
        click.echo(f"{name} = {getattr(effective, name)!r}\n    {help_text}")


@main.command("eval")
@click.argument("path", type=click.Path(exists=True))
@click.option("--mode", type=click.Choice([*MODES, "all"]), default="all", show_default=True)
@click.option("--fusion", type=click.Choice(["convex", "rrf"]), default=None, help="Override the fusion setting.")
@click.option("--alpha", type=float, default=None, help="Override the semantic weight of convex fusion.")
@click.option(
    "--corpus", type=click.Path(exists=True), default=None, help="Stories: the articles (default: the gold's)."
)
@click.option("--keep-index", default=None, help="Build the evaluation index here and keep it (default: a temp dir).")
@config_option
@json_option
@_fail_cleanly
def eval_command(path, mode, fusion, alpha, corpus, keep_index, config_file, as_json):
    """Measure ranking or story quality on PATH.

    A BEIR collection (corpus.jsonl, queries.jsonl, qrels/test.tsv) gives nDCG@10, Recall@100
    and MRR@10 per mode over its judged queries. A folder of news articles gives Recall@10 and
    MRR@10 of "more like this" against the related items their publishers listed. A story gold
    file (JSON with "stories"), or a folder of them, gives pairwise and B-cubed precision, recall
    and F1 of story detection (and of the cosine baseline), and the clusters it got wrong; with
    --keep-index DIR the article vectors are cached in DIR for the next run.
    """
    from pathlib import Path

    from search.story_eval import is_story_gold

    settings = _settings(config_file, fusion=fusion, alpha=alpha)
    if is_story_gold(path):
        result, text = _eval_stories(path, corpus, keep_index, settings)
    elif Path(path).is_dir():
        from search.evaluation import format_report, run_beir, run_related

        if (Path(path) / "corpus.jsonl").is_file():
            result = run_beir(path, settings, mode, index_dir=keep_index)
        else:
            result = run_related(path, settings, index_dir=keep_index)
        text = format_report(result)
    else:
        raise click.ClickException(f"{path} is neither a folder nor a story gold file (JSON with 'stories')")
    click.echo(json.dumps(result, indent=2, ensure_ascii=False) if as_json else text)


def _eval_stories(path, corpus, keep_index, settings) -> tuple[dict, str]:
    from search.embedding import load_embedder
    from search.story_eval import format_stories, run_stories

    embedder = load_embedder(
        settings.index_embedder, settings.model_path or None, settings.model_cache or None, threads=1
    )
    result = run_stories(path, embedder, corpus=corpus, cache_dir=keep_index)
    return result, format_stories(result)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas before the server starts its threads.

    Each thread otherwise gets an arena of its own that keeps freed memory, and the
    resident size of a long-running server creeps up (bench/soak.py measured it).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).mallopt(-8, arenas)  # M_ARENA_MAX
        except (OSError, AttributeError):
            pass  # not glibc: nothing to tune


def _print_hits(hits) -> None:
    if not hits:
        click.echo("No results. Try fewer or more general words, or --mode semantic.")
    for hit in hits:
        a = hit.article
        click.echo(f"{hit.rank:>3}. {a.title}")
        click.echo(f"     {a.provider or 'unknown provider'} · {_date(a.published)} · {a.url}  [{a.id}]")


def _date(value) -> str:
    return value.date().isoformat() if value else "no date"


if __name__ == "__main__":  # pragma: no cover
    main()

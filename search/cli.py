"""search-cli: index news articles and search them from the command line.

The only module that prints or exits. Heavy modules are imported inside the commands so
that ``--help`` and keyword queries stay fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from functools import wraps

import click

from search.config import BACKENDS, MODES, load_settings
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


_state = {"read_only": False}  # set by a read-only command: then the process may exit without teardown


def _read_only(func: Callable) -> Callable:
    """Mark a command that writes nothing (see ``entry``)."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        _state["read_only"] = True
        return func(*args, **kwargs)

    return wrapper


def entry() -> None:
    """The ``search-cli`` program: ``main``, then, after a read-only command, an exit without the
    interpreter's teardown. Unloading numpy, FAISS, Whoosh and ONNX Runtime takes longer than a
    warm query (measured: 0.38 s against 0.04 s, machine under load), and a read-only command
    leaves nothing to write but its output, which is flushed first."""
    try:
        main()
    except SystemExit as done:
        if not _state["read_only"]:
            raise
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (| head): nothing more to say
                pass
        os._exit(code)


index_dir_option = click.option(
    "--index-dir", default=None, metavar="DIR", help="Index directory (default: setting index_dir, 'index')."
)
backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Where the index lives: local (--index-dir) or qdrant (the qdrant_* settings); default: setting backend.",
)
config_option = click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE",
    help="YAML settings file (default: search.yaml if present).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON the web API returns.")


def _settings(config_file: str | None, **overrides):
    return load_settings(config_file, **overrides)


@contextmanager
def _service(config_file: str | None, index_dir: str | None, embeds: bool = False, backend: str | None = None):
    """The service for one command. ``embeds``: the command embeds text, so the model starts loading
    now, in a thread, while the engines are imported and the index opened (a cold query's start-up)."""
    settings = _settings(config_file, index_dir=index_dir, backend=backend)
    embedder = _load_in_background(settings) if embeds else None
    from search.service import SearchService

    service = SearchService(settings, embedder)
    try:
        yield service
    finally:
        if embedder is not None:
            embedder.wait()  # never leave the loader running into interpreter shutdown
        service.close()


def _load_in_background(settings):
    import numpy  # noqa: F401 - before the thread starts, so the two threads never wait on one import

    from search.embedding import BackgroundEmbedder, load_embedder

    s = settings
    return BackgroundEmbedder(
        lambda: load_embedder(s.query_embedder, s.model_path or None, s.model_cache or None, threads=s.threads)
    )


def _print_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="news-search", prog_name="search-cli")
def main() -> None:
    """Keyword, semantic and hybrid search over news articles."""


@main.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@index_dir_option
@backend_option
@config_option
@click.option(
    "--field",
    "field_specs",
    multiple=True,
    metavar="ARTICLE=SOURCE",
    help="Read an article field from this source field (dotted for nested ones), e.g. title=headline. Repeatable.",
)
@click.option(
    "--format",
    "stdin_format",
    type=click.Choice(["markdown", "jsonl", "json", "csv", "feed"]),
    default=None,
    help="Format of standard input (PATH '-'); default: guessed from its first bytes.",
)
@click.option("--strict", is_flag=True, help="Fail (and write nothing) if any file or record is bad.")
@click.option("--prune", is_flag=True, help="Remove articles whose source files under PATHS are gone.")
@click.option("--rebuild", is_flag=True, help="Build from scratch instead of updating the live index.")
@click.option(
    "--wait", type=float, default=0.0, show_default=True, metavar="SECONDS", help="Seconds to wait for another writer."
)
@click.option(
    "--merge-cache",
    "merge_cache",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="First copy in the vectors of an embedding cache that `embed --cache FILE` filled elsewhere. Repeatable.",
)
@json_option
@_fail_cleanly
def index_command(
    paths,
    index_dir,
    backend,
    config_file,
    field_specs,
    stdin_format,
    strict,
    prune,
    rebuild,
    wait,
    merge_cache,
    as_json,
):
    """Index news articles under PATHS ('-' reads standard input).

    Reads Markdown with YAML front matter, JSON Lines, JSON, CSV, RSS and Atom, gzipped or not.
    Well-known field names (headline, link, pubDate, category, byline...) are recognised; map
    others with --field. An existing index is updated: new articles are added, changed ones
    replaced, unchanged ones left alone. The new index is swapped in atomically.
    """
    from search.indexer import Indexer
    from search.mapping import FieldMap

    settings = _settings(config_file, index_dir=index_dir, backend=backend)
    if field_specs:
        fields = FieldMap(settings.fields).merged(FieldMap.parse(field_specs))
        settings = settings.with_overrides(fields=fields.explicit)
    if merge_cache:
        from search.shards import merge_caches

        merged = merge_caches(settings, merge_cache)
        if not as_json:
            click.echo(f"Merged {merged} new vectors from {len(merge_cache)} embedding cache file(s).")
    bar = _ProgressBars(enabled=not as_json)
    stdin = click.open_file("-", "rb") if "-" in paths else None
    indexer = Indexer(settings)
    report = indexer.index(
        paths,
        strict=strict,
        prune=prune,
        rebuild=rebuild,
        wait=wait,
        progress=bar,
        stdin=stdin,
        stdin_format=stdin_format or "",
    )
    bar.close()
    if as_json:
        _print_json(report.to_dict())
        return
    _print_index_report(report, _where(settings, report.generation))


@main.command("embed")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--shard", "shard_spec", default="1/1", show_default=True, metavar="I/N", help="Embed shard I of N.")
@click.option(
    "--cache",
    "cache_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Embedding cache to fill; default: the index's own (index_dir/cache/embeddings.sqlite).",
)
@index_dir_option
@config_option
@click.option("--field", "field_specs", multiple=True, metavar="ARTICLE=SOURCE", help="As for index. Repeatable.")
@json_option
@_fail_cleanly
def embed_command(paths, shard_spec, cache_file, index_dir, config_file, field_specs, as_json):
    """Embed one shard of the articles under PATHS into the embedding cache, for a later `index`.

    Parallel ingestion: run one `embed --shard I/N` per worker process or machine (N in all), then
    one `index PATHS`, which finds every vector in the cache. An article's shard is a hash of its
    URL. Workers take no writer lock and write no index; texts cached already are skipped.
    """
    from search.embedding import load_embedder
    from search.mapping import FieldMap
    from search.shards import Shard, embed_shard

    shard = Shard.parse(shard_spec)
    settings = _settings(config_file, index_dir=index_dir)
    if field_specs:
        fields = FieldMap(settings.fields).merged(FieldMap.parse(field_specs))
        settings = settings.with_overrides(fields=fields.explicit)
    model = (settings.model_path or None, settings.model_cache or None)
    embedder = load_embedder(settings.index_embedder, *model, threads=1)  # one thread: a worker per core
    bar = _ProgressBars(enabled=not as_json)
    report = embed_shard(paths, shard, settings, embedder, cache_path=cache_file, progress=bar)
    bar.close()
    if as_json:
        _print_json(report.to_dict())
        return
    click.echo(
        f"Shard {report.shard}: {report.articles} articles from {report.records} records in {report.files} files; "
        f"embedded {report.embedded} texts ({report.cache_hits} cached already) into {report.cache} "
        f"in {report.seconds:.2f}s; {report.skipped_count} bad file(s) or record(s) skipped."
    )


SHOWN_MESSAGES = 20


def _where(settings, generation: str = "") -> str:
    """Where the index (or one of its generations) lives, as the commands' messages name it."""
    if settings.backend == "qdrant":
        name = generation or settings.qdrant_collection
        return f"Qdrant {settings.qdrant_url or settings.qdrant_path}, collection {name}"
    return f"{settings.index_dir}/{generation}"


def _print_index_report(report, where: str) -> None:
    if not report.generation:
        click.echo("Nothing indexed: no article files were found, so nothing was written.")
    else:
        click.echo(
            f"Indexed {report.added} new, {report.updated} updated, {report.removed} removed "
            f"({report.articles} articles in {where}); "
            f"{report.files} files read, {report.files_changed} changed."
        )
        click.echo(f"Embedded {report.embedded} texts ({report.cache_hits} from cache).")
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in report.stages.items())
        click.echo(f"Time {report.seconds:.2f}s, {report.docs_per_second:.0f} docs/s ({stages}).")
        if "model_changed" in report.stories:
            click.echo(
                f"Stories assigned again: the index's stories came from another story model "
                f"({report.stories['model_changed']['from'] or 'not recorded'}; this release's is "
                f"{report.stories['model_changed']['to']})."
            )
    if report.fields:
        filled = "; ".join(
            f"{target} <- " + ", ".join(f"{source} ({n})" for source, n in sources.items())
            for target, sources in report.fields.items()
        )
        click.echo(f"Fields read: {filled}.")
    _print_messages(f"Skipped {report.skipped_count} bad file(s) or record(s)", report.skipped, report.skipped_count)
    if report.warnings_count:
        _print_messages(f"{report.warnings_count} warning(s)", report.warnings, report.warnings_count)


def _print_messages(title: str, messages: list[str], count: int) -> None:
    click.echo(title + (":" if count else "."))
    for message in messages[:SHOWN_MESSAGES]:
        click.echo(f"  {message}")
    if count > SHOWN_MESSAGES:
        click.echo(f"  ... and {count - SHOWN_MESSAGES} more (--json lists the first {len(messages)}).")


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


class _QueryCommand(click.Command):
    """A command whose TEXT may start with "-": ``search-cli query "-tesla robot"`` excludes a word, as the query
    syntax says, where Click would read an option it does not know. A word that starts with one "-" and is
    no option of the command is the text (misspelled long options, "--limt", are still refused)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args:
            params = {name: param for param in self.get_params(ctx) for name in (*param.opts, *param.secondary_opts)}
            for i, arg in enumerate(args):
                before = params.get(args[i - 1]) if i else None
                value_of_option = isinstance(before, click.Option) and not before.is_flag and not before.count
                if arg.startswith("-") and not arg.startswith("--") and arg not in params and not value_of_option:
                    args = [*args[:i], *args[i + 1 :], "--", arg]
                    break
        return super().parse_args(ctx, args)


@main.command(cls=_QueryCommand)
@click.argument("text")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--limit", type=int, default=10, show_default=True, metavar="N", help="Hits to show (1-100).")
@click.option("--offset", type=int, default=0, show_default=True, metavar="N", help="Hits to skip (for paging).")
@click.option("--provider", default=None, metavar="NAME", help="Only articles from this provider (exact name).")
@click.option("--topic", default=None, metavar="NAME", help="Only articles with this topic.")
@click.option("--since", default=None, metavar="DATE", help="Published on or after this date (YYYY-MM-DD).")
@click.option("--until", default=None, metavar="DATE", help="Published on or before this date (YYYY-MM-DD).")
@click.option("--sort", type=click.Choice(["relevance", "newest"]), default="relevance", show_default=True)
@click.option(
    "--collapse/--no-collapse", default=True, show_default=True, help="One hit per story, its other versions listed."
)
@index_dir_option
@backend_option
@config_option
@json_option
@_fail_cleanly
@_read_only
def query(
    text, mode, limit, offset, provider, topic, since, until, sort, collapse, index_dir, backend, config_file, as_json
):
    """Search for TEXT: articles holding most of its words or close in meaning; "quoted phrases",
    field:value, -word and AND/OR/NOT constrain every mode."""
    with _service(config_file, index_dir, embeds=True, backend=backend) as service:
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
            collapse=collapse,
        )
    if as_json:
        _print_json(results.to_dict())
        return
    for wrong, right in results.corrections.items():
        click.echo(f"Including results for {right!r} (you typed {wrong!r}).")
    if not results.total:
        click.echo(f"No results for {text!r}.")
        if results.suggestion:
            click.echo(f"Did you mean: {results.suggestion}")
        return
    shown = f"{results.offset + 1}-{results.offset + len(results.hits)} of " if results.hits else ""
    more = "+" if results.total_relation == "gte" else ""
    one = results.total == 1
    counted = ("story" if one else "stories") if results.collapse else ("result" if one else "results")
    if results.collapse:
        counted += f" ({results.total_articles} article{'' if results.total_articles == 1 else 's'})"
    click.echo(f"{shown}{results.total}{more} {counted} ({results.mode}, {results.took_ms:.0f} ms)")
    _print_hits(results.hits)


@main.command()
@click.argument("article_id")
@click.option("--limit", type=int, default=10, show_default=True, metavar="N", help="Hits to show (1-100).")
@click.option("--offset", type=int, default=0, show_default=True, metavar="N", help="Hits to skip.")
@click.option("--provider", default=None, metavar="NAME", help="Only articles from this provider.")
@click.option("--topic", default=None, metavar="NAME", help="Only articles with this topic.")
@click.option("--since", default=None, metavar="DATE", help="Published on or after this date (YYYY-MM-DD).")
@click.option("--until", default=None, metavar="DATE", help="Published on or before this date (YYYY-MM-DD).")
@index_dir_option
@backend_option
@config_option
@json_option
@_fail_cleanly
@_read_only
def related(article_id, limit, offset, provider, topic, since, until, index_dir, backend, config_file, as_json):
    """Other stories like the stored article ARTICLE_ID ("more like this"), and the other articles
    of its own story."""
    with _service(config_file, index_dir, backend=backend) as service:
        results = service.related(
            article_id, limit=limit, offset=offset, provider=provider, topic=topic, since=since, until=until
        )
    if as_json:
        _print_json(results.to_dict())
        return
    click.echo(f"Related to: {results.query}")
    if results.also_reported:
        click.echo("Also reported by:")
        for v in results.also_reported:
            click.echo(f"     {v.provider or 'unknown provider'} · {_date(v.published)} · {v.title}  [{v.id}]")
    click.echo(f"{results.total} related stories:" if results.total else "No related stories above the floor.")
    _print_hits(results.hits)


@main.command()
@click.argument("story_id")
@index_dir_option
@backend_option
@config_option
@json_option
@_fail_cleanly
@_read_only
def story(story_id, index_dir, backend, config_file, as_json):
    """One story: every article that reports it, oldest first (STORY_ID may be any of its articles)."""
    with _service(config_file, index_dir, backend=backend) as service:
        found = service.story(story_id)
    if as_json:
        _print_json(found.to_dict())
        return
    facts = found.to_dict()
    click.echo(f"{found.title}  [{found.id}]")
    click.echo(f"{facts['articles']} article(s) from {', '.join(facts['providers']) or 'unknown providers'}")
    for a in found.versions:
        click.echo(f"  {_date(a.published)}  {a.provider or 'unknown provider'} · {a.title}  [{a.id}]")


@main.command()
@click.argument("article_id")
@index_dir_option
@backend_option
@config_option
@json_option
@_fail_cleanly
@_read_only
def show(article_id, index_dir, backend, config_file, as_json):
    """Show one stored article and the related items its publisher listed."""
    with _service(config_file, index_dir, backend=backend) as service:
        detail = service.detail(article_id)
    if as_json:
        _print_json(detail.to_dict())
        return
    article, listed = detail.article, detail.listed
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
    if detail.listed_omitted:
        click.echo(f"  ... and {detail.listed_omitted} more (not shown)")


@main.command()
@index_dir_option
@backend_option
@config_option
@json_option
@_fail_cleanly
@_read_only
def stats(index_dir, backend, config_file, as_json):
    """Counts and facts about the live index."""
    with _service(config_file, index_dir, backend=backend) as service:
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
@backend_option
@config_option
@click.option(
    "--wait", type=float, default=0.0, show_default=True, metavar="SECONDS", help="Seconds to wait for another writer."
)
@_fail_cleanly
def delete(ids, index_dir, backend, config_file, wait):
    """Remove articles by id; ids not in the index are reported as not found.

    An article comes back if its source file changes and is indexed again, or on --rebuild.
    """
    from search.indexer import Indexer
    from search.urls import is_valid_id

    bad = list(dict.fromkeys(i for i in ids if not is_valid_id(i)))
    if bad:  # no article has such an id: reported, and the others removed all the same
        click.echo(f"Not article ids (nothing to remove): {', '.join(bad)}")
    ids = tuple(i for i in ids if is_valid_id(i))
    if not ids:
        raise click.ClickException("no article id given - ids are 11 characters of A-Z a-z 0-9 _ -")
    report = Indexer(_settings(config_file, index_dir=index_dir, backend=backend)).delete(ids, wait=wait)
    if report.not_found:
        click.echo(f"Not found (nothing to remove): {', '.join(report.not_found)}")
    if report.removed or len(report.not_found) < len(set(ids)):
        click.echo(f"Removed {report.removed} article(s); {report.articles} remain ({report.generation}).")
    else:
        click.echo(f"The index is unchanged: {report.articles} articles ({report.generation}).")


@main.command()
@index_dir_option
@config_option
@click.option(
    "--wait", type=float, default=0.0, show_default=True, metavar="SECONDS", help="Seconds to wait for another writer."
)
@_fail_cleanly
def export(index_dir, config_file, wait):
    """Copy the local index in --index-dir into Qdrant (the qdrant_* settings), stored vectors included.

    Nothing is embedded again. The copy is a new build behind the qdrant_collection alias, switched
    in atomically; later `index --backend qdrant` runs update it incrementally.
    """
    settings = _settings(config_file, index_dir=index_dir, backend="qdrant")
    from search.qdrant import import_local

    build, count = import_local(settings.index_path, settings, wait)
    click.echo(f"Copied {count} articles from {settings.index_dir}/ to {_where(settings, build)}.")


PORTS = click.IntRange(0, 65535)


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, metavar="HOST", help="Address to bind (loopback by default)."
)
@click.option(
    "--port", type=PORTS, default=8000, show_default=True, metavar="PORT", help="Port to bind (0: any free one)."
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    metavar="N",
    help="Worker threads of the WSGI server (4 beat 8 on 2 cores).",
)
@index_dir_option
@backend_option
@config_option
@_fail_cleanly
def serve(host, port, threads, index_dir, backend, config_file):
    """Serve the web UI and the JSON API with waitress (a production WSGI server)."""
    # One OpenMP thread per FAISS search in every server thread, not only the one that imported
    # faiss (omp_set_num_threads is per thread): read once, when faiss loads, so set it first.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from web.app import create_app
    from web.inputs import READINESS_KEY, SERVICE_KEY
    from web.server import ServeError, addresses, make_server

    settings = _settings(config_file, index_dir=index_dir, backend=backend)
    _limit_malloc_arenas()
    app = create_app(settings)
    try:
        server = make_server(app, host, port, threads)
    except ServeError as exc:
        app.extensions[READINESS_KEY].wait(30)  # the warm-up has opened the index: let it end, then close it
        app.extensions[SERVICE_KEY].close()
        raise click.ClickException(str(exc)) from None
    click.echo(f"Serving {_where(settings)} on {', '.join(addresses(server))} (Ctrl-C to stop)")
    server.run()  # until Ctrl-C (waitress then stops its threads)


@main.command()
@config_option
@click.option("--markdown", is_flag=True, help="Print the README's table of settings and defaults.")
@_fail_cleanly
def settings(config_file, markdown):
    """Show every setting: its effective value (file, environment) and what it does."""
    from search.config import SECRETS, settings_table

    effective = _settings(config_file)
    if markdown:
        click.echo("| name | default | meaning |\n|---|---|---|")
        for name, default, help_text in settings_table():
            click.echo(f"| `{name}` | `{default}` | {help_text} |")
        return
    for name, _default, help_text in settings_table():
        value = getattr(effective, name)
        shown = "'(set, hidden)'" if name in SECRETS and value else repr(value)
        click.echo(f"{name} = {shown}\n    {help_text}")


@main.command("eval")
@click.argument("path", type=click.Path(exists=True))
@click.option("--mode", type=click.Choice([*MODES, "all"]), default="all", show_default=True)
@click.option("--fusion", type=click.Choice(["convex", "rrf"]), default=None, help="Override the fusion setting.")
@click.option("--alpha", type=float, default=None, metavar="A", help="Override the semantic weight of convex fusion.")
@click.option(
    "--corpus",
    multiple=True,
    type=click.Path(exists=True),
    help="Article files to index: for a BEIR folder instead of corpus.jsonl (judged _ids are their URLs); "
    "for a story gold, instead of the gold's own corpus. Repeatable.",
)
@click.option(
    "--typos",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="JSON Lines of misspelled queries (_id, text); default: eval/typos/<collection>.jsonl if present.",
)
@click.option(
    "--keep-index",
    default=None,
    metavar="DIR",
    help="Build the evaluation index here and keep it (default: a temp dir).",
)
@backend_option
@config_option
@json_option
@_fail_cleanly
def eval_command(path, mode, fusion, alpha, corpus, typos, keep_index, backend, config_file, as_json):
    """Measure ranking or story quality on PATH.

    A BEIR collection (corpus.jsonl, queries.jsonl, qrels/test.tsv) gives, per mode and over its
    judged queries: nDCG@10, Recall@100, MRR@10, precision@10 sorted by relevance and newest
    first, the mean total, whether totals hold across pages, nDCG@10 of misspelled queries and
    the results of nonsense queries. A folder of news articles gives Recall@10 and MRR@10 of
    "more like this" against the related items their publishers listed. A story gold file (JSON
    with "stories"), or a folder of them, gives pairwise and B-cubed precision, recall and F1 of
    story detection (and of the cosine baseline), and the clusters it got wrong; with
    --keep-index DIR the article vectors are cached in DIR for the next run. With --backend qdrant
    the index is built in an in-process Qdrant in a temporary folder (unless qdrant_url or
    qdrant_path is set).
    """
    from pathlib import Path

    from search.story_eval import is_story_gold

    settings = _settings(config_file, fusion=fusion, alpha=alpha, backend=backend)
    if is_story_gold(path):
        result, text = _eval_stories(path, corpus[0] if corpus else None, keep_index, settings)
    elif Path(path).is_dir():
        from search.evaluation import default_typos, format_report, run_beir, run_related

        if (Path(path) / "corpus.jsonl").is_file():
            typos = typos or default_typos(path)
            result = run_beir(path, settings, mode, index_dir=keep_index, corpus=corpus, typos=typos)
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


@main.command(hidden=True)
def usage():
    """Print the README's CLI section, generated from these commands."""
    click.echo(usage_markdown(), nl=False)


def usage_markdown(width: int = 100) -> str:
    """A synopsis line per command (options and arguments as click defines them), then what each does."""
    commands = [(name, cmd) for name, cmd in main.commands.items() if not cmd.hidden]
    lines = ["```sh"]
    for name, cmd in commands:
        lines.extend(_synopsis(name, cmd, width))
    lines += ["```", "", "| command | what it does |", "|---|---|"]
    lines += [f"| `{name}` | {_summary(cmd)} |" for name, cmd in commands]
    return "\n".join(lines) + "\n"


def _summary(cmd: click.Command) -> str:
    """The first paragraph of a command's help, on one line, fit for a Markdown table cell."""
    return " ".join((cmd.help or "").split("\n\n")[0].split()).replace("|", "\\|")


def _synopsis(name: str, cmd: click.Command, width: int) -> list[str]:
    head = f"search-cli {name}"
    words = []
    for param in cmd.params:
        if isinstance(param, click.Argument):
            word = param.name.upper() + ("..." if param.nargs == -1 else "")
            words.append(word if param.required else f"[{word}]")
        elif isinstance(param, click.Option) and param.name != "help":
            flag = max(param.opts, key=len)
            if param.is_flag:
                words.append(f"[{flag}]")
            else:
                kind = param.type
                choices = "|".join(kind.choices) if isinstance(kind, click.Choice) else ""
                words.append(f"[{flag} {param.metavar or choices or kind.name.upper()}]")
    lines, line = [], head
    for word in words:
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = " " * len(head)
        line += " " + word
    return [*lines, line]


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
    for hit in hits:
        a = hit.article
        click.echo(f"{hit.rank:>3}. {a.title}")
        click.echo(f"     {a.provider or 'unknown provider'} · {_date(a.published)} · {a.url}  [{a.id}]")
        if hit.versions:
            others = ", ".join(sorted({v.provider for v in hit.versions if v.provider})) or "the same provider"
            more = f"{len(hit.versions)} more matching version(s)"
            click.echo(f"     + {more} of this story ({others})  [story {a.story}]")


def _date(value) -> str:
    return value.date().isoformat() if value else "no date"


if __name__ == "__main__":  # pragma: no cover
    entry()

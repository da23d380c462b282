"""Kill -9 the writer at random moments: the index must always hold a whole generation.

A corpus of seeds/ plus a few hundred generated articles (and a JSON Lines update stream) is
indexed once. Then, in a bounded loop, files are changed, added, removed or broken and
``search-cli index`` is started in a subprocess and SIGKILLed after a delay drawn from a seeded
RNG, spread (stratified) over the measured duration of a whole run. After every kill:

- the live generation passes ``search.indexer.verify`` (checksums, store ids == Whoosh ids ==
  FAISS ids, the manifest count) and a fresh SearchService answers from it;
- it holds exactly the old state or exactly the new one, compared as {id: content_hash}
  against a from-scratch merge of the files (``load_file`` + ``merge_records``);
- a reader opened before the loop keeps answering, and follows the swaps;
- a follow-up ``search-cli index`` completes, leaves exactly the new state (no article lost)
  and no leftover temporary or old generation.

The same is then done to ``search-cli delete``. The hash embedder keeps it model-free.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import SEEDS, fake_settings
from search import generations as gen
from search.embedding import HashEmbedder
from search.errors import IndexCorrupt
from search.indexer import Indexer, verify
from search.loader import iter_article_files, load_file
from search.merge import merge_records
from search.service import SearchService
from search.store import ArticleStore

SEED = 20240606
GENERATED = 600  # small Markdown articles, on top of seeds/
INDEX_KILLS = 24
MAX_ITERATIONS = 40  # runs that finish before their kill do not count; bounded all the same
REMEASURE_EVERY = 6
DELETE_KILLS = 6
BEFORE_BUILD = "before the build (start-up, scan)"
RUN_TIMEOUT = 60.0  # seconds for one complete CLI run
LOOP_BUDGET = 240.0  # seconds for the whole kill loop; the loop stops early rather than overrun

WORDS = (
    "export controls chips robot vision speech model neural privacy regulator market cloud data health "
    "triage hospital pilot city council ban startup funding language translation climate energy grid "
    "battery satellite drone security breach court ruling patent lab quantum sensor vehicle"
).split()
PROVIDERS = ("Reuters", "TechCrunch", "The Verge", "Wired", "IEEE Spectrum", "")
TOPICS = ("AI", "Robotics", "Policy", "Health", "Computer Vision", "Energy")


# -- the corpus ---------------------------------------------------------------------------------
class Corpus:
    """Generated article files whose content is a function of (number, version)."""

    def __init__(self, root: Path, rng: random.Random):
        self.root = root
        self.rng = rng
        self.versions: dict[int, int] = {}
        self.feed_lines = 0
        self.broken = 0
        shutil.copytree(SEEDS, root / "seeds")
        (root / "gen").mkdir()
        for n in range(GENERATED):
            self.write(n, 0)

    def path(self, n: int) -> Path:
        return self.root / "gen" / f"a{n:05d}.md"

    def write(self, n: int, version: int) -> None:
        r = random.Random(n * 7919 + version)
        title = " ".join(r.choice(WORDS) for _ in range(6)).capitalize() + f" ({n}.{version})"
        excerpt = " ".join(r.choice(WORDS) for _ in range(r.randint(10, 40)))
        topics = ", ".join(sorted(set(r.sample(TOPICS, r.randint(0, 3)))))
        text = (
            f'---\ntitle: "{title}"\nexcerpt: "{excerpt}"\nwebUrl: "https://news.example.com/{n}"\n'
            f"publishedDateTime: 2021-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T10:00:00Z\n"
            f"provider:\n  name: {r.choice(PROVIDERS)!r}\n  domain: example.com\ntopics: [{topics}]\n"
            f"quality: {r.randint(0, 100)}\n---\n\nBody of story {n}, version {version}.\n"
        )
        self.path(n).write_text(text, encoding="utf-8")
        self.versions[n] = version

    def mutate(self, kind: str) -> None:
        """Edit 20-45% of the articles, add some, maybe extend the feed or add a broken file;
        ``kind`` "prune" also deletes a few files (every run passes --prune)."""
        live = sorted(self.versions)
        for n in self.rng.sample(live, k=len(live) * self.rng.randint(20, 45) // 100):
            self.write(n, self.versions[n] + 1)
        for _ in range(self.rng.randint(0, 15)):
            self.write(max(self.versions) + 1, 0)
        if self.rng.random() < 0.4:  # the update stream: changes to known URLs and brand-new ones
            with open(self.root / "feed.jsonl", "a", encoding="utf-8") as fh:
                for _ in range(self.rng.randint(1, 10)):
                    n = self.rng.randrange(max(self.versions) + 50)
                    self.feed_lines += 1
                    line = {
                        "title": f"Stream update {self.feed_lines} on story {n}",
                        "excerpt": "From the feed.",
                        "webUrl": f"https://news.example.com/{n}?utm_source=feed",
                    }
                    fh.write(json.dumps(line) + "\n")
        if self.rng.random() < 0.2:  # a bad file is skipped, never fatal
            self.broken += 1
            (self.root / f"broken-{self.broken}.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
        if kind == "prune":
            for n in self.rng.sample(live, k=self.rng.randint(1, 8)):
                self.path(n).unlink()
                del self.versions[n]


def expected_state(articles: Path) -> dict[str, str]:
    """{id: content_hash} of a from-scratch merge of every file under ``articles``."""
    records = []
    for path in iter_article_files([articles]):
        records.extend(load_file(str(path.resolve())).records)
    return {a.id: a.content_hash for a in merge_records(records).values()}


def live_state(root: Path) -> dict[str, str]:
    lease, path = gen.lease_current(root)
    try:
        store = ArticleStore(path / gen.STORE_FILE, readonly=True)
        try:
            return {i: hashes[0] for i, hashes in store.hashes(store.ids()).items()}
        finally:
            store.close()
    finally:
        lease.release()


# -- running and killing the CLI ----------------------------------------------------------------
def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCH_")}
    env.update(SEARCH_INDEX_EMBEDDER="hash", SEARCH_QUERY_EMBEDDER="hash", PYTHONUNBUFFERED="1")
    return env


def cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "search.cli", *args]


def run_to_end(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(cli(args), cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return time.perf_counter() - started, done


def run_and_kill(args: list[str], cwd: Path, delay: float) -> bool:
    """Start the CLI, SIGKILL it after ``delay`` seconds; True if it was killed (not already done)."""
    proc = subprocess.Popen(
        cli(args), cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode in (0, -signal.SIGKILL), f"{args} failed before the kill:\n{err}"
    return proc.returncode == -signal.SIGKILL


def stage_at_kill(root: Path, before: str) -> str:
    """Where the killed writer was, judged from what it left on disk."""
    live = gen.current_name(root)
    if live != before:
        return "published"
    names = {p.name for p in root.glob("gen-*")}
    if any(n.endswith(".deleting.tmp") for n in names):
        return "removing an old generation"
    if any(not n.endswith(".tmp") and n > live for n in names):
        return "renamed, CURRENT not yet replaced"
    tmp = next((root / n for n in names if n.endswith(".tmp")), None)
    if tmp is None:
        return BEFORE_BUILD
    if (tmp / gen.MANIFEST_FILE).exists():
        return "manifest written"
    if (tmp / gen.VECTORS_FILE).exists():
        return "vectors saved"
    if (tmp / gen.KEYWORD_DIR).exists() or (tmp / gen.STORE_FILE).exists():
        return "copying and updating keyword index/store"
    return "temporary generation created"


def leftovers(root: Path, allowed: set[str]) -> set[str]:
    """Directory entries beside the live generation that should not be there."""
    keep = {gen.CURRENT, "cache", "writer.lock", gen.current_name(root)} | allowed
    return {p.name for p in root.iterdir()} - keep


# -- checks -------------------------------------------------------------------------------------
def check_opens_and_answers(settings, embedder, state: dict[str, str]) -> None:
    manifest = verify(settings.index_path)
    assert manifest.articles == len(state)
    svc = SearchService(settings, embedder)
    try:
        assert svc.health()["generation"] == gen.current_name(settings.index_path)
        assert svc.search("export controls", mode="keyword").hits
        assert len(svc.search("robot vision", mode="semantic", limit=5).hits) == 5
    finally:
        svc.close()


def diff(a: dict[str, str], b: dict[str, str]) -> str:
    return f"{len(a.keys() - b.keys())} missing, {len(b.keys() - a.keys())} extra, " + (
        f"{sum(1 for k in a.keys() & b.keys() if a[k] != b[k])} changed"
    )


class Harness:
    """One corpus, one index, one long-lived reader; runs the CLI and checks what it leaves."""

    def __init__(self, tmp_path: Path, seed: int):
        self.tmp, self.rng = tmp_path, random.Random(seed)
        self.articles, self.root = tmp_path / "articles", tmp_path / "index"
        self.articles.mkdir()
        self.corpus = Corpus(self.articles, self.rng)
        self.settings, self.embedder = fake_settings(self.root), HashEmbedder()
        self.index_args = ["index", str(self.articles), "--index-dir", str(self.root), "--prune"]
        self.durations: dict[str, float] = {}
        self.stages: Counter[str] = Counter()
        self.lost = 0
        run_to_end(self.index_args, tmp_path)
        self.state = live_state(self.root)
        assert self.state == expected_state(self.articles)
        check_opens_and_answers(self.settings, self.embedder, self.state)
        self.reader = SearchService(self.settings, self.embedder)  # long-lived, as a server holds one
        self.reader.search("export", mode="keyword")

    def close(self) -> None:
        self.reader.close()

    def measure(self) -> None:
        """Time one whole run of each kind, so the kill delays spread over all of it."""
        for kind, extra in (("update", []), ("rebuild", ["--rebuild"])):
            self.corpus.mutate(kind)
            held = self.reader.health()["generation"]
            self.durations[kind], _ = run_to_end(self.index_args + extra, self.tmp)
            self.finish(expected_state(self.articles), held, f"measuring a whole {kind} run")

    def kill_index(self, i: int, kind: str, fraction: float) -> bool:
        """Change files, start `index`, kill it at ``fraction`` of a whole run, check, finish."""
        before, old = gen.current_name(self.root), self.state
        self.corpus.mutate(kind)
        new = expected_state(self.articles)
        extra = ["--rebuild"] if kind == "rebuild" else []
        delay = fraction * self.durations["rebuild" if extra else "update"]
        killed = run_and_kill(self.index_args + extra, self.tmp, delay)
        if killed:
            self.stages[stage_at_kill(self.root, before)] += 1
        now = live_state(self.root)
        assert now in (old, new), f"run {i} ({kind}, killed at {delay:.2f}s) is neither old ({diff(now, old)}) " + (
            f"nor new ({diff(now, new)})"
        )
        held = self.check_after_kill(now)
        run_to_end(self.index_args, self.tmp)
        self.finish(new, held, f"run {i} ({kind}, killed at {delay:.2f}s)")
        return killed

    def kill_delete(self, i: int, fraction: float, duration: float) -> bool:
        old = self.state
        victims = self.rng.sample(sorted(old), self.rng.randint(1, 5))
        new = {k: v for k, v in old.items() if k not in victims}
        args = ["delete", *victims, "--index-dir", str(self.root)]
        killed = run_and_kill(args, self.tmp, fraction * duration)
        now = live_state(self.root)
        assert now in (old, new), f"delete {i}: neither old ({diff(now, old)}) nor new ({diff(now, new)})"
        held = self.check_after_kill(now)
        run_to_end(args, self.tmp)
        self.finish(new, held, f"delete {i}")
        return killed

    def check_after_kill(self, now: dict[str, str]) -> str:
        """The index opens and answers; the long-lived reader follows the swap. Returns its generation."""
        check_opens_and_answers(self.settings, self.embedder, now)
        held = self.reader.health()["generation"]
        assert held == gen.current_name(self.root)  # it moved on without a restart
        return held

    def finish(self, new: dict[str, str], held: str, what: str) -> None:
        """After a complete run: exactly the new state, nothing left behind but the generation
        the long-lived reader ``held`` during the run, and readers answer."""
        self.state = live_state(self.root)
        self.lost += len(new.keys() - self.state.keys())
        assert self.state == new, f"{what}, after the follow-up run: {diff(self.state, new)}"
        assert not leftovers(self.root, {held}), f"{what}: left behind {leftovers(self.root, {held})}"
        check_opens_and_answers(self.settings, self.embedder, self.state)
        assert self.reader.search("export controls", mode="hybrid").hits


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path, SEED)
    yield h
    h.close()


@pytest.mark.slow
def test_kill_during_index_never_loses_a_generation(harness, record_property):
    kinds = ["update"] * 14 + ["prune"] * 5 + ["rebuild"] * 5
    assert len(kinds) == INDEX_KILLS
    harness.rng.shuffle(kinds)
    slots = list(range(INDEX_KILLS))
    harness.rng.shuffle(slots)  # stratified: one delay in each 1/N-th of a whole run, in random order
    kills = completed = 0
    deadline = time.monotonic() + LOOP_BUDGET
    for i in range(MAX_ITERATIONS):
        if kills >= INDEX_KILLS or time.monotonic() > deadline:
            break
        if i % REMEASURE_EVERY == 0:  # the machine is shared: keep the whole-run times current
            harness.measure()
        fraction = (slots[i % INDEX_KILLS] + harness.rng.random()) / INDEX_KILLS
        if harness.kill_index(i, kinds[i % INDEX_KILLS], fraction):
            kills += 1
        else:
            completed += 1
    stages = dict(harness.stages)
    report = f"survived {kills} kills of `index` ({completed} runs ended before their kill); where: {stages}"
    print(f"\n{report}; articles lost: {harness.lost}")
    record_property("index_kills_survived", kills)
    record_property("index_kill_stages", json.dumps(stages))
    record_property("articles_lost", harness.lost)
    assert kills >= 20 and harness.lost == 0, report
    assert sum(n for stage, n in stages.items() if stage != BEFORE_BUILD) >= 3, report


@pytest.mark.slow
def test_kill_during_delete_and_deleted_articles_come_back(harness, record_property):
    victims = harness.rng.sample(sorted(harness.state), 3)
    held = harness.reader.health()["generation"]
    duration, _ = run_to_end(["delete", *victims, "--index-dir", str(harness.root)], harness.tmp)
    harness.finish({k: v for k, v in harness.state.items() if k not in victims}, held, "the measured delete")
    kills = attempts = 0
    while kills < DELETE_KILLS and attempts < 2 * DELETE_KILLS:  # a run that ends before its kill is re-tried
        fraction = (attempts % DELETE_KILLS + harness.rng.random()) / DELETE_KILLS
        kills += harness.kill_delete(attempts, fraction, duration)
        attempts += 1
    print(f"\nsurvived {kills} kills of `delete` ({attempts - kills} runs ended before their kill)")
    record_property("delete_kills_survived", kills)
    assert kills >= 3

    # Deleted articles come back when their files change: rewrite every file and re-index.
    for n, version in list(harness.corpus.versions.items()):
        harness.corpus.write(n, version + 1)
    for path in [*(harness.articles / "seeds").iterdir(), *harness.articles.glob("feed.jsonl")]:
        path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    held = harness.reader.health()["generation"]
    run_to_end(harness.index_args, harness.tmp)
    harness.finish(expected_state(harness.articles), held, "re-index after the deletes")
    print(f"articles lost: {harness.lost} of {len(harness.state)}")
    record_property("articles_lost", harness.lost)
    assert harness.lost == 0
    harness.reader.close()
    gen.cleanup(harness.root)
    assert not leftovers(harness.root, set())


def test_verify_names_what_is_damaged(tmp_path, article_dir):
    """The check every kill is judged by does catch damage: a changed file, a missing article."""
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, HashEmbedder()).index([article_dir])
    live = gen.require_current(settings.index_path)
    assert verify(settings.index_path).articles > 0
    vectors = live / gen.VECTORS_FILE
    good = vectors.read_bytes()
    vectors.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(IndexCorrupt, match="vectors.faiss differ from the manifest"):
        verify(settings.index_path)
    vectors.write_bytes(good)
    store = ArticleStore(live / gen.STORE_FILE)  # an article gone from the store alone, checksums updated
    store.delete([sorted(store.ids())[0]])
    store.commit()
    store.close()
    manifest = gen.read_manifest(live)
    gen.write_manifest(live, gen.Manifest(**{**manifest.to_dict(), "checksums": gen.checksums(live)}))
    with pytest.raises(IndexCorrupt, match="indexes disagree"):
        verify(settings.index_path)

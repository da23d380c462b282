"""Evaluate story detection against a gold grouping (``search-cli eval`` on a story gold file or folder).

A gold file is JSON: ``stories`` (lists of two or more canonical article URLs), ``corpus`` (the
article files, relative to the gold file), optionally ``articles`` (how many articles it covers)
and ``published`` (``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}``: only articles published in that
range are in scope). Every article in scope that no story lists is a story of its own. A gold with
no ``published`` whose ``articles`` is nearer the number of articles in the calendar months its
stories span than the corpus's size, or that gives no count and whose months hold less than half
the corpus (a month labelled in a corpus of years), is scored on those months (``gold_scope``), and
the report says so.

The corpus is read as the indexer reads it (``search.loader`` then ``search.merge``) and embedded
the way the indexer embeds it: each text on its own ONNX call, so the vectors match an index's.

``cross_validate`` leaves each gold set out in turn: the pair model's weights and its link
threshold are fitted on the other sets (with ``fit_second``, on both labellings of them) and the
left-out one is scored (``bench/stories.py`` runs it over the HuffPost months, fitted on both
labellings as the shipped model is; its pooled pairwise F1 is the figure to expect on an unlabelled
month).
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from search import metrics
from search.errors import ConfigError
from search.loader import Record, iter_article_files, load_file
from search.merge import merge_records
from search.models import Article
from search.stories import (
    DEFAULT,
    StoryConfig,
    assign_stories,
    candidate_features,
    cosine_baseline,
    stories_from_pairs,
)
from search.story_pairs import Pairs, StoryCorpus, pair_features
from search.urls import canonical_url

CACHE_FILE = Path("cache") / "embeddings.sqlite"  # where an index keeps its embedding cache


@dataclass(frozen=True)
class StoryGold:
    name: str
    path: Path
    corpus: Path
    stories: tuple[tuple[str, ...], ...]  # canonical URLs, two or more per story
    articles: int | None = None  # the number of articles the gold covers, when it says
    published: tuple[date, date] | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "corpus": str(self.corpus),
            "stories": len(self.stories),
            "articles_in_stories": sum(map(len, self.stories)),
            "articles": self.articles,
            "published": [d.isoformat() for d in self.published] if self.published else None,
        }


def is_story_gold(path: str | Path) -> bool:
    """True for a story gold file, or a folder holding at least one."""
    return bool(_gold_paths(Path(path)))


def _gold_paths(path: Path) -> list[Path]:
    candidates = [path] if path.is_file() else sorted(path.glob("*.json")) if path.is_dir() else []
    return [p for p in candidates if p.suffix == ".json" and _has_stories(p)]


def _has_stories(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("stories"), list)


def load_golds(path: str | Path, corpus: str | Path | None = None) -> list[StoryGold]:
    """The gold files at ``path`` (a file or a folder of them); ``corpus`` overrides each file's own."""
    found = _gold_paths(Path(path))
    if not found:
        raise ConfigError(f"{path} holds no story gold file (JSON with a 'stories' list)")
    return [load_gold(p, corpus) for p in found]


def load_gold(path: str | Path, corpus: str | Path | None = None) -> StoryGold:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    stories = data.get("stories") if isinstance(data, dict) else None
    if not isinstance(stories, list) or not all(_is_story(s) for s in stories):
        raise ConfigError(f"{path}: 'stories' must be a list of lists of two or more URLs")
    urls = [canonical_url(u) for s in stories for u in s]
    if len(urls) != len(set(urls)):
        raise ConfigError(f"{path}: an article is listed in two stories")
    where = corpus if corpus is not None else data.get("corpus")
    if not where:
        raise ConfigError(f"{path}: no 'corpus' - name the article files with --corpus")
    resolved = Path(where) if corpus is not None else (path.parent / str(where))
    if not resolved.exists():
        raise ConfigError(f"{path}: corpus {resolved} does not exist - pass --corpus PATH")
    return StoryGold(
        name=path.stem,
        path=path,
        corpus=resolved,
        stories=tuple(tuple(canonical_url(u) for u in s) for s in stories),
        articles=data.get("articles") if isinstance(data.get("articles"), int) else None,
        published=_date_range(data.get("published"), path),
    )


def _is_story(value: object) -> bool:
    return isinstance(value, list) and len(value) >= 2 and all(isinstance(u, str) and u for u in value)


def _date_range(value: object, path: Path) -> tuple[date, date] | None:
    if value is None:
        return None
    try:
        start, end = date.fromisoformat(value["from"]), date.fromisoformat(value["to"])
    except (TypeError, KeyError, ValueError):
        raise ConfigError(f'{path}: \'published\' must be {{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}}') from None
    return start, end


# -- the corpus ---------------------------------------------------------------------------------
def load_articles(corpus: str | Path, published: tuple[date, date] | None = None) -> list[Article]:
    """The articles an index of ``corpus`` would hold (stubs included), in date order; only those
    published in ``published`` (inclusive) when given."""
    records = list(_records(Path(corpus)))
    articles = list(merge_records(records).values())
    if published is not None:
        start, end = published
        articles = [a for a in articles if a.published is not None and start <= a.published.date() <= end]
    return sorted(articles, key=lambda a: (a.published is None, a.published or 0, a.id))


def _records(corpus: Path) -> Iterator[Record]:
    for path in iter_article_files([corpus]):
        yield from load_file(path).records


# -- vectors ------------------------------------------------------------------------------------
def article_vectors(articles: Sequence[Article], embedder, cache_dir: str | Path | None = None) -> np.ndarray:
    """Unit vectors of the articles' texts, each text embedded on its own as the indexer does.

    ``cache_dir`` keeps them in ``<cache_dir>/cache/embeddings.sqlite`` under the indexer's key, so
    an index directory's own cache is reused when given one.
    """
    from search.store import EmbeddingCache

    texts = {a.text_hash: a.text for a in articles}
    model = f"{embedder.model_id}:one-per-call"
    cache = EmbeddingCache(Path(cache_dir) / CACHE_FILE) if cache_dir is not None else None
    try:
        found = cache.get_many(model, sorted(texts), embedder.dim) if cache else {}
        missing = [h for h in texts if h not in found]
        fresh = dict(zip(missing, _embed_one_by_one(embedder, [texts[h] for h in missing]), strict=True))
        if cache and fresh:
            cache.put_many(model, fresh)
    finally:
        if cache:
            cache.close()
    found.update(fresh)
    if not articles:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([found[a.text_hash] for a in articles]).astype(np.float32)


def _embed_one_by_one(embedder, texts: list[str], workers: int = 2) -> list[np.ndarray]:
    """Each text on its own embedder call (as the indexer does: a vector depends on its text alone),
    the calls shared by ``workers`` threads like the indexer's."""
    if not texts:
        return []
    parts = [texts[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers, thread_name_prefix="story-embed") as pool:
        done = list(pool.map(lambda part: embedder.embed(part, batch_size=1) if part else None, parts))
    out: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
    for i, vectors in enumerate(done):
        if vectors is not None:
            out[i::workers] = list(vectors)
    return out


# -- scoring ------------------------------------------------------------------------------------
def gold_grouping(gold: StoryGold, articles: Sequence[Article]) -> dict[str, str]:
    """article id -> gold story label for the articles in scope; every gold URL must be among them."""
    by_url = {a.url: a.id for a in articles}
    missing = [u for story in gold.stories for u in story if u not in by_url]
    if missing:
        raise ConfigError(f"{gold.path}: {len(missing)} story URL(s) are not in {gold.corpus}, e.g. {missing[0]}")
    return metrics.grouping([[by_url[u] for u in story] for story in gold.stories], [a.id for a in articles])


def score(predicted: Mapping[str, str], gold: Mapping[str, str]) -> dict:
    """Pairwise and B-cubed precision, recall and F1 of ``predicted`` over the gold's articles."""
    return {
        "pairwise": metrics.pairwise_scores(predicted, gold).to_dict(),
        "bcubed": metrics.bcubed_scores(predicted, gold).to_dict(),
    }


def describe_errors(predicted: Mapping[str, str], gold: Mapping[str, str], articles: Sequence[Article]) -> list[dict]:
    """The clusters a grouping got wrong, each part as its articles' dates and titles."""
    by_id = {a.id: a for a in articles}

    def label(article_id: str) -> dict:
        a = by_id[article_id]
        return {"id": a.id, "date": a.published.date().isoformat() if a.published else None, "title": a.title}

    return [
        {"kind": e.kind, "parts": [[label(i) for i in part] for part in e.parts]}
        for e in metrics.cluster_errors(predicted, gold)
    ]


# -- fitting the pair model ---------------------------------------------------------------------
def pair_examples(
    articles: Sequence[Article], vectors: np.ndarray, gold: Mapping[str, str], config: StoryConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels (1: one gold story) of the candidate pairs whose two articles the gold covers."""
    pairs, features = candidate_features(articles, vectors, config)
    keep = [k for k, (a, b) in enumerate(pairs) if a in gold and b in gold]
    labels = np.array([gold[pairs[k][0]] == gold[pairs[k][1]] for k in keep], dtype=np.float64)
    return features[keep], labels


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0, rounds: int = 100) -> tuple[float, ...]:
    """Logistic regression by Newton's method, with an L2 penalty ``l2 / 2 * |w|^2`` on the weights (not the
    intercept). Returns (intercept, *weights)."""
    x = np.hstack([np.ones((len(features), 1)), np.asarray(features, dtype=np.float64)])
    y = np.asarray(labels, dtype=np.float64)
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(rounds):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return tuple(float(v) for v in w)


# -- cross-validation across gold sets ----------------------------------------------------------
L2 = 10.0  # the pair model's L2 weight: best month-left-out F1 of 0.01-10 over the sixteen dev months (bench sweeps it)
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)  # the link thresholds a fit chooses from


@dataclass
class EvalSet:
    """One gold grouping ready to score: its whole corpus (stories are assigned over all of it, as an
    index would) and the gold story of each scored article."""

    name: str
    corpus: str  # sets with the same corpus share its articles and vectors
    articles: list[Article]
    vectors: np.ndarray
    gold: dict[str, str]  # article id -> gold story, the scored articles only


def eval_sets(golds: Sequence[StoryGold], embedder, cache_dir: str | Path | None = None) -> list[EvalSet]:
    """The gold groupings with their corpora loaded and embedded (each corpus once)."""
    corpora: dict[Path, tuple[list[Article], np.ndarray]] = {}
    out = []
    for gold in golds:
        corpus = gold.corpus.resolve()  # one corpus, however each gold's relative path reaches it
        if corpus not in corpora:
            articles = load_articles(corpus)
            corpora[corpus] = (articles, article_vectors(articles, embedder, cache_dir))
        out.append(scored_set(gold, str(corpus), *corpora[corpus]))
    return out


def scored_set(gold: StoryGold, corpus: str, articles: list[Article], vectors: np.ndarray) -> EvalSet:
    """``gold`` ready to score over its loaded corpus: each article in its scope (``gold_scope``) and its gold story."""
    scoped, scope, _ = gold_scope(gold, articles)
    return EvalSet(gold.name, corpus, articles, vectors, gold_grouping(scoped, scope))


def relabelled(first: Sequence[EvalSet], second: Sequence[StoryGold]) -> list[EvalSet]:
    """The sets of ``first`` that ``second`` labels again (a gold file of the same name over the same
    corpus and articles), with the second labelling as their gold: one prediction is then scored
    against both labellings."""
    by_name = {s.name: s for s in first}
    out = []
    for gold in second:
        s = by_name.get(gold.name)
        if s is None:
            raise ConfigError(f"{gold.path}: no first labelling named {gold.name}")
        if Path(s.corpus).resolve() != gold.corpus.resolve():
            raise ConfigError(f"{gold.path}: labels {gold.corpus}, its first labelling {s.corpus}")
        again = scored_set(gold, s.corpus, s.articles, s.vectors)
        if again.gold.keys() != s.gold.keys():
            raise ConfigError(f"{gold.path}: scores {len(again.gold)} articles, its first labelling {len(s.gold)}")
        out.append(again)
    return out


def with_second(sets: Sequence[EvalSet], second: Sequence[EvalSet]) -> list[EvalSet]:
    """``sets`` followed by the second labelling of those of them that ``second`` holds: the training
    sets of a model fitted on both labellings (each pair judged twice, so one labeller's hard calls
    weigh half)."""
    again = {o.name: o for o in second}
    return [*sets, *(again[s.name] for s in sets if s.name in again)]


def agreement(first: Sequence[EvalSet], second: Sequence[EvalSet]) -> dict:
    """How far two labellings of the same sets agree: the second scored as if it predicted the first
    (the F1s are symmetric; precision and recall swap with the roles), set by set and pooled."""
    if [s.name for s in first] != [s.name for s in second]:
        raise ConfigError("the two labellings must hold the same sets, in the same order")
    return {
        "sets": {
            a.name: {"gold_pairs": [gold_pairs(a.gold), gold_pairs(b.gold)], **score(b.gold, a.gold)}
            for a, b in zip(first, second, strict=True)
        },
        "pooled": pooled(first, [b.gold for b in second]),
    }


# story settings that leave the featured pairs as they are
GROUPING_SETTINGS = ("min_link_share", "max_span_days", "series_days", "series_reach_days")


class FeaturedSets:
    """The candidate pairs of each corpus of some sets, featured once: fitting and predicting under many
    weights and thresholds then costs a logistic and a clustering per corpus, not a new featurisation."""

    def __init__(self, sets: Sequence[EvalSet], config: StoryConfig = DEFAULT):
        self.sets = list(sets)
        self.config = config
        self.corpora: dict[str, tuple[StoryCorpus, Pairs]] = {}
        for s in self.sets:
            if s.corpus not in self.corpora:
                corpus = StoryCorpus.build(s.articles, s.vectors)
                self.corpora[s.corpus] = (corpus, pair_features(corpus, config))

    def grouped_by(self, config: StoryConfig) -> FeaturedSets:
        """The same featured pairs, grouped under ``config`` (its candidate settings must be these ones'; the
        grouping settings, such as ``min_link_share``, may differ)."""
        unset = dict.fromkeys(GROUPING_SETTINGS, 0.0)
        if replace(config, **unset) != replace(self.config, **unset):
            raise ConfigError(f"only the grouping settings ({', '.join(GROUPING_SETTINGS)}) may change")
        other = copy.copy(self)
        other.config = config
        return other

    def examples(self, s: EvalSet) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels (1: one gold story) of the candidate pairs whose two articles ``s`` scores."""
        corpus, pairs = self.corpora[s.corpus]
        ids = corpus.ids
        left = [ids[i] for i in pairs.left.tolist()]
        right = [ids[j] for j in pairs.right.tolist()]
        keep = [k for k, (a, b) in enumerate(zip(left, right, strict=True)) if a in s.gold and b in s.gold]
        labels = np.array([s.gold[left[k]] == s.gold[right[k]] for k in keep], dtype=np.float64)
        return pairs.features[keep], labels

    def fit(self, training: Sequence[EvalSet], l2: float = L2) -> tuple[float, ...]:
        examples = [self.examples(s) for s in training]
        return fit_logistic(np.vstack([e[0] for e in examples]), np.concatenate([e[1] for e in examples]), l2)

    def predict(self, weights: Sequence[float], threshold: float) -> dict[str, dict[str, str]]:
        """corpus -> the stories of its articles under the pair model ``weights`` and link ``threshold``."""
        config = replace(self.config, weights=tuple(weights), link_probability=threshold)
        return {key: stories_from_pairs(corpus, pairs, config) for key, (corpus, pairs) in self.corpora.items()}

    def choose_threshold(
        self, training: Sequence[EvalSet], weights: Sequence[float], thresholds: Sequence[float] = THRESHOLDS
    ) -> tuple[float, dict[float, float]]:
        """The threshold with the best pooled pairwise F1 on ``training`` (ties: nearest the configured one),
        and that F1 for every threshold."""
        f1 = {}
        for t in thresholds:
            predicted = self.predict(weights, t)
            f1[t] = pooled(training, [predicted[s.corpus] for s in training])["pairwise"]["f1"]
        best = max(thresholds, key=lambda t: (f1[t], -abs(t - self.config.link_probability)))
        return best, f1


def pooled(sets: Sequence[EvalSet], predictions: Sequence[Mapping[str, str]]) -> dict:
    """Scores over the union of several gold sets (each set's stories kept apart from the others')."""
    gold, predicted = {}, {}
    for k, (s, p) in enumerate(zip(sets, predictions, strict=True)):
        gold.update({a: f"{k}:{g}" for a, g in s.gold.items()})
        predicted.update({a: f"{k}:{p.get(a, a)}" for a in s.gold})
    return score(predicted, gold)


def cross_validate(
    sets: Sequence[EvalSet],
    config: StoryConfig = DEFAULT,
    l2: float = L2,
    thresholds: Sequence[float] = THRESHOLDS,
    featured: FeaturedSets | None = None,
    second: Sequence[EvalSet] | None = None,
    fit_second: bool = False,
) -> dict:
    """Leave one set out: fit the pair model's weights on the others, choose the link threshold on the
    others, score the held-out set. Nothing about a set is fitted on that set, so the pooled figure
    estimates an unlabelled month like the sets (features and settings chosen on the sets make it
    optimistic). The cosine baseline is scored beside it, set by set. With
    ``second`` (``relabelled``: some of the same sets labelled by someone else), the same held-out
    predictions of those sets are also scored against that labelling (``against_second``). With
    ``fit_second`` too, each fold also fits on (and chooses its threshold over) the second labelling of
    its training sets: twice the judgements of the same pairs, so one labeller's reading weighs less;
    the held-out set's second labelling is never fitted on."""
    if len(sets) < 2:
        raise ConfigError("cross-validation needs two gold sets or more")
    second = list(second or ())
    names = {s.name for s in sets}
    if any(o.name not in names for o in second) or len({o.name for o in second}) < len(second):
        raise ConfigError("the second labelling must hold some of the same sets, each once")
    if fit_second and not second:
        raise ConfigError("fit_second needs a second labelling")
    featured = featured or FeaturedSets(sets, config)
    baseline = {s.corpus: cosine_baseline(s.articles, s.vectors) for s in sets}
    held: dict[str, dict] = {}
    chosen_predictions, fixed_predictions = [], {t: [] for t in thresholds}
    for s in sets:
        training = with_second([o for o in sets if o is not s], second if fit_second else ())
        weights = featured.fit(training, l2)
        threshold, training_f1 = featured.choose_threshold(training, weights, thresholds)
        by_threshold = {t: featured.predict(weights, t)[s.corpus] for t in thresholds}
        chosen_predictions.append(by_threshold[threshold])
        for t in thresholds:
            fixed_predictions[t].append(by_threshold[t])
        held[s.name] = {
            "weights": [round(w, 4) for w in weights],
            "threshold": threshold,
            "training_f1": {str(t): round(f, 4) for t, f in training_f1.items()},
            "scored_articles": len(s.gold),
            "gold_pairs": gold_pairs(s.gold),
            "stories": score(by_threshold[threshold], s.gold),
            "cosine_baseline": score(baseline[s.corpus], s.gold),
        }
    out = {
        "l2": l2,
        "fitted_on": "both labellings" if fit_second else "first labelling",
        "thresholds": list(thresholds),
        "held_out": held,
        "pooled": {
            "stories": pooled(sets, chosen_predictions),
            "cosine_baseline": pooled(sets, [baseline[s.corpus] for s in sets]),
        },
        "fixed_threshold": {str(t): pooled(sets, p) for t, p in fixed_predictions.items()},
    }
    if second:
        by_name = {s.name: p for s, p in zip(sets, chosen_predictions, strict=True)}
        predicted = [by_name[o.name] for o in second]
        out["against_second"] = {
            "held_out": {o.name: score(p, o.gold) for o, p in zip(second, predicted, strict=True)},
            "pooled": pooled(second, predicted),
        }
    return out


def forward_in_time(
    sets: Sequence[EvalSet],
    config: StoryConfig = DEFAULT,
    l2: float = L2,
    featured: FeaturedSets | None = None,
    second: Sequence[EvalSet] = (),
    first: int = 6,
) -> dict:
    """Each set from the ``first``-th on (``sets`` in time order) scored by a model fitted only on the sets
    before it (and their ``second`` labelling), as a deployed model meets the months after the ones it
    learned from. Beside the month-left-out figure it tells whether the model goes stale with time."""
    if not first < len(sets):
        raise ConfigError(f"forward validation needs more than {first} sets")
    featured = featured or FeaturedSets(sets, config)
    held, predictions = {}, []
    for k in range(first, len(sets)):
        training = with_second(sets[:k], second)
        weights = featured.fit(training, l2)
        threshold, _ = featured.choose_threshold(training, weights)
        predicted = featured.predict(weights, threshold)[sets[k].corpus]
        predictions.append(predicted)
        held[sets[k].name] = {"fitted_on": k, "threshold": threshold, "stories": score(predicted, sets[k].gold)}
    return {"held_out": held, "pooled": pooled(sets[first:], predictions)}


def gold_pairs(gold: Mapping[str, str]) -> int:
    """Pairs of articles in one gold story."""
    sizes = Counter(gold.values())
    return sum(n * (n - 1) // 2 for n in sizes.values())


def format_cross_validation(result: dict) -> str:
    """A plain-text table of ``cross_validate``: each held-out set, then all of them pooled."""
    lines = [
        f"leave one set out (weights and threshold fitted on the others' {result['fitted_on']}; L2 {result['l2']})",
        f"{'held out':<20}{'pairs':>6}{'thr':>6}{'pair F1':>9}{'B3 F1':>8}{'cosine pair F1':>16}{'cosine B3 F1':>14}",
    ]
    rows = [
        (name, h["gold_pairs"], f"{h['threshold']:.2f}", h["stories"], h["cosine_baseline"])
        for name, h in result["held_out"].items()
    ]
    rows.append(
        (
            "pooled",
            sum(h["gold_pairs"] for h in result["held_out"].values()),
            "",
            result["pooled"]["stories"],
            result["pooled"]["cosine_baseline"],
        )
    )
    for name, pairs, threshold, m, c in rows:
        lines.append(
            f"{name:<20}{pairs:>6}{threshold:>6}{m['pairwise']['f1']:>9.3f}{m['bcubed']['f1']:>8.3f}"
            f"{c['pairwise']['f1']:>16.3f}{c['bcubed']['f1']:>14.3f}"
        )
    return "\n".join(lines)


# -- the evaluation -----------------------------------------------------------------------------
def run_stories(
    path: str | Path,
    embedder,
    corpus: str | Path | None = None,
    cache_dir: str | Path | None = None,
    config: StoryConfig = DEFAULT,
) -> dict:
    """Score story detection against every gold file at ``path`` (and the cosine baseline beside it).

    Stories are assigned over the whole corpus (an index holds all of it); a gold file with a
    ``published`` range is scored on the articles of that range (``gold_scope``).
    """
    golds = load_golds(path, corpus)
    loaded: dict[Path, tuple[list[Article], np.ndarray]] = {}
    out = {"kind": "stories", "model": embedder.model_id, "config": config.to_dict(), "golds": []}
    for gold in golds:
        corpus = gold.corpus.resolve()
        if corpus not in loaded:
            articles = load_articles(corpus)
            loaded[corpus] = (articles, article_vectors(articles, embedder, cache_dir))
        out["golds"].append(evaluate_gold(gold, *loaded[corpus], config))
    return out


def evaluate_gold(gold: StoryGold, articles: list[Article], vectors: np.ndarray, config: StoryConfig) -> dict:
    """Story detection and the cosine baseline on one gold grouping, with the clusters each got wrong."""
    gold, scope, note = gold_scope(gold, articles)
    truth = gold_grouping(gold, scope)
    started = time.perf_counter()
    predicted = assign_stories(articles, vectors, config).stories
    seconds = time.perf_counter() - started
    baseline = cosine_baseline(articles, vectors)
    result = {
        **gold.to_dict(),
        "scored_articles": len(truth),
        "context_articles": len(articles),
        "predicted_stories": _multi(predicted, truth),
        "methods": {
            "stories": {**score(predicted, truth), "seconds": round(seconds, 3)},
            "cosine_baseline": score(baseline, truth),
        },
        "errors": describe_errors(predicted, truth, scope),
    }
    if note:
        result["scope"] = note
    if gold.articles is not None and gold.articles != len(truth):
        result["warning"] = f"the gold says {gold.articles} articles, the corpus has {len(truth)} in scope"
    return result


def gold_scope(gold: StoryGold, articles: Sequence[Article]) -> tuple[StoryGold, list[Article], str | None]:
    """The articles ``gold`` scores, and the gold with the range they were chosen by: its ``published``
    range; else the calendar months its stories span, when the gold's ``articles`` count is nearer
    the number of articles in them than the corpus's size or, with no count, when they hold less than
    half the corpus (a month labelled in a corpus of years; a note then says so); else the whole corpus."""
    if gold.published is not None:
        return gold, _published_in(articles, gold.published), None
    everything = list(articles)
    listed = {u for story in gold.stories for u in story}
    dates = [a.published.date() for a in articles if a.url in listed and a.published is not None]
    if not dates:
        return gold, everything, None
    months = (min(dates).replace(day=1), _month_end(max(dates)))
    scope = _published_in(articles, months)
    if gold.articles is None:
        if 2 * len(scope) >= len(everything):
            return gold, everything, None
        said = "the gold gives no article count"
    elif abs(len(scope) - gold.articles) < abs(len(everything) - gold.articles):
        said = f"the gold says {gold.articles}"
    else:
        return gold, everything, None
    note = (
        f"no 'published' range: scored on {months[0].isoformat()}..{months[1].isoformat()}, the calendar months"
        f" its stories span ({len(scope)} articles; {said}, the corpus has {len(everything)})"
    )
    return replace(gold, published=months), scope, note


def _month_end(day: date) -> date:
    following = day.replace(day=28) + timedelta(days=4)
    return following - timedelta(days=following.day)


def _published_in(articles: Sequence[Article], published: tuple[date, date]) -> list[Article]:
    start, end = published
    return [a for a in articles if a.published is not None and start <= a.published.date() <= end]


def _multi(predicted: Mapping[str, str], truth: Mapping[str, str]) -> dict:
    """Predicted stories of two or more among the scored articles."""
    sizes = Counter(predicted.get(a, a) for a in truth)
    multi = [n for n in sizes.values() if n > 1]
    return {"stories": len(multi), "articles": sum(multi)}


def format_stories(result: dict) -> str:
    """A plain-text report of ``run_stories``: scores per gold file, then the clusters it got wrong."""
    lines = []
    for g in result["golds"]:
        p = g["predicted_stories"]
        lines += [
            f"stories on {g['name']}: {g['scored_articles']} articles scored ({g['context_articles']} in the corpus); "
            f"gold {g['stories']} stories of 2+ ({g['articles_in_stories']} articles), "
            f"predicted {p['stories']} ({p['articles']} articles)",
            f"{'method':<18}{'pair P':>8}{'pair R':>8}{'pair F1':>9}{'B3 P':>8}{'B3 R':>8}{'B3 F1':>8}",
        ]
        for name, m in g["methods"].items():
            pw, b3 = m["pairwise"], m["bcubed"]
            lines.append(
                f"{name:<18}{pw['precision']:>8.3f}{pw['recall']:>8.3f}{pw['f1']:>9.3f}"
                f"{b3['precision']:>8.3f}{b3['recall']:>8.3f}{b3['f1']:>8.3f}"
            )
        if "scope" in g:
            lines.append(f"scope: {g['scope']}")
        if "warning" in g:
            lines.append(f"warning: {g['warning']}")
        lines.append(f"clusters story detection got wrong: {len(g['errors'])}")
        for error in g["errors"]:
            what = "gold story split" if error["kind"] == "split" else "predicted story merges"
            lines.append(f"  {what} into {len(error['parts'])} parts:")
            for part in error["parts"]:
                shown = " | ".join(f"{a['date'] or 'no date'} {a['title'][:50]}" for a in part[:3])
                more = f" (+{len(part) - 3} more)" if len(part) > 3 else ""
                lines.append(f"    - {shown}{more}")
        lines.append("")
    return "\n".join(lines).rstrip()

"""Story detection: quality on the dev sets, with the cosine baseline beside it and cross-validated
across the two HuffPost months, and the cost of assigning stories at 10k and of adding 1,000 to 9,000.

    python -m bench.run_all stories     # writes bench/results/stories.json
    python -m bench.stories --fit       # refit the pair model on both HuffPost months; print its weights

Quality: pairwise and B-cubed F1 against ../shared/eval/stories (copies across outlets) and
eval/stories-huffpost (one outlet's updates; stories assigned over the whole huffpost-10k file,
scored on each month). "shipped" uses the weights in search/stories.py, fitted on both months;
"cross-validated" fits the same model on one month and scores it on the other, the figure that
predicts an unseen month. Cost: ``assign_stories`` on huffpost-10k (and prefixes of it) and
``update_stories`` adding its newest 1,000 articles to the oldest 9,000.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import ROOT, Context, target, write_result
from search.stories import DEFAULT, StoryConfig, assign_stories, cosine_baseline, update_stories
from search.story_eval import (
    article_vectors,
    fit_logistic,
    gold_grouping,
    load_articles,
    load_golds,
    pair_examples,
    score,
)

SHARED_GOLD = ROOT.parent / "shared" / "eval" / "stories"
MONTHS_GOLD = ROOT / "eval" / "stories-huffpost"
L2 = 0.1  # chosen by cross-validation across the two months (see the "l2" sweep in the results)
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INDEX_SECONDS_10K = 10_000 / 386.6  # README: indexing 10k articles end to end ran at 386.6 articles/s


@dataclass
class DevSet:
    name: str
    articles: list
    vectors: np.ndarray
    gold: dict[str, str]  # article id -> gold story, the scored articles only


def load_dev_sets(embedder, cache: Path, shared: Path = SHARED_GOLD, months: Path = MONTHS_GOLD) -> dict:
    """The shared grouping and each HuffPost month, with their corpora embedded (cached in ``cache``)."""
    out: dict[str, DevSet] = {}
    corpora: dict[Path, tuple[list, np.ndarray]] = {}
    for gold in load_golds(shared) + load_golds(months):
        if gold.corpus not in corpora:
            articles = load_articles(gold.corpus)
            corpora[gold.corpus] = (articles, article_vectors(articles, embedder, cache))
        articles, vectors = corpora[gold.corpus]
        scope = load_articles(gold.corpus, gold.published) if gold.published else articles
        out[gold.name] = DevSet(gold.name, articles, vectors, gold_grouping(gold, scope))
    return out


def months_of(sets: dict[str, DevSet], months: Path = MONTHS_GOLD) -> list[str]:
    return [g.name for g in load_golds(months) if g.name in sets]


def pooled(sets: Sequence[DevSet], predictions: Sequence[dict[str, str]]) -> dict:
    """Scores over the union of several gold sets (labels kept apart per set)."""
    gold, pred = {}, {}
    for k, (s, p) in enumerate(zip(sets, predictions, strict=True)):
        gold.update({a: f"{k}:{g}" for a, g in s.gold.items()})
        pred.update({a: f"{k}:{p.get(a, a)}" for a in s.gold})
    return score(pred, gold)


def fit(sets: Sequence[DevSet], config: StoryConfig, l2: float = L2) -> tuple[float, ...]:
    examples = [pair_examples(s.articles, s.vectors, s.gold, config) for s in sets]
    features = np.vstack([e[0] for e in examples])
    labels = np.concatenate([e[1] for e in examples])
    return fit_logistic(features, labels, l2)


def quality(sets: dict[str, DevSet], months: list[str], config: StoryConfig = DEFAULT) -> dict:
    """Shipped model and cosine baseline on every set; the months also one by one and pooled."""
    out: dict = {"config": config.to_dict(), "sets": {}}
    shipped, baseline = {}, {}
    for name, s in sets.items():
        started = time.perf_counter()
        shipped[name] = assign_stories(s.articles, s.vectors, config).stories
        seconds = time.perf_counter() - started
        baseline[name] = cosine_baseline(s.articles, s.vectors)
        out["sets"][name] = {
            "scored_articles": len(s.gold),
            "gold_pairs": _pairs(s.gold),
            "stories": {**score(shipped[name], s.gold), "seconds": round(seconds, 2)},
            "cosine_baseline": score(baseline[name], s.gold),
        }
    if months:
        both = [sets[m] for m in months]
        out["months_pooled"] = {
            "stories": pooled(both, [shipped[m] for m in months]),
            "cosine_baseline": pooled(both, [baseline[m] for m in months]),
        }
    return out


def _pairs(gold: dict[str, str]) -> int:
    sizes: dict[str, int] = {}
    for g in gold.values():
        sizes[g] = sizes.get(g, 0) + 1
    return sum(n * (n - 1) // 2 for n in sizes.values())


def cross_validate(
    sets: dict[str, DevSet],
    months: list[str],
    config: StoryConfig = DEFAULT,
    l2: float = L2,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict:
    """Fit on every month but one, score on that one, for each threshold; pooled over the held-out months."""
    weights = {m: fit([sets[o] for o in months if o != m], config, l2) for m in months}
    table = {}
    for threshold in thresholds:
        preds = {}
        for m in months:
            held_out = replace(config, weights=weights[m], link_probability=threshold)
            preds[m] = assign_stories(sets[m].articles, sets[m].vectors, held_out).stories
        table[str(threshold)] = {
            **{m: score(preds[m], sets[m].gold) for m in months},
            "pooled": pooled([sets[m] for m in months], [preds[m] for m in months]),
        }
    nested = _nested(sets, months, config, weights, table) if len(months) > 1 else {}
    return {
        "l2": l2,
        "weights": {m: [round(w, 4) for w in weights[m]] for m in months},
        "by_threshold": table,
        "nested": nested,
    }


def _nested(sets: dict[str, DevSet], months: list[str], config: StoryConfig, weights: dict, table: dict) -> dict:
    """The threshold too chosen on the training months (by their pooled pairwise F1 under the held-out month's
    weights), then the held-out month scored: nothing about a month is tuned on that month."""
    chosen, preds = {}, {}
    for m in months:
        training = [o for o in months if o != m]
        scores = {}
        for threshold in THRESHOLDS:
            fitted = replace(config, weights=weights[m], link_probability=threshold)
            runs = [assign_stories(sets[o].articles, sets[o].vectors, fitted).stories for o in training]
            scores[threshold] = pooled([sets[o] for o in training], runs)["pairwise"]["f1"]
        chosen[m] = max(THRESHOLDS, key=lambda t: (scores[t], -abs(t - 0.5)))
        held_out = replace(config, weights=weights[m], link_probability=chosen[m])
        preds[m] = assign_stories(sets[m].articles, sets[m].vectors, held_out).stories
    return {
        "thresholds": chosen,
        **{m: score(preds[m], sets[m].gold) for m in months},
        "pooled": pooled([sets[m] for m in months], [preds[m] for m in months]),
    }


# -- cost -------------------------------------------------------------------------------------
def timed(work: Callable[[], object], repeat: int = 3) -> tuple[object, dict]:
    """Result of the last run; median wall and CPU seconds of ``repeat`` runs."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}


def cost(articles: list, vectors: np.ndarray, added: int = 1000, repeat: int = 3) -> dict:
    """Full assignment at several sizes (date prefixes), and adding the newest ``added`` articles."""
    order = sorted(range(len(articles)), key=lambda i: (articles[i].published or _EPOCH, articles[i].id))
    arts = [articles[i] for i in order]
    vecs = vectors[order]
    out: dict = {"articles": len(arts), "full": {}}
    for n in sorted({len(arts) // 4, len(arts) // 2, len(arts)}):
        if n:
            _, t = timed(lambda n=n: assign_stories(arts[:n], vecs[:n]), repeat)
            out["full"][str(n)] = t
    base = len(arts) - added
    if base <= 0:
        return out
    previous = assign_stories(arts[:base], vecs[:base]).stories
    new_ids = [a.id for a in arts[base:]]
    updated, t = timed(lambda: update_stories(previous, arts, vecs, changed=new_ids), repeat)
    rebuilt = assign_stories(arts, vecs).stories
    out["add_newest"] = {
        "existing": base,
        "added": added,
        **t,
        "examined": updated.examined,
        "recomputed": updated.recomputed,
        "same_as_rebuild": score(updated.stories, rebuilt),
        "ids_kept": sum(1 for a, s in previous.items() if updated.stories.get(a) == s),
    }
    scattered = list(range(0, len(arts), max(len(arts) // added, 1)))[:added]
    chosen = set(scattered)
    rest = [i for i in range(len(arts)) if i not in chosen]
    previous = assign_stories([arts[i] for i in rest], vecs[rest]).stories
    spread = update_stories(previous, arts, vecs, changed=[arts[i].id for i in scattered])
    out["add_scattered"] = {"existing": len(rest), "added": len(scattered), "examined": spread.examined}
    return out


# -- the benchmark ----------------------------------------------------------------------------
def bench_stories(ctx: Context, shared: Path = SHARED_GOLD, months_gold: Path = MONTHS_GOLD) -> Path:
    from search.embedding import load_embedder

    started = time.perf_counter()
    kind = ctx.environ().get("SEARCH_INDEX_EMBEDDER", "onnx-int8")
    embedder = load_embedder(kind, None, None, threads=1)
    sets = load_dev_sets(embedder, ctx.work / "stories", shared, months_gold)
    months = months_of(sets, months_gold)
    figures = {"embedder": embedder.model_id, "quality": quality(sets, months)}
    figures["cross_validated"] = cross_validate(sets, months) if len(months) > 1 else {}
    shipped = DEFAULT.link_probability
    figures["l2_sweep"] = {
        str(l2): cross_validate(sets, months, l2=l2, thresholds=(shipped,))["by_threshold"][str(shipped)]["pooled"]
        for l2 in (0.01, 1.0, 10.0)
        if len(months) > 1
    }
    corpus = sets[months[0]] if months else next(iter(sets.values()))
    figures["cost"] = cost(corpus.articles, corpus.vectors, added=min(1000, len(corpus.articles) // 5))
    write_result(ctx, "stories", figures, _targets(figures, shared.name, months), started)
    return ctx.results / "stories.json"


def _targets(figures: dict, shared: str, months: list[str]) -> list[dict]:
    command = "python -m bench.run_all stories"
    sets = figures["quality"]["sets"]
    rows = []
    for name, s in sets.items():
        if name in months:
            continue
        rows.append(target(f"Stories, {name}: pairwise F1", s["stories"]["pairwise"]["f1"], 0.97, "", command, ">="))
        rows.append(target(f"Stories, {name}: B-cubed F1", s["stories"]["bcubed"]["f1"], 0.97, "", command, ">="))
    cv = figures.get("cross_validated", {}).get("by_threshold", {}).get(str(DEFAULT.link_probability))
    if cv:
        rows.append(
            target(
                "Stories, HuffPost months (one outlet's updates), cross-validated: pairwise F1",
                cv["pooled"]["pairwise"]["f1"],
                0.65,
                "",
                command,
                ">=",
            )
        )
    full = figures["cost"]["full"].get(str(figures["cost"]["articles"]))
    if full:
        rows.append(
            target(
                f"Story assignment, {figures['cost']['articles']} articles (10% of indexing 10k)",
                full["wall_s"],
                round(0.1 * INDEX_SECONDS_10K, 2),
                "s",
                command,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    from search.embedding import load_embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", action="store_true", help="fit the pair model on both months and print it")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "work" / "stories")
    args = parser.parse_args(argv)
    if not args.fit:
        parser.error("run the benchmark with `python -m bench.run_all stories`; this entry point only has --fit")
    embedder = load_embedder(os.environ.get("SEARCH_INDEX_EMBEDDER", "onnx-int8"), None, None, threads=1)
    sets = load_dev_sets(embedder, args.cache)
    weights = fit([sets[m] for m in months_of(sets)], DEFAULT)
    print("PAIR_WEIGHTS = (" + ", ".join(f"{w:.3f}" for w in weights) + ")")
    print("shipped        " + ", ".join(f"{w:.3f}" for w in DEFAULT.weights))


if __name__ == "__main__":
    main()

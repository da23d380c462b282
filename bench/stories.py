"""Story detection: quality on the dev sets, with the cosine baseline beside it and cross-validated
across the HuffPost months, and the cost of assigning stories at 10k and of adding 1,000 to 9,000.

    python -m bench.run_all stories     # writes bench/results/stories.json
    python -m bench.stories --fit       # refit the pair model on all the HuffPost months; print it
    python -m bench.stories --sweep min_link_share=0.2,0.25   # the month-left-out F1 under other values of a setting
    python -m bench.stories --noise 4   # ... with a feature that carries no information added, per seed

Quality: pairwise and B-cubed F1 against ../shared/eval/stories (copies across outlets) and
eval/stories-huffpost (one outlet's updates; stories assigned over the whole huffpost-10k file,
scored on each month). "shipped" uses the weights and threshold in search/stories.py, fitted on
both labellings of all the months; "cross_validated" leaves one month out: the weights and the link
threshold are fitted on both labellings of the other months and the held-out month is scored
(against each labelling), for each month in turn; pooled over
the held-out months it is the dev months' estimate for an unlabelled month (a target row; the test
months of 2022 below show it overstates later news); beside it,
the cosine rule at the threshold that does best on the months (chosen on them, so optimistic). Cost:
``assign_stories`` on huffpost-10k (and prefixes of it) and ``update_stories`` adding its newest
1,000 articles to the oldest 9,000.

eval/stories-huffpost/second holds the same months labelled again, blind, by other readers under the
shared rules alone: how far the two labellings agree (the second scored as if it predicted the
first) says how far labellers differ, and the shipped and month-left-out models are scored against
the second labelling too. The pair model is fitted on both: a pair the two labellings judge alike
counts twice, one they judge apart counts once each way, so no one labeller's reading decides it.

eval/stories-huffpost-2022 holds six months of 2022, after every dev month, labelled blind under the
shared rules alone (three of them twice, in its second/). It is a test set: the shipped model is
scored on it, and nothing (weights, threshold, settings, features) is fitted or chosen on it.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import ROOT, Context, target, write_result
from search.stories import DEFAULT, StoryConfig, assign_stories, cosine_baseline, update_stories
from search.story_eval import (
    GROUPING_SETTINGS,
    EvalSet,
    FeaturedSets,
    agreement,
    cross_validate,
    eval_sets,
    forward_in_time,
    gold_pairs,
    load_golds,
    pooled,
    relabelled,
    score,
    with_second,
)
from search.story_pairs import Pairs

SHARED_GOLD = ROOT.parent / "shared" / "eval" / "stories"
MONTHS_GOLD = ROOT / "eval" / "stories-huffpost"
HELD_OUT_GOLD = ROOT / "eval" / "stories-huffpost-2022"  # test only: scored, never fitted or chosen on
L2_SWEEP = (0.01, 0.1, 1.0)  # besides L2: the pooled cross-validated F1 of each
COSINE_THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)  # the cosine rule at its best threshold on the months
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INDEX_SECONDS_10K = 10_000 / 386.6  # README: indexing 10k articles end to end ran at 386.6 articles/s


def load_dev_sets(
    embedder, cache: Path, shared: Path = SHARED_GOLD, months: Path = MONTHS_GOLD, tests: Path | None = None
) -> tuple[dict[str, EvalSet], list[EvalSet]]:
    """The shared grouping and each HuffPost month by name, and the test months of ``tests`` (when given and
    present), each corpus read and embedded once (cached in ``cache``)."""
    dev = load_golds(shared) + load_golds(months)
    test = load_golds(tests) if tests is not None and tests.is_dir() else []
    loaded = eval_sets(dev + test, embedder, cache)
    return {s.name: s for s in loaded[: len(dev)]}, loaded[len(dev) :]


def months_of(sets: dict[str, EvalSet], months: Path = MONTHS_GOLD) -> list[str]:
    return [g.name for g in load_golds(months) if g.name in sets]


def second_labelling(sets: dict[str, EvalSet], months: list[str], folder: Path) -> list[EvalSet]:
    """The months that ``folder`` labels again, in the order of ``months`` (none when it is absent)."""
    if not folder.is_dir():
        return []
    again = {s.name: s for s in relabelled([sets[m] for m in months], load_golds(folder))}
    return [again[m] for m in months if m in again]


def quality(
    sets: dict[str, EvalSet],
    months: list[str],
    config: StoryConfig = DEFAULT,
    second: Sequence[EvalSet] = (),
    shipped: dict[str, dict[str, str]] | None = None,
) -> dict:
    """Shipped model and cosine baseline on every set; the months also pooled; with ``second``, the months'
    second labelling: its agreement with the first and the shipped model against it. ``shipped`` (corpus ->
    stories) keeps the stories assigned here, for other sets of the same corpora."""
    out: dict = {"config": config.to_dict(), "sets": {}}
    shipped = {} if shipped is None else shipped
    baseline, seconds = {}, {}
    for name, s in sets.items():
        if s.corpus not in baseline:  # the months share one corpus: its stories are assigned once
            started = time.perf_counter()
            shipped[s.corpus] = assign_stories(s.articles, s.vectors, config).stories
            seconds[s.corpus] = time.perf_counter() - started
            baseline[s.corpus] = cosine_baseline(s.articles, s.vectors)
        out["sets"][name] = {
            "scored_articles": len(s.gold),
            "gold_pairs": gold_pairs(s.gold),
            "stories": {**score(shipped[s.corpus], s.gold), "seconds": round(seconds[s.corpus], 2)},
            "cosine_baseline": score(baseline[s.corpus], s.gold),
        }
    if months:
        both = [sets[m] for m in months]
        out["months_pooled"] = {
            "stories": pooled(both, [shipped[s.corpus] for s in both]),
            "cosine_baseline": pooled(both, [baseline[s.corpus] for s in both]),
            "best_cosine": best_cosine(both),
        }
    if second:
        out["second_labelling"] = {
            **against_second([sets[s.name] for s in second], second, shipped),
            "cosine_baseline": pooled(second, [baseline[s.corpus] for s in second]),
        }
    return out


def against_second(first: Sequence[EvalSet], second: Sequence[EvalSet], predicted: dict[str, dict[str, str]]) -> dict:
    """Two labellings' agreement, and the stories ``predicted`` (corpus -> stories) scored against the second."""
    return {
        "agreement": agreement(first, second),
        "stories": pooled(second, [predicted[s.corpus] for s in second]),
        "stories_by_set": {s.name: score(predicted[s.corpus], s.gold) for s in second},
    }


def best_cosine(held: list[EvalSet], thresholds: tuple[float, ...] = COSINE_THRESHOLDS) -> dict:
    """The strongest rule that needs no model: the cosine baseline (at most 7 days apart) at each threshold,
    pooled over ``held``, and the best of them. Its threshold is chosen on the sets it is scored on, so its
    figure is optimistic, where the model's month-left-out figure is not."""
    by_threshold = {}
    for t in thresholds:
        grouped: dict[str, dict[str, str]] = {}
        for s in held:
            if s.corpus not in grouped:
                grouped[s.corpus] = cosine_baseline(s.articles, s.vectors, threshold=t)
        by_threshold[t] = pooled(held, [grouped[s.corpus] for s in held])
    best = max(thresholds, key=lambda t: (by_threshold[t]["pairwise"]["f1"], t))
    return {
        "threshold": best,
        "pooled": by_threshold[best],
        "pairwise_f1_by_threshold": {str(t): by_threshold[t]["pairwise"]["f1"] for t in thresholds},
    }


def cross_validated(
    sets: dict[str, EvalSet], months: list[str], config: StoryConfig = DEFAULT, second: Sequence[EvalSet] = ()
) -> dict:
    """Leave one month out (weights and threshold fitted on the others, on both their labellings where a second
    exists, as ``--fit`` fits the shipped model), and the pooled figure under other L2s; the held-out predictions
    of the months with a second labelling also against it."""
    held = [sets[m] for m in months]
    featured = FeaturedSets(held, config)
    both = fitted_as_shipped(second)
    out = cross_validate(held, config, featured=featured, **both)
    in_time = sorted(held, key=first_day)
    first = max(1, len(in_time) * 3 // 8)  # the first three eighths are only learned from (nineteen months: seven)
    out["forward_in_time"] = forward_in_time(in_time, config, featured=featured, second=second, first=first)
    out["l2_sweep"] = {
        str(l2): cross_validate(held, config, l2=l2, featured=featured, **both)["pooled"]["stories"] for l2 in L2_SWEEP
    }
    return out


def first_day(s: EvalSet) -> datetime:
    """When the earliest dated article ``s`` scores was published: sets sort by it into time order."""
    dated = (a.published for a in s.articles if a.id in s.gold and a.published is not None)
    return min(dated, default=datetime.max.replace(tzinfo=UTC))


def fitted_as_shipped(second: Sequence[EvalSet]) -> dict:
    """``cross_validate``'s arguments that fit each fold as ``--fit`` fits the shipped model: on both labellings
    of the months that ``second`` labels again, scoring the held-out predictions against it too."""
    return {"second": second, "fit_second": bool(second)}


def with_noise(featured: FeaturedSets, seed: int, dim: int = 16) -> FeaturedSets:
    """The same featured pairs with one more feature that carries no information: the cosine of random
    unit vectors, one per article. What the month-left-out F1 does with it is the noise band any other
    feature's gain must clear."""
    rng = np.random.default_rng(seed)
    noisy = copy.copy(featured)
    noisy.corpora = {}
    for key, (corpus, pairs) in featured.corpora.items():
        random = rng.normal(size=(len(corpus.ids), dim))
        random /= np.linalg.norm(random, axis=1, keepdims=True)
        column = np.einsum("ij,ij->i", random[pairs.left], random[pairs.right])
        noisy.corpora[key] = (corpus, Pairs(pairs.left, pairs.right, np.column_stack([pairs.features, column])))
    return noisy


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


def held_out(
    first: list[EvalSet],
    folder: Path,
    predicted: dict[str, dict[str, str]],
    config: StoryConfig = DEFAULT,
    cosine_threshold: float | None = None,
) -> dict:
    """The shipped model on the test months ``first`` (and on their second labelling in ``folder/second``), with
    the two labellings' agreement: months nothing was fitted or chosen on. ``predicted`` (corpus -> stories)
    holds the stories already assigned; the others are assigned here. ``cosine_threshold``: the cosine rule's
    best threshold on the dev months, scored here beside the model (chosen there, so as fair as the model)."""
    if not first:
        return {}
    by_name = {s.name: s for s in first}
    second = second_labelling(by_name, list(by_name), folder / "second")
    for s in first:
        if s.corpus not in predicted:
            predicted[s.corpus] = assign_stories(s.articles, s.vectors, config).stories
    out: dict = {
        "sets": {s.name: {"gold_pairs": gold_pairs(s.gold), **score(predicted[s.corpus], s.gold)} for s in first},
        "stories": pooled(first, [predicted[s.corpus] for s in first]),
    }
    if cosine_threshold is not None:
        rule = best_cosine(first, (cosine_threshold,))
        out["cosine_at_dev_threshold"] = {"threshold": rule["threshold"], "stories": rule["pooled"]}
    if second:
        out["second_labelling"] = against_second([by_name[s.name] for s in second], second, predicted)
    return out


# -- the benchmark ----------------------------------------------------------------------------
def bench_stories(
    ctx: Context, shared: Path = SHARED_GOLD, months_gold: Path = MONTHS_GOLD, held_out_gold: Path = HELD_OUT_GOLD
) -> Path:
    from search.embedding import load_embedder

    started = time.perf_counter()
    kind = ctx.environ().get("SEARCH_INDEX_EMBEDDER", "onnx-int8")
    embedder = load_embedder(kind, None, None, threads=1)
    sets, tests = load_dev_sets(embedder, ctx.work / "stories", shared, months_gold, held_out_gold)
    months = months_of(sets, months_gold)
    second = second_labelling(sets, months, months_gold / "second")
    shipped: dict[str, dict[str, str]] = {}
    figures = {"embedder": embedder.model_id, "quality": quality(sets, months, second=second, shipped=shipped)}
    figures["cross_validated"] = cross_validated(sets, months, second=second) if len(months) > 1 else {}
    best = figures["quality"].get("months_pooled", {}).get("best_cosine", {}).get("threshold")
    figures["held_out"] = held_out(tests, held_out_gold, shipped, cosine_threshold=best)
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
    cv = figures.get("cross_validated")
    if cv:
        rows.append(
            target(
                f"Stories, {len(months)} HuffPost months (one outlet's updates), leave one month out: pairwise F1",
                cv["pooled"]["stories"]["pairwise"]["f1"],
                0.65,
                "",
                command,
                ">=",
            )
        )
    test = figures.get("held_out")
    if test:
        labellings = [("", test["sets"], test["stories"])]
        if "second_labelling" in test:
            again = test["second_labelling"]
            labellings.append((", second labelling", again["stories_by_set"], again["stories"]))
        for which, months_scored, pooled_scores in labellings:
            names = ", ".join(name.removeprefix("huffpost-") for name in months_scored)
            rows.append(
                target(
                    f"Stories, held-out months ({names}), shipped model{which}: pairwise F1",
                    pooled_scores["pairwise"]["f1"],
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


def _sweep(parser: argparse.ArgumentParser, text: str) -> tuple[str, list[float]]:
    """SETTING=V1,V2,... as the setting's name and its values (ints for an int setting)."""
    name, _, values = text.partition("=")
    settings = [k for k in DEFAULT.to_dict() if k != "weights"]
    if name not in settings:
        parser.error(f"--sweep: {name!r} is not a story setting; one of {', '.join(settings)}")
    kind = type(getattr(DEFAULT, name))
    try:
        return name, [kind(v) for v in values.split(",")]
    except ValueError:
        parser.error(f"--sweep: {name} takes {kind.__name__} values, got {values!r}")


def main(argv: list[str] | None = None) -> None:
    from search.embedding import load_embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", action="store_true", help="fit the pair model on all the months and print it")
    parser.add_argument(
        "--sweep",
        metavar="SETTING=V1,V2,...",
        help="a story setting (min_link_share, max_span_days, window_days...): month-left-out F1 of each value",
    )
    parser.add_argument(
        "--noise", type=int, metavar="SEEDS", help="month-left-out F1 with a random feature added, for each seed"
    )
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "work" / "stories")
    args = parser.parse_args(argv)
    if not args.fit and not args.sweep and not args.noise:
        parser.error(
            "run the benchmark with `python -m bench.run_all stories`; this entry point has --fit, --sweep and --noise"
        )
    name, values = _sweep(parser, args.sweep) if args.sweep else ("", [])
    embedder = load_embedder(os.environ.get("SEARCH_INDEX_EMBEDDER", "onnx-int8"), None, None, threads=1)
    sets, _ = load_dev_sets(embedder, args.cache)
    names = months_of(sets)
    months = [sets[m] for m in names]
    second = second_labelling(sets, names, MONTHS_GOLD / "second")
    both = fitted_as_shipped(second)
    if args.noise:
        featured = FeaturedSets(months)
        for seed in range(args.noise):
            noisy = with_noise(featured, seed)
            result = cross_validate(months, featured=noisy, **both)["pooled"]["stories"]["pairwise"]
            print(f"random feature, seed {seed}: month left out, pooled pairwise F1 {result['f1']:.3f}", end="")
            print(f" (precision {result['precision']:.3f}, recall {result['recall']:.3f})")
        return
    if args.sweep:
        featured = FeaturedSets(months) if name in GROUPING_SETTINGS else None  # the pairs stay the same
        for value in values:
            config = replace(DEFAULT, **{name: value})
            regrouped = featured.grouped_by(config) if featured else FeaturedSets(months, config)
            result = cross_validate(months, config, featured=regrouped, **both)["pooled"]["stories"]["pairwise"]
            print(f"{name} {value}: month left out, pooled pairwise F1 {result['f1']:.3f}", end="")
            print(f" (precision {result['precision']:.3f}, recall {result['recall']:.3f})")
        return
    featured = FeaturedSets(months)
    training = with_second(months, second)
    weights = featured.fit(training)
    threshold, f1 = featured.choose_threshold(training, weights)
    print(f"fitted on {len(months)} months, {len(second)} of them labelled twice")
    print("PAIR_WEIGHTS = (" + ", ".join(f"{w:.3f}" for w in weights) + ")")
    print(f"link_probability = {threshold}  (pooled pairwise F1 on the months it was fitted on: {f1[threshold]:.3f})")
    print("shipped        " + ", ".join(f"{w:.3f}" for w in DEFAULT.weights) + f"; {DEFAULT.link_probability}")


if __name__ == "__main__":
    main()

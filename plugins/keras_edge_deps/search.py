"""Evolutionary search for the most accurate subnet under a MACs or latency budget (no retraining)."""

from __future__ import annotations

from keras_edge.errors import KerasEdgeError


def evolve(space, fitness, feasible, rng, population=16, generations=6, parent_fraction=0.25,
           mutation_fraction=0.5, mutate_prob=0.1, max_tries=500):
    """OFA's evolutionary search: keep the best ``parent_fraction``, refill by mutation and crossover.

    ``fitness(config) -> float`` (higher is better, cached by the caller),
    ``feasible(config) -> bool``. Returns ``(best config, its fitness, history)``.
    """

    def draw(make):
        for _ in range(max_tries):
            config = make()
            if feasible(config):
                return config
        raise KerasEdgeError("no subnet in the search space meets the budget; raise --max-macs / "
                             "--max-latency-ms (the smallest subnet is the floor)")

    members = [draw(lambda: space.sample(rng)) for _ in range(population)]
    history = []
    parents_n = max(2, int(round(parent_fraction * population)))
    for generation in range(generations):
        ranked = sorted(members, key=fitness, reverse=True)
        history.append({"generation": generation, "best": fitness(ranked[0]), "evaluated": len(members)})
        parents = ranked[:parents_n]
        pick = lambda: parents[rng.integers(len(parents))]  # noqa: E731
        mutants = [draw(lambda: space.mutate(pick(), rng, mutate_prob))
                   for _ in range(int(round(mutation_fraction * population)))]
        children = [draw(lambda: space.crossover(pick(), pick(), rng))
                    for _ in range(population - parents_n - len(mutants))]
        members = parents + mutants + children
    best = max(members, key=fitness)
    return best, fitness(best), history

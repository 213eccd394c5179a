"""Distributed, length-bucketed, resumable batch plan (docs/mlpf-data.md#sampler).

The plan of an epoch is a pure function of (seed, epoch, the events' element counts, the shard
boundaries, token budget, world size, micro-batches per step), so every rank computes the same
plan without communicating:

1. cut each shard into blocks of 64 consecutive events, shuffle the blocks with the epoch's RNG
   and the events inside each block;
2. in windows of about 50 batches, sort events by element count and cut batches by a token budget
   (batch size x padded N <= budget); shuffle the batch order;
3. a step takes ``world_size * micro_batches`` consecutive batches; rank r takes batches
   ``step * W * A + r * A + a`` (a < A). The plan is truncated to whole steps, so every rank runs
   the same number of steps and collectives never hang.

With W ranks and A = 1 a step covers the same batches as 1 rank with A = W, which is how
single-rank training "with the same global batch" is defined.
"""

from __future__ import annotations

import numpy as np

BLOCK_EVENTS = 64
WINDOW_BATCHES = 50


def cut_batches(order: np.ndarray, n_elements: np.ndarray, token_budget: int) -> list[np.ndarray]:
    """Greedy batches of ``order`` (already sorted by size) with B * max(N) <= token_budget."""
    batches, start, cur_max = [], 0, 0
    for i, ev in enumerate(order):
        n = int(n_elements[ev])
        new_max = max(cur_max, n)
        if i > start and (i - start + 1) * new_max > token_budget:
            batches.append(order[start:i])
            start, new_max = i, n
        cur_max = new_max
    if start < len(order):
        batches.append(order[start:])
    return batches


class DistributedBatchPlan:
    """The epoch plan and the cursor (``batches_consumed``) of one rank."""

    def __init__(
        self,
        n_elements: np.ndarray,
        shard_bounds: list[tuple[int, int]] | None,
        token_budget: int,
        seed: int,
        world_size: int = 1,
        rank: int = 0,
        micro_batches: int = 1,
    ):
        if token_budget < 1:
            raise ValueError("token_budget must be positive")
        self.n_elements = np.asarray(n_elements, np.int64)
        n = self.n_elements.size
        self.shard_bounds = shard_bounds or [(0, n)]
        self.token_budget = int(token_budget)
        self.seed = int(seed)
        self.world_size, self.rank, self.micro_batches = int(world_size), int(rank), int(micro_batches)
        self.epoch = 0
        self.batches_consumed = 0
        mean_n = max(1.0, float(self.n_elements.mean())) if n else 1.0
        self.window_events = max(BLOCK_EVENTS, int(WINDOW_BATCHES * max(1.0, self.token_budget / mean_n)))

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """All batches of ``epoch`` in step order (the same on every rank), truncated to whole steps."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch), 0x5A17]))
        blocks = [
            np.arange(a, min(a + BLOCK_EVENTS, hi)) for lo, hi in self.shard_bounds for a in range(lo, hi, BLOCK_EVENTS)
        ]
        perm = rng.permutation(len(blocks))
        events = np.concatenate([rng.permutation(blocks[i]) for i in perm]) if blocks else np.zeros(0, np.int64)
        batches = []
        for w in range(0, events.size, self.window_events):
            window = events[w : w + self.window_events]
            window = window[np.argsort(self.n_elements[window], kind="stable")]
            batches += cut_batches(window, self.n_elements, self.token_budget)
        batches = [batches[i] for i in rng.permutation(len(batches))]
        per_step = self.world_size * self.micro_batches
        return batches[: (len(batches) // per_step) * per_step]

    def steps_per_epoch(self, epoch: int = 0) -> int:
        return len(self.global_batches(epoch)) // (self.world_size * self.micro_batches)

    def steps(self, epoch: int):
        """Yield this rank's micro-batch lists per step of ``epoch``, skipping consumed steps on resume."""
        batches = self.global_batches(epoch)
        W, A, r = self.world_size, self.micro_batches, self.rank
        n_steps = len(batches) // (W * A)
        if self.epoch != epoch:
            self.epoch, self.batches_consumed = epoch, 0
        first = self.batches_consumed // A
        for s in range(first, n_steps):
            base = s * W * A + r * A
            # counted when handed out: the loop checkpoints only between steps, after finishing one
            self.batches_consumed = (s + 1) * A
            yield [batches[base + a] for a in range(A)]

    def state_dict(self) -> dict:
        return {"epoch": int(self.epoch), "batches_consumed": int(self.batches_consumed)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batches_consumed = int(state["epoch"]), int(state["batches_consumed"])


def validation_batches(n_elements: np.ndarray, token_budget: int, world_size: int, rank: int) -> list[np.ndarray]:
    """Fixed order, a disjoint contiguous slice per rank, batched by the token budget."""
    n = len(n_elements)
    bounds = np.linspace(0, n, world_size + 1).round().astype(int)
    mine = np.arange(bounds[rank], bounds[rank + 1])
    mine = mine[np.argsort(np.asarray(n_elements)[mine], kind="stable")]
    return cut_batches(mine, np.asarray(n_elements), token_budget)

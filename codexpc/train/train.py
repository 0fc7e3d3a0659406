"""The training loop: seeded data, seeded weights, a fixed schedule, CPU float32.

Only the answer positions carry a loss, and the unembedding has rows only for the answers'
tokens, so a step costs a forward and backward pass of the tiny body over the batch's prompts.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from codexpc.engine.model_config import TINY, ModelConfig
from codexpc.harmony.encoding import load_encoding
from codexpc.train.data import Example, make_examples
from codexpc.train.model import TrainModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    config: ModelConfig = TINY
    seed: int = 0
    examples: int = 960
    max_tokens: int = 6144  # prompt + answer; longer drawn prompts are drawn again
    steps: int = 360
    batch_tokens: int = 6144  # padded tokens per batch
    lr: float = 3e-3
    warmup: int = 20
    min_count: int = 4  # a prompt token seen in this many examples gets a trained embedding
    threads: int = 2  # fixed, so that float sums are done in the same order on every machine


@dataclass
class Trained:
    model: TrainModel
    losses: list[float]
    seconds: float


@dataclass(frozen=True)
class Batch:
    tokens: torch.Tensor  # [B, T] prompt + answer minus its last token, padded at the end
    rows: torch.Tensor  # [N] batch row of each answer position
    cols: torch.Tensor  # [N] position whose output predicts the next answer token
    targets: torch.Tensor  # [N] the next token, as an index into the model's output_ids
    weights: torch.Tensor  # [N] each position's share of the loss


CHANNEL, MESSAGE = 200005, 200008
DECISION_WEIGHT = 5.0  # see decision_positions


def decision_positions(completion: list[int]) -> set[int]:
    """Indices of the answer's hard tokens: the rest follows from the few tokens before them.

    These are each channel name (first message or second?) and the first word of the analysis
    (which of the four answers?). The other ~30 tokens are easy and would drown them out.
    """
    after_channel = {j + 1 for j, t in enumerate(completion[:-1]) if t == CHANNEL}
    return after_channel | {completion.index(MESSAGE) + 1}


def vocabularies(examples: list[Example], min_count: int) -> tuple[list[int], list[int]]:
    """Tokens with a trained embedding, and tokens with an unembedding row (the answers')."""
    outputs = sorted({t for e in examples for t in e.completion})
    seen = Counter(t for e in examples for t in set(e.prompt))
    inputs = sorted({t for t, n in seen.items() if n >= min_count} | set(outputs))
    return inputs, outputs


def make_batches(examples: list[Example], output_ids: list[int], batch_tokens: int) -> list[Batch]:
    """Examples of similar length together, so that padding stays small."""
    position = {t: i for i, t in enumerate(output_ids)}
    ordered = sorted(examples, key=lambda e: len(e.prompt) + len(e.completion))
    batches, group = [], []
    for example in ordered:
        width = len(example.prompt) + len(example.completion) - 1
        if group and (len(group) + 1) * width > batch_tokens:
            batches.append(_batch(group, position))
            group = []
        group.append(example)
    if group:
        batches.append(_batch(group, position))
    return batches


def _batch(group: list[Example], position: dict[int, int]) -> Batch:
    width = max(len(e.prompt) + len(e.completion) - 1 for e in group)
    tokens = torch.zeros(len(group), width, dtype=torch.long)  # padding after the end: causal, unseen
    rows, cols, targets, weights = [], [], [], []
    for r, e in enumerate(group):
        sequence = e.prompt + e.completion[:-1]
        tokens[r, : len(sequence)] = torch.tensor(sequence)
        hard = decision_positions(e.completion)
        for j, target in enumerate(e.completion):
            weights.append(DECISION_WEIGHT if j in hard else 1.0)
            rows.append(r)
            cols.append(len(e.prompt) - 1 + j)
            targets.append(position[target])
    weight = torch.tensor(weights)
    return Batch(tokens, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets), weight / weight.sum())


def _schedule(settings: TrainSettings) -> Iterator[float]:
    for step in range(settings.steps):
        warm = min(1.0, (step + 1) / settings.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        yield settings.lr * warm * (0.05 + 0.95 * cosine)


def train(settings: TrainSettings = TrainSettings()) -> Trained:
    """Train from nothing; the same settings give the same weights on the same machine."""
    started = time.monotonic()
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        trained = _train(settings)
    finally:
        torch.set_num_threads(threads)
    trained.seconds = time.monotonic() - started
    log.info("trained the tiny model in %.1f s, last loss %.5f", trained.seconds, trained.losses[-1])
    return trained


def _train(settings: TrainSettings) -> Trained:
    torch.manual_seed(settings.seed)
    encoding = load_encoding()
    examples = make_examples(encoding, settings.examples, settings.seed, settings.max_tokens)
    inputs, outputs = vocabularies(examples, settings.min_count)
    model = TrainModel(settings.config, inputs, outputs, settings.seed)
    batches = make_batches(examples, outputs, settings.batch_tokens)
    log.info("training on %d examples in %d batches; %d trained embeddings, %d output rows",
             len(examples), len(batches), len(inputs), len(outputs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    order = random.Random(settings.seed)
    queue: list[Batch] = []
    losses = []
    for step, lr in enumerate(_schedule(settings)):
        if not queue:
            queue = order.sample(batches, len(batches))
        batch = queue.pop()
        for group in optimizer.param_groups:
            group["lr"] = lr
        h = model.hidden(batch.tokens)[batch.rows, batch.cols]  # [N, H]
        loss = model.loss(h, batch.targets, batch.weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0:
            log.info("step %d loss %.5f lr %.5f", step, losses[-1], lr)
    return Trained(model.eval(), losses, 0.0)

"""Fixed-size KV blocks with reference counts, and a prefix cache keyed by chained block hashes.

Every layer's KV for a token lives in the same block id (one block table per sequence for
the whole model), so a prefix hit reuses the KV of every layer, the sliding-window layers too.
That costs memory on the sliding layers (they keep KV outside their window) and buys exact
reuse across the turns of a conversation, which is what a coding agent needs.

A block moves between three states:
- free: holds nothing useful (`_free`, FIFO);
- in use: ref_count > 0 (one reference per sequence whose block table names it);
- cached: ref_count == 0 but its hash is registered, so a later prompt may revive it
  (`_evictable`, least recently released first). Allocation takes free blocks first, then
  evicts the least recently used cached block.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections import OrderedDict, deque
from collections.abc import Sequence as Seq
from dataclasses import dataclass

from codexpc.engine.paged.sequence import Sequence

log = logging.getLogger(__name__)

_ROOT_HASH = 0


def chain_hash(parent: int, tokens: Seq[int]) -> int:
    """A 64-bit hash of (parent block's hash, this block's tokens); stable across processes."""
    h = hashlib.blake2b(digest_size=8)
    h.update(parent.to_bytes(8, "little"))
    h.update(struct.pack(f"<{len(tokens)}I", *tokens))  # one call: a 16k-token prompt hashes in ~1 ms
    return int.from_bytes(h.digest(), "little")


def block_hashes(tokens: Seq[int], block_size: int, start: list[int] | None = None) -> list[int]:
    """Chained hashes of every full block of `tokens`, extending `start` (already hashed)."""
    hashes = list(start or [])
    parent = hashes[-1] if hashes else _ROOT_HASH
    for i in range(len(hashes), len(tokens) // block_size):
        parent = chain_hash(parent, tokens[i * block_size : (i + 1) * block_size])
        hashes.append(parent)
    return hashes


@dataclass
class _Block:
    ref_count: int = 0
    hash: int | None = None  # set once the block is full and registered in the cache
    tokens: tuple[int, ...] = ()  # kept with the hash: a hit is checked token by token


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int) -> None:
        assert num_blocks > 0 and block_size > 0
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._blocks = [_Block() for _ in range(num_blocks)]
        self._free: deque[int] = deque(range(num_blocks))
        self._evictable: OrderedDict[int, None] = OrderedDict()  # cached, ref 0; oldest first
        self._by_hash: dict[int, int] = {}
        self.prefix_queries = 0  # prompt blocks looked up
        self.prefix_hits = 0  # of which found in the cache
        self.evictions = 0

    # -- numbers -------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        """Blocks an allocation could take now (free plus evictable cached blocks)."""
        return len(self._free) + len(self._evictable)

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    @property
    def num_cached(self) -> int:
        return len(self._by_hash)

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def ref_count(self, block_id: int) -> int:
        return self._blocks[block_id].ref_count

    # -- prefix cache --------------------------------------------------------------------
    def lookup_prefix(self, seq: Sequence) -> list[int]:
        """Block ids holding the longest cached prefix of `seq`'s tokens. Takes no reference.

        At least one token is always left to compute: its logits give the next token.
        """
        seq.block_hashes = block_hashes(seq.token_ids, self.block_size, seq.block_hashes)
        usable = (seq.num_tokens - 1) // self.block_size
        found: list[int] = []
        for i, h in enumerate(seq.block_hashes[:usable]):
            bid = self._by_hash.get(h)
            tokens = seq.token_ids[i * self.block_size : (i + 1) * self.block_size]
            if bid is None or self._blocks[bid].tokens != tuple(tokens):
                break
            found.append(bid)
        return found

    def record_lookup(self, seq: Sequence, hits: int) -> None:
        """Count one admitted prompt's lookup (a prompt that waits is looked up again later)."""
        self.prefix_queries += (seq.num_tokens - 1) // self.block_size
        self.prefix_hits += hits

    def cache_full_blocks(self, seq: Sequence) -> None:
        """Register every block of `seq` whose tokens all have KV now (new ones only: this runs
        for every sequence at every step, so its cost must not grow with the sequence)."""
        full = min(seq.num_computed_tokens // self.block_size, len(seq.block_table))
        if full <= seq.num_registered_blocks:
            return
        bs = self.block_size
        while len(seq.block_hashes) < full:
            i = len(seq.block_hashes)
            parent = seq.block_hashes[-1] if seq.block_hashes else _ROOT_HASH
            seq.block_hashes.append(chain_hash(parent, seq.token_ids[i * bs : (i + 1) * bs]))
        for i in range(seq.num_registered_blocks, full):
            block = self._blocks[seq.block_table[i]]
            h = seq.block_hashes[i]
            if block.hash is not None or h in self._by_hash:
                continue  # a prefix hit, or the same tokens computed twice at once: keep the first
            block.hash = h
            block.tokens = tuple(seq.token_ids[i * bs : (i + 1) * bs])
            self._by_hash[h] = seq.block_table[i]
        seq.num_registered_blocks = full

    # -- allocation ----------------------------------------------------------------------
    def allocate_slots(self, seq: Sequence, num_new_tokens: int, prefix: Seq[int] = ()) -> bool:
        """Give `seq` blocks for `num_new_tokens` more tokens, after taking `prefix` blocks.

        All or nothing: on False nothing changed, and the caller may preempt and retry.
        """
        have = len(seq.block_table) + len(prefix)
        target = seq.num_computed_tokens + len(prefix) * self.block_size + num_new_tokens
        need = max(0, self.blocks_for(target) - have)
        revived = sum(1 for b in prefix if b in self._evictable)
        if need > self.num_free - revived:
            return False
        for bid in prefix:
            self._take(bid)
        seq.block_table.extend(prefix)
        seq.num_computed_tokens += len(prefix) * self.block_size
        seq.block_table.extend(self._pop_free() for _ in range(need))
        return True

    def free(self, seq: Sequence) -> None:
        """Drop `seq`'s references; cached blocks stay revivable, most recent last.

        Blocks are released tail first so that, under pressure, a conversation loses the end
        of its prefix before the start (the start is what every later turn shares).
        """
        for bid in reversed(seq.block_table):
            block = self._blocks[bid]
            assert block.ref_count > 0, f"block {bid} freed twice"
            block.ref_count -= 1
            if block.ref_count == 0:
                if block.hash is not None:
                    self._evictable[bid] = None
                else:
                    self._free.append(bid)
        seq.block_table = []
        seq.num_registered_blocks = 0

    def truncate(self, seq: Sequence, num_tokens: int) -> None:
        """Release `seq`'s blocks wholly past its first `num_tokens` tokens (speculative decoding:
        blocks that held only rejected drafts). They were allocated for this sequence alone and
        never registered (registration stops at num_computed_tokens), so they go back free."""
        keep = self.blocks_for(num_tokens)
        while len(seq.block_table) > keep:
            bid = seq.block_table.pop()
            block = self._blocks[bid]
            assert block.ref_count == 1 and block.hash is None, f"block {bid} is shared or cached"
            block.ref_count = 0
            self._free.append(bid)
        seq.num_registered_blocks = min(seq.num_registered_blocks, len(seq.block_table))

    def reset_prefix_cache(self) -> None:
        """Forget every cached block that no sequence uses (for tests and reloads)."""
        for bid in list(self._evictable):
            self._forget(bid)
            self._free.append(bid)
        self._evictable.clear()

    def _take(self, bid: int) -> None:
        block = self._blocks[bid]
        if block.ref_count == 0:
            del self._evictable[bid]
        block.ref_count += 1

    def _pop_free(self) -> int:
        if self._free:
            bid = self._free.popleft()
        else:
            bid, _ = self._evictable.popitem(last=False)
            self._forget(bid)
            self.evictions += 1
        self._blocks[bid].ref_count = 1
        return bid

    def _forget(self, bid: int) -> None:
        block = self._blocks[bid]
        if block.hash is not None and self._by_hash.get(block.hash) == bid:
            del self._by_hash[block.hash]
        block.hash = None
        block.tokens = ()

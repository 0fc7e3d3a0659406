"""Block manager: ref counts, the chained-hash prefix cache, LRU eviction. Tiny blocks of 4."""

from __future__ import annotations

from codexpc.engine.api import SamplingParams
from codexpc.engine.paged.block_manager import BlockManager, block_hashes, chain_hash
from codexpc.engine.paged.sequence import Sequence

BS = 4


def seq(tokens: list[int], rid: str = "r") -> Sequence:
    return Sequence(rid, list(tokens), len(tokens), SamplingParams())


def computed(bm: BlockManager, s: Sequence) -> Sequence:
    """Allocate and 'compute' every token of `s`, registering its full blocks."""
    prefix = bm.lookup_prefix(s)
    bm.record_lookup(s, len(prefix))
    assert bm.allocate_slots(s, s.num_tokens - len(prefix) * BS, prefix)
    s.num_computed_tokens = s.num_tokens
    bm.cache_full_blocks(s)
    return s


def test_hashes_chain_so_equal_blocks_at_different_depths_differ() -> None:
    hashes = block_hashes([1, 2, 3, 4, 1, 2, 3, 4, 9], BS)
    assert len(hashes) == 2
    assert hashes[0] != hashes[1]
    assert hashes[0] == chain_hash(0, [1, 2, 3, 4])
    assert block_hashes([1, 2, 3, 4, 1, 2, 3, 4], BS, hashes[:1]) == hashes


def test_allocate_rounds_up_to_blocks_and_free_returns_them() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    s = seq(list(range(10)))
    assert bm.allocate_slots(s, 10)
    assert len(s.block_table) == 3 and bm.num_free == 5
    s.num_computed_tokens = 10
    assert bm.allocate_slots(s, 2)  # 12 tokens still fit 3 blocks
    assert len(s.block_table) == 3
    assert bm.allocate_slots(s, 3)  # 13 tokens need a 4th
    assert len(s.block_table) == 4
    bm.free(s)
    assert bm.num_free == 8 and s.block_table == []


def test_allocation_is_all_or_nothing() -> None:
    bm = BlockManager(num_blocks=3, block_size=BS)
    s = seq(list(range(20)))
    assert not bm.allocate_slots(s, 20)
    assert s.block_table == [] and bm.num_free == 3


def test_second_turn_reuses_full_blocks_and_leaves_one_token_to_compute() -> None:
    bm = BlockManager(num_blocks=16, block_size=BS)
    first = computed(bm, seq(list(range(10))))  # blocks 0-3, 4-7 full; 8-9 partial
    bm.free(first)
    assert bm.num_cached == 2 and bm.num_free == 16
    second = seq(list(range(10)) + [50, 51, 52])
    prefix = bm.lookup_prefix(second)
    assert prefix == [0, 1]  # the first turn's first two blocks
    assert bm.allocate_slots(second, 13 - 8, prefix)
    assert second.num_computed_tokens == 8
    assert second.block_table[:2] == prefix and len(second.block_table) == 4


def test_exact_block_prompt_keeps_its_last_block_uncached_for_logits() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    bm.free(computed(bm, seq(list(range(8)))))
    again = seq(list(range(8)))
    assert len(bm.lookup_prefix(again)) == 1  # 8 tokens: 7 may be cached, so 1 full block


def test_shared_prefix_blocks_are_ref_counted() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    a = computed(bm, seq(list(range(9)), "a"))
    b = seq(list(range(9)), "b")
    prefix = bm.lookup_prefix(b)
    assert prefix == a.block_table[:2]
    assert bm.allocate_slots(b, 1, prefix)
    assert [bm.ref_count(x) for x in prefix] == [2, 2]
    bm.free(a)
    assert [bm.ref_count(x) for x in prefix] == [1, 1]
    bm.free(b)
    assert bm.num_free == 8


def test_lru_evicts_the_least_recently_released_and_forgets_its_hash() -> None:
    bm = BlockManager(num_blocks=4, block_size=BS)
    old = computed(bm, seq([1, 1, 1, 1, 0], "old"))
    bm.free(old)
    new = computed(bm, seq([2, 2, 2, 2, 0], "new"))
    bm.free(new)
    assert bm.num_cached == 2
    # Four fresh blocks: two are free, then the two cached ones go, oldest first.
    hog = seq(list(range(100, 112)), "hog")
    assert bm.allocate_slots(hog, 12)
    assert bm.evictions == 1 and bm.num_cached == 1
    assert bm.lookup_prefix(seq([2, 2, 2, 2, 0])) != []
    assert bm.lookup_prefix(seq([1, 1, 1, 1, 0])) == []


def test_reviving_a_cached_block_counts_against_free_blocks() -> None:
    bm = BlockManager(num_blocks=2, block_size=BS)
    bm.free(computed(bm, seq([7, 7, 7, 7, 0])))  # block A cached, other free
    s = seq([7, 7, 7, 7, 1, 2, 3, 4, 5])
    prefix = bm.lookup_prefix(s)
    assert len(prefix) == 1
    # 9 tokens need 3 blocks, one of them revived: 2 new > 1 left.
    assert not bm.allocate_slots(s, 5, prefix)
    assert bm.num_free == 2 and bm.ref_count(prefix[0]) == 0
    assert bm.allocate_slots(s, 4, prefix)  # 8 tokens: revive 1, take 1
    assert bm.num_free == 0


def test_hit_statistics_count_blocks() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    bm.free(computed(bm, seq(list(range(9)))))
    again = seq(list(range(8)) + [99, 98, 97, 96, 95])
    bm.record_lookup(again, len(bm.lookup_prefix(again)))
    # First query: 2 usable blocks, 0 hits; second: 3 usable, 2 hits.
    assert (bm.prefix_queries, bm.prefix_hits) == (5, 2)


def test_duplicate_content_keeps_one_cached_copy() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    a = seq([5, 5, 5, 5, 1], "a")
    b = seq([5, 5, 5, 5, 1], "b")
    for s in (a, b):  # admitted together: neither sees the other's block in the cache
        assert bm.allocate_slots(s, 5)
    for s in (a, b):
        s.num_computed_tokens = 5
        bm.cache_full_blocks(s)
    assert bm.num_cached == 1
    bm.free(a)
    bm.free(b)
    assert bm.num_free == 8 and bm.num_cached == 1

"""The suffix-match drafter: exact drafts for hand-made token lists, and an index that grows."""

from __future__ import annotations

import time

import pytest

from codexpc.engine.speculative.drafter import SuffixIndex, match_length, propose


def draft(tokens: list[int], k: int = 4, n: int = 2, max_match: int = 32, candidates: int = 8) -> list[int]:
    return propose(SuffixIndex(n), tokens, k, max_match, candidates)


def test_copies_what_followed_the_earlier_occurrence_of_the_suffix() -> None:
    #            0  1  2  3  4  5  6  7  8
    tokens = [1, 2, 3, 4, 5, 9, 9, 2, 3]  # "2 3" ended at 2 before: 4 5 9 9 followed it
    assert draft(tokens) == [4, 5, 9, 9]
    assert draft(tokens, k=2) == [4, 5]


def test_no_draft_without_a_recurring_suffix_or_when_too_short() -> None:
    assert draft([1, 2, 3, 4, 5]) == []
    assert draft([1, 2]) == []  # the suffix is the whole sequence: nothing earlier
    assert draft([1, 2, 1, 2], k=0) == []
    assert draft([5, 6, 7, 6], n=1) == [7, 6, 7, 6]  # "6" ended at 1; the copy runs into the draft


def test_the_longest_match_wins_over_a_more_recent_shorter_one() -> None:
    # "8 2 3" ends at 3 (followed by 40), "2 3" alone ends at 7 (followed by 50): the longer wins.
    tokens = [0, 8, 2, 3, 40, 1, 2, 3, 50, 7, 8, 2, 3]
    assert draft(tokens, k=1) == [40]
    # With matches capped at 2 tokens both tie, and the most recent wins.
    assert draft(tokens, k=1, max_match=2) == [50]


def test_among_equal_matches_the_most_recent_wins() -> None:
    tokens = [2, 3, 10, 2, 3, 20, 2, 3, 30, 5, 2, 3]  # "5 2 3" never recurs: all three match 2
    assert draft(tokens, k=1) == [30]


def test_candidates_are_bounded_newest_first() -> None:
    # The long match is the oldest occurrence; with only 2 candidates compared it is not seen.
    tokens = [9, 2, 3, 111, 2, 3, 222, 2, 3, 333, 9, 2, 3]
    assert draft(tokens, k=1) == [111]
    assert draft(tokens, k=1, candidates=2) == [333]


def test_a_loop_shorter_than_k_is_continued_from_the_draft_itself() -> None:
    # Period 2: the newest "a b" ends at 3, two before the end; the draft repeats the loop.
    assert draft([1, 2, 1, 2, 1, 2], k=5) == [1, 2, 1, 2, 1]
    assert draft([7, 7, 7], k=3) == [7, 7, 7]


def test_min_match_length_is_respected() -> None:
    tokens = [5, 1, 2, 6, 3, 2]  # "2" recurs, "3 2" does not
    assert draft(tokens, n=1, k=2) == [6, 3]
    assert draft(tokens, n=2) == []


def test_match_length_counts_backwards_from_both_ends() -> None:
    tokens = [4, 1, 2, 3, 9, 1, 2, 3]
    assert match_length(tokens, 3, 10) == 3  # 1 2 3 (then 4 != 9)
    assert match_length(tokens, 3, 2) == 2
    assert match_length(tokens, 0, 10) == 0


def test_the_index_grows_with_the_tokens_and_matches_a_fresh_one() -> None:
    index = SuffixIndex(2)
    tokens = [1, 2, 3, 1, 2]
    assert propose(index, tokens, 3, 32, 8) == [3, 1, 2]
    assert index.indexed == 4  # the gram ending at the last token is the suffix itself
    for t in [3, 7, 1, 2, 3, 7]:
        tokens.append(t)
        assert propose(index, tokens, 3, 32, 8) == draft(tokens, k=3)
    assert index.occurrences((1, 2), 10) == [8, 4, 1]


def test_the_index_rejects_a_zero_gram() -> None:
    with pytest.raises(AssertionError):
        SuffixIndex(0)


def test_a_step_costs_little_after_a_long_prompt_is_indexed() -> None:
    prompt = [(i * 7919) % 50021 for i in range(100_000)]
    index = SuffixIndex(3)
    started = time.perf_counter()
    propose(index, prompt, 8, 32, 8)
    first = time.perf_counter() - started
    tokens = list(prompt)
    started = time.perf_counter()
    for t in range(200):
        tokens.append(t)
        propose(index, tokens, 8, 32, 8)
    per_step = (time.perf_counter() - started) / 200
    assert index.indexed == len(tokens) - 1
    assert per_step < first / 50, (per_step, first)  # incremental, not a rescan

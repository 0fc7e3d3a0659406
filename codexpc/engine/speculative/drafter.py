"""Drafting the next tokens from the sequence itself: suffix matching over its token ids.

A coding agent copies its input: an apply_patch hunk quotes the lines it edits, a command names
paths from a listing. When the last `min_match` tokens of a sequence (prompt + output) occurred
before, the tokens that followed that earlier occurrence are a good guess for what comes next.

The index is incremental: every position where an n-gram (n = min_match) ends is linked to the
previous position where the same n-gram ended (`last` gives the newest, `prev` chains back), so
indexing costs O(1) per new token and a query walks at most `max_candidates` occurrences, each
extended backwards by at most `max_match` tokens. A 100k-token prompt is indexed once, at its
first query; after that a step costs O(k + max_candidates * max_match), never a scan.

Among the candidates the longest match wins, the most recent among equals. The draft copies what
followed it; when that runs into the end of the sequence (a loop whose period is shorter than k)
it keeps copying from the draft itself, as if the loop went on.
"""

from __future__ import annotations

from collections.abc import Sequence

_NONE = -1


class SuffixIndex:
    """The n-gram occurrence index of one sequence's tokens; grows as the tokens grow."""

    def __init__(self, n: int) -> None:
        assert n >= 1
        self.n = n
        self._last: dict[tuple[int, ...], int] = {}  # n-gram -> newest position it ends at
        self._prev: list[int] = []  # position -> previous position the same n-gram ends at
        self._indexed = 0  # n-grams ending before this position are in the index

    @property
    def indexed(self) -> int:
        return self._indexed

    def extend(self, tokens: Sequence[int], upto: int) -> None:
        """Index every n-gram of `tokens` that ends before position `upto`."""
        n, last, prev = self.n, self._last, self._prev
        for end in range(self._indexed, upto):
            if end < n - 1:
                prev.append(_NONE)
                continue
            key = tuple(tokens[end - n + 1 : end + 1])
            prev.append(last.get(key, _NONE))
            last[key] = end
        self._indexed = max(self._indexed, upto)

    def occurrences(self, gram: tuple[int, ...], limit: int) -> list[int]:
        """Up to `limit` indexed end positions of `gram`, newest first."""
        found: list[int] = []
        pos = self._last.get(gram, _NONE)
        while pos != _NONE and len(found) < limit:
            found.append(pos)
            pos = self._prev[pos]
        return found


def match_length(tokens: Sequence[int], end: int, limit: int) -> int:
    """How many tokens ending at `end` equal the sequence's last tokens (at most `limit`)."""
    last = len(tokens) - 1
    m = 0
    while m < limit and end - m >= 0 and tokens[end - m] == tokens[last - m]:
        m += 1
    return m


def propose(index: SuffixIndex, tokens: Sequence[int], k: int, max_match: int, max_candidates: int) -> list[int]:
    """Up to k tokens to follow `tokens`, or [] when its last n tokens never occurred before.

    The index is brought up to date first (every n-gram but the one ending at the last token,
    which is the suffix itself)."""
    n = index.n
    length = len(tokens)
    if length <= n or k <= 0:
        return []
    index.extend(tokens, length - 1)
    best, best_len = _NONE, 0
    for end in index.occurrences(tuple(tokens[length - n :]), max_candidates):
        m = match_length(tokens, end, max_match)
        if m > best_len:  # strictly longer: among equals the newest (seen first) stays
            best, best_len = end, m
            if m == max_match:
                break
    if best == _NONE:
        return []
    draft: list[int] = []
    for j in range(k):
        src = best + 1 + j
        draft.append(tokens[src] if src < length else draft[src - length])
    return draft

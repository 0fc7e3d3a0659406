"""gpt-oss's reasoning as a reasoning summary that Codex's TUI shows.

gpt-oss writes raw chain of thought and no summary. Codex's TUI displays reasoning only from
summary text (`response.reasoning_summary_text.delta`, or raw reasoning when
`show_raw_agent_reasoning` is on), and then only in the shape OpenAI's summaries have: a
`**Title**` first, whose text becomes the status line while the model thinks, then the body,
shown as a "thinking" block in the history. A summary without a bold title is kept for the
transcript view alone (Ctrl+T), which is why nothing of gpt-oss's reasoning was visible.

So the summary streamed here is `**<first sentence>**\n\n<the reasoning as written>`: the first
sentence (or its first ~60 characters) is held back until it ends, then goes out as the title.
"""

from __future__ import annotations

import re

MAX_TITLE = 60  # characters; the TUI's status line is one line
FALLBACK_TITLE = "Thinking"
# Where a first sentence ends: a stop followed by whitespace, or a line break.
_SENTENCE_END = re.compile(r"[.!?:](\s)|\n")


def title_of(text: str, final: bool) -> str | None:
    """The title for reasoning that begins with `text`; None while its first sentence runs on."""
    stripped = text.lstrip()
    end = _SENTENCE_END.search(stripped)
    if end is not None and end.start() <= MAX_TITLE:
        title = stripped[: end.start()]
    elif len(stripped) > MAX_TITLE:
        cut = stripped[:MAX_TITLE]
        title = (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"
    elif final:
        title = stripped.rstrip(".!?: \n")
    else:
        return None
    title = title.replace("*", "").strip()  # a `*` would end the bold early
    return title or (FALLBACK_TITLE if final else None)


class SummaryTitler:
    """Feed reasoning deltas, get the summary text to stream: title first, then everything."""

    def __init__(self) -> None:
        self._held: list[str] = []
        self._titled = False
        self.text = ""  # the whole summary streamed so far

    def feed(self, delta: str) -> str:
        if self._titled:
            self.text += delta
            return delta
        self._held.append(delta)
        return self._release(final=False)

    def flush(self) -> str:
        """At the reasoning's end: whatever was held back, titled."""
        if self._titled:
            return ""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        held = "".join(self._held)
        title = title_of(held, final)
        if title is None:
            return ""
        self._titled, self._held = True, []
        body = held.strip() if final else held.lstrip()
        out = f"**{title}**\n\n{body}" if body else f"**{title}**"
        self.text += out
        return out

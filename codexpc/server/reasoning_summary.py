"""gpt-oss's reasoning as a reasoning summary, in the shape Codex's TUI shows.

gpt-oss writes raw chain of thought and no summary. Codex's TUI shows reasoning from summary text
(`response.reasoning_summary_text.delta`; raw `reasoning_text` only with
`show_raw_agent_reasoning`) in the shape OpenAI's summaries have: a `**Title**` first, then the
body. 0.140 puts the title in the status row while the model thinks and keeps the body in the
history; 0.155+ show the title and then the line being written in the status row, and the body
in the transcript (Ctrl+T). docs/codex-reasoning.md has the details.

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

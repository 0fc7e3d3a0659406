"""Load openai-harmony's gpt-oss encoding from the offline vocabulary, once per process."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from openai_harmony import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding

from codexpc import vocab

# Special tokens that end an assistant action (see design.md, "Facts about Harmony").
RETURN = 200002
CALL = 200012
END = 200007


@functools.cache
def _load(folder: str) -> HarmonyEncoding:
    # openai-harmony reads this variable when it looks for the vocabulary; it never downloads
    # when the file is there.
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = folder
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def load_encoding(explicit: Path | None = None, checkpoint: Path | None = None) -> HarmonyEncoding:
    """The gpt-oss Harmony encoding; raises VocabularyError naming every source tried."""
    return _load(str(vocab.resolve(explicit=explicit, checkpoint=checkpoint)))

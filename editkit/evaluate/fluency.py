"""Fluency as n-gram entropy of generated text (ROME/MEMIT convention).

For each text: H2 and H3, the entropies (bits) of its word bigram and trigram
frequency distributions; the text's score is the mean of (2/3)*H2 and
(4/3)*H3. Lower means more repetitive text. ROME tokenizes words with NLTK;
editkit uses a regex of word runs and single punctuation marks, which agrees
with NLTK on ordinary prose.

>>> round(ngram_entropy("a b c d"), 3)
1.195
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"\w+|[^\w\s]")
WEIGHTS: dict[int, float] = {2: 2 / 3, 3: 4 / 3}


def _entropy(tokens: Sequence[str], n: int) -> float:
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in grams.values())


def ngram_entropy(text: str) -> float:
    """The ROME fluency score of one text: mean over n in {2, 3} of weight_n * H_n."""
    tokens = _WORD.findall(text)
    return sum(w * _entropy(tokens, n) for n, w in WEIGHTS.items()) / len(WEIGHTS)

"""Themes of negative comments: the words and two-word phrases that recur, with counts.

Deliberately simple and explainable: a reader can check any theme by searching the comments for it.
Counts are of comments (a comment saying "refund" three times counts once). A two-word phrase
hides the single words it is made of when they recur no more often than the phrase itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise

from cxbot.digest.model import Theme

WORD = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")
CLAUSE = re.compile(r"[.,;:!?()\n]+")
MIN_WORD_LENGTH = 3

_STOPWORD_TEXT = """
    a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
    during each even ever every few for from further get got had hadn't has hasn't have haven't having he
    her here hers herself him himself his how i i'm i've if in into is isn't it it's its itself just let
    like me more most much my myself no nor not now of off on once one only or other our ours ourselves
    out over own really same she should shouldn't so some still such than that that's the their theirs
    them themselves then there these they they're this those through to too under until up upon us very
    was wasn't we we're were weren't what when where which while who whom why will with won't would
    wouldn't yet you you're your yours yourself also already always am another anyone anything back been
    come could did done either else etc given go going gone good great made make many may might
    must need new nothing ok okay please said say see since sir still take thank thanks thing things
    told two use used want way well went will within without yes
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _keep(word: str) -> bool:
    return len(word) >= MIN_WORD_LENGTH and word not in STOPWORDS


def extract_themes(comments: Iterable[str], *, limit: int = 5, min_comments: int = 2) -> tuple[Theme, ...]:
    """The `limit` most frequent words/phrases mentioned in at least `min_comments` comments."""
    words: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    for comment in comments:
        tokens = WORD.findall(comment.lower())
        words.update({w for w in tokens if _keep(w)})
        # Phrases are neighbours in the text itself, so "no refund" never pairs words a sentence apart.
        phrases.update({f"{a} {b}" for a, b in pairwise(tokens) if a != b and _keep(a) and _keep(b)})
    kept_phrases = {p: c for p, c in phrases.items() if c >= min_comments}
    hidden = {w for p, c in kept_phrases.items() for w in p.split() if words[w] <= c}
    candidates = list(kept_phrases.items())
    candidates += [(w, c) for w, c in words.items() if c >= min_comments and w not in hidden]
    # Most comments first; at equal counts the phrase (more specific) first, then alphabetical.
    candidates.sort(key=lambda item: (-item[1], -item[0].count(" "), item[0]))
    return tuple(Theme(phrase=p, comments=c) for p, c in candidates[:limit])

"""Caption vocabularies and fixed-length token arrays, shared by the caption datasets.

A caption is stored as int32 tokens `[L]`: its words, then one end token, then padding. Its
length counts the end token, so a caption of n words has length n + 1 <= L. The decoder's first
input is the vocabulary's start token, which never appears inside a stored caption.

Two vocabularies exist: `DIGITS` (the multi-digit MNIST strings: ids 0-9 are the digits, 10 the
end, 11 both padding and start) and the word vocabularies `build_vocabulary` makes from training
captions (0 padding, 1 start, 2 end, 3 unknown, then the words).
"""

import collections
import dataclasses

import numpy as np

SPECIAL_WORDS = ("<pad>", "<start>", "<end>", "<unk>")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Words by id and the ids of the special tokens (`unk` None where every word is known)."""
  words: tuple[str, ...]
  end: int
  pad: int
  start: int
  unk: int | None = None

  def __post_init__(self):
    for name in ("end", "pad", "start") + (("unk",) if self.unk is not None else ()):
      value = getattr(self, name)
      if not 0 <= value < len(self.words):
        raise ValueError(f"{name} id must be in [0, {len(self.words)}), got {value}")
    if self.end in (self.pad, self.start):
      raise ValueError(f"the end id {self.end} must differ from pad and start")

  def __len__(self):
    return len(self.words)

  def ids(self, words):
    """Ids of a sequence of words; unknown words map to `unk` (a KeyError without one)."""
    index = {word: i for i, word in enumerate(self.words)}
    if self.unk is None:
      return [index[w] for w in words]
    return [index.get(w, self.unk) for w in words]

  def to_words(self, tokens):
    """The words of one caption `[L]`, up to (not including) its first end token."""
    return [self.words[i] for i in strip(tokens, self)]


DIGITS = Vocabulary(words=tuple("0123456789") + ("<end>", "<pad>"), end=10, pad=11, start=11)


def build_vocabulary(captions, min_count=1):
  """A word vocabulary of the words seen at least `min_count` times in `captions` (lists of words).

  Ids: `SPECIAL_WORDS` first, then the words by decreasing count, ties in alphabetical order, so
  the vocabulary is a function of the multiset of words only.
  """
  if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
    raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
  counts = collections.Counter(word for caption in captions for word in caption)
  clash = sorted(set(counts) & set(SPECIAL_WORDS))
  if clash:
    raise ValueError(f"captions contain the reserved words {clash}")
  kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
  return Vocabulary(words=SPECIAL_WORDS + tuple(kept), pad=0, start=1, end=2, unk=3)


def pad_captions(sequences, length, vocab, *, truncate=False):
  """Token arrays of id sequences: each followed by the end token and padded to `length`.

  Args:
    sequences: N sequences of token ids (without end tokens).
    length: L, the stored length; a sequence fits when it has at most L - 1 ids.
    vocab: the `Vocabulary` whose end and pad ids are written.
    truncate: cut longer sequences to L - 1 ids (else they raise).

  Returns:
    `(tokens int32 [N, L], length int32 [N])`, length counting the end token.
  """
  if isinstance(length, bool) or not isinstance(length, int) or length < 1:
    raise ValueError(f"length must be an integer >= 1, got {length!r}")
  tokens = np.full((len(sequences), length), vocab.pad, dtype=np.int32)  # [N, L]
  lengths = np.empty(len(sequences), dtype=np.int32)  # [N]
  for i, ids in enumerate(sequences):
    if len(ids) > length - 1:
      if not truncate:
        raise ValueError(
            f"sequence {i} has {len(ids)} tokens; at most {length - 1} fit before the end token "
            f"of a length-{length} caption")
      ids = ids[:length - 1]
    tokens[i, :len(ids)] = ids
    tokens[i, len(ids)] = vocab.end
    lengths[i] = len(ids) + 1
  return tokens, lengths


def strip(tokens, vocab):
  """The ids of one caption `[L]` before its first end token (all of them without one)."""
  tokens = np.asarray(tokens)
  if tokens.ndim != 1:
    raise ValueError(f"tokens must be one caption [L], got shape {tokens.shape}")
  ends = np.flatnonzero(tokens == vocab.end)
  return tokens[:ends[0] if ends.size else tokens.shape[0]].tolist()


def sequence_accuracy(targets, predictions, vocab):
  """float32 [N]: 1 where a predicted caption equals its target up to and including the end token.

  Args:
    targets: int `[N, L]` stored captions.
    predictions: int `[N, M]` decoded tokens (any M); what follows a first end token is ignored,
      and a prediction without an end token is wrong.
    vocab: the `Vocabulary` naming the end token.
  """
  targets, predictions = np.asarray(targets), np.asarray(predictions)
  if targets.ndim != 2 or predictions.ndim != 2 or targets.shape[0] != predictions.shape[0]:
    raise ValueError(
        f"targets and predictions must be [N, L] and [N, M], got {targets.shape} and "
        f"{predictions.shape}")
  correct = np.zeros(targets.shape[0], dtype=np.float32)
  for i, (target, predicted) in enumerate(zip(targets, predictions)):
    ends = np.flatnonzero(predicted == vocab.end)
    correct[i] = ends.size > 0 and strip(target, vocab) == strip(predicted, vocab)
  return correct

"""What stops a run before its last step: a signal (saved first, then the process exits) or
early stopping on an evaluation metric."""

import signal
import threading
import types
from typing import Any

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
  """Context manager that records this process's first SIGTERM/SIGINT (`signum`); a second one
  stops at once.

  Handlers are installed only from the main thread (elsewhere Python forbids it and signals
  keep their usual effect).
  """

  def __init__(self):
    self.signum: int | None = None  # set only by this process's handler
    self._previous: dict[int, object] = {}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    if self.signum is not None:
      self.raise_for_signal(self.signum)
    self.signum = signum

  def agree(self) -> int | None:
    """The signal every process of the run stops for: the largest number any of them had
    received when it called (None if none). A collective: every process calls it at the same
    step, so all of them save that step's checkpoint together and stop. A signal that arrives
    during the call is left for the next one."""
    received = self.signum  # read once: the value this process sends
    if jax.process_count() == 1:
      return received
    everyone = multihost_utils.process_allgather(np.int32(received or 0))  # [processes]
    return int(np.max(everyone)) or None

  @staticmethod
  def raise_for_signal(signum: int) -> None:
    """Raises what signal `signum` would have: KeyboardInterrupt for SIGINT, else SystemExit."""
    if signum == signal.SIGINT:
      raise KeyboardInterrupt
    raise SystemExit(128 + signum)

  def __enter__(self) -> 'StopRequests':
    if threading.current_thread() is threading.main_thread():
      for signum in _SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()


class EarlyStopping:
  """Tracks the best value of one evaluation metric; `stopped` after `patience` evaluations
  without improvement (never when patience is 0). Fed with 'eval' records, so a resumed run
  rebuilds it from metrics.jsonl."""

  def __init__(self, cfg: ml_collections.ConfigDict, headline: str):
    self.patience, self.split, self.mode = cfg.patience, cfg.split, cfg.mode
    self.metric = cfg.metric or headline
    self.best: float | None = None
    self.best_step: int | None = None
    self.since_best = 0

  def update(self, record: dict[str, Any]) -> None:
    if (record.get('split', 'test') != self.split or self.metric not in record
        or record.get('final')):
      return  # another split, or the evaluation after training: nothing left to stop
    value = float(record[self.metric])
    better = (self.best is None or (value < self.best if self.mode == 'min' else value > self.best))
    if better:
      self.best, self.best_step, self.since_best = value, record['step'], 0
    else:
      self.since_best += 1

  @property
  def stopped(self) -> bool:
    return bool(self.patience) and self.since_best >= self.patience

  @property
  def reason(self) -> str:
    return (f'{self.split} {self.metric} has not improved on {self.best:.4g} (step '
            f'{self.best_step}) for {self.since_best} evaluations')

  def summary(self) -> dict[str, Any]:
    """What results.json reports: the best value seen during training and its step."""
    if self.best is None:
      return {}
    return {f'best_{self.split}_{self.metric}': self.best, 'best_step': self.best_step,
            'stopped_early': self.stopped}

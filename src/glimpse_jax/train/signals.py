"""SIGTERM and SIGINT during training become a request to save and stop, not a sudden exit."""

import signal
import threading
import types

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
  """Context manager that records the first SIGTERM/SIGINT; a second one stops at once.

  Handlers are installed only from the main thread (elsewhere Python forbids it and signals
  keep their usual effect).
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, object] = {}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    if self.signum is not None:
      self.raise_for_signal()
    self.signum = signum

  def raise_for_signal(self) -> None:
    """Raises what the signal would have: KeyboardInterrupt for SIGINT, else SystemExit."""
    if self.signum == signal.SIGINT:
      raise KeyboardInterrupt
    raise SystemExit(128 + self.signum)

  def __enter__(self) -> 'StopRequests':
    if threading.current_thread() is threading.main_thread():
      for signum in _SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

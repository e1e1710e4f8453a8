"""How Ctrl-C (SIGINT) and a scheduler's SIGTERM stop a command: as an exception in the main
thread (``KeyboardInterrupt``, :class:`~mlffbench.runs.record.Terminated`) that every layer
handles at one consistent point, but never inside a database transaction.

An exception raised inside MLflow's or Optuna's SQLAlchemy session (an SQLite or PostgreSQL
store) can leave the connection holding SQLite's write lock; the command's own ending (the
MLflow run KILLED, the trial FAIL) then waits for it and fails with "database is locked". So a
signal that arrives while the main thread is in database code is held: a watcher thread looks at
the main thread's stack every few milliseconds and sends the signal again once it is outside
database code (at most :data:`MAX_HOLD_S` later). The watcher, not a timer, decides: a thread
only runs while the main thread has let go of the interpreter lock, which a database client does
exactly while it waits on the database, so a signal re-sent blindly lands in database code again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from mlffbench.runs.record import Terminated

DATABASE_CODE = ("sqlalchemy.", "sqlite3", "psycopg", "alembic.", "mlflow.store.", "optuna.storages.")
POLL_S = 0.002
MAX_HOLD_S = 10.0


def in_database_code(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller of it runs a module of :data:`DATABASE_CODE`."""
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if name.startswith(DATABASE_CODE):
            return True
        frame = frame.f_back
    return False


class _Stopper:
    """The handler of SIGINT and SIGTERM while a command runs."""

    def __init__(self) -> None:
        self.held_since: float | None = None
        self.main = threading.get_ident()  # stop_handlers installs it in the main thread

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if in_database_code(frame) and (self.held_since is None or now - self.held_since < MAX_HOLD_S):
            if self.held_since is None:
                self.held_since = now
            threading.Thread(target=self._resend, args=(signum, self.held_since), daemon=True).start()
            return
        self.held_since = None
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def _resend(self, signum: int, since: float) -> None:
        """Send ``signum`` again once the main thread is outside database code (or held too long).

        While it waits, the interpreter lock changes hands every 0.1 ms instead of 5: else the
        main thread gives it up only inside the database client, and that is all the watcher sees."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, 1e-4))
        try:
            while time.monotonic() - since < MAX_HOLD_S:
                time.sleep(POLL_S)
                if not in_database_code(sys._current_frames().get(self.main)):
                    break
        finally:
            sys.setswitchinterval(interval)
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def stop_handlers() -> Iterator[None]:
    """SIGINT and SIGTERM raise (outside database code) for the duration; the previous handlers after."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers are the main thread's
        yield
        return
    stopper = _Stopper()
    previous = {s: signal.signal(s, stopper) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: set outside Python

"""The watchdog: a collective that waits too long stops the job with an error naming the ranks
that hold it up, instead of hanging forever.

Every rank runs one daemon thread. The main thread enters each collective through
:meth:`Watchdog.guard`, which records what it is and since when. The thread wakes every
``poll`` seconds; it answers the other ranks' pings and, when its own rank has waited in a
collective longer than ``timeout``, it surveys the job: it pings every other rank on a communicator
of its own (a duplicate of ``COMM_WORLD``, so the pings never mix with the training's messages) and
waits ``survey`` seconds for the answers. A rank that does not answer is dead or stuck outside
Python; one that answers from an earlier collective, or from no collective, is late. The message
names them, then ``MPI_Abort`` stops every rank.

Under ``mpiexec`` (Hydra) a rank that dies is noticed by the launcher itself, which stops the
others at once and prints the dead process's pid (the trainer's first line maps pids to ranks):
the watchdog is for the cases a launcher does not see, such as a rank that hangs, a launcher run
with ``-disable-auto-cleanup``, or ``srun`` without ``--kill-on-bad-exit``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Iterator, Optional

_PING, _PONG = 7701, 7702


class Watchdog:
    """Watches the collectives of one :class:`~learnflux.distributed.world.MPIWorld`."""

    def __init__(self, world: Any, timeout: float, poll: float = 0.25, survey: float = 3.0) -> None:
        self.world = world
        self.timeout = float(timeout)
        self.poll = poll
        self.survey_seconds = survey
        self.comm = world.comm.Dup()  # collective: every rank builds its watchdog in init
        self._state: Optional[tuple[str, int, float]] = None  # (what, number, since)
        self._sent: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="learnflux-watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def guard(self, what: str, number: int) -> Iterator[None]:
        """Run the block as collective ``number`` (``what`` names it in a report)."""
        self._state = (what, number, time.monotonic())
        try:
            yield
        finally:
            self._state = None

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            time.sleep(self.poll)
            try:
                self._answer()
                state = self._state
                if state is not None and time.monotonic() - state[2] > self.timeout:
                    self._fire(state)
                    return
            except Exception as exc:  # pragma: no cover - the watchdog must never kill a run
                sys.stderr.write(f"learnflux.distributed: watchdog of rank {self.world.rank} failed: {exc}\n")
                return

    def _where(self) -> tuple[Optional[str], int]:
        state = self._state
        if state is None:
            return None, self.world.collectives
        return state[0], state[1]

    def _answer(self) -> None:
        """Answer every ping that has arrived with where this rank is."""
        MPI = self.world.MPI
        status = MPI.Status()
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=_PING, status=status):
            source = status.Get_source()
            self.comm.recv(source=source, tag=_PING)
            self._sent.append(self.comm.isend(self._where(), dest=source, tag=_PONG))
        self._sent = [req for req in self._sent if not req.Test()]

    def survey(self) -> dict[int, Optional[tuple[Optional[str], int]]]:
        """Ping every other rank; their answers (``(what, number)``, ``None`` for no answer)."""
        others = [r for r in range(self.world.size) if r != self.world.rank]
        for r in others:
            self._sent.append(self.comm.isend(None, dest=r, tag=_PING))
        pending = {r: self.comm.irecv(source=r, tag=_PONG) for r in others}
        answers: dict[int, Optional[tuple[Optional[str], int]]] = {r: None for r in others}
        deadline = time.monotonic() + self.survey_seconds
        while pending and time.monotonic() < deadline:
            self._answer()  # the other ranks survey too: answer them while waiting
            for r, req in list(pending.items()):
                done, value = req.test()
                if done:
                    answers[r] = value
                    del pending[r]
            time.sleep(0.05)
        return answers

    def _fire(self, state: tuple[str, int, float]) -> None:
        what, number, since = state
        waited = time.monotonic() - since
        answers = self.survey()
        silent = [r for r, a in answers.items() if a is None]
        late = [r for r, a in answers.items() if a is not None and (a[0] is None or a[1] < number)]
        lines = [
            f"learnflux.distributed: rank {self.world.rank} of {self.world.size} waited {waited:.0f} s "
            f"(timeout {self.timeout:g} s) in the {what} (collective #{number})."
        ]
        for r in silent:
            host, pid = self.world.places[r]
            lines.append(
                f"  rank {r} (pid {pid} on {host}) did not answer: it died, or it is stuck outside Python"
            )
        for r in late:
            w, n = answers[r]  # type: ignore[misc]
            where = f"in the {w} (collective #{n})" if w else f"computing, after collective #{n}"
            lines.append(f"  rank {r} has not reached it: it is {where}")
        if not silent and not late:
            lines.append("  every rank answered from this collective: the network may be stuck")
        lines.append("Stopping every rank of the job (MPI_Abort).")
        self.world.abort("\n".join(lines), code=3)

"""The world of a data-parallel job: which process this is (``rank``), how many there are
(``size``), and the few collective operations the rest of :mod:`learnflux.distributed` uses.

Two worlds implement one interface:

* :class:`SingleWorld`: one process, ``rank == 0``, ``size == 1``; every collective returns its
  input. It is what :func:`init` gives when the process was not launched by an MPI launcher, so
  a script written for N processes runs unchanged (and imports no MPI) as one.
* :class:`MPIWorld`: ``MPI.COMM_WORLD`` through mpi4py (the ``learnflux[mpi]`` extra), with a
  deterministic sum (:meth:`MPIWorld.sum_ordered`), an excepthook that aborts the whole job when a
  rank raises, and a watchdog that stops a collective that waits too long, naming the ranks that
  do not answer (:mod:`learnflux.distributed.watchdog`).

Deterministic sum. ``MPI_Allreduce``'s summation order across ranks is the implementation's
choice (it depends on the algorithm, the message size and the number of ranks), so two runs, or
two ranks of one run, may differ in the last bits. :meth:`MPIWorld.sum_ordered` fixes the order:
the vector is cut into ``N`` chunks; rank ``j`` receives chunk ``j`` of every rank
(``MPI_Alltoallv``), adds them **in rank order** ``((v_0 + v_1) + v_2) + …``, and every rank
receives every summed chunk (``MPI_Allgatherv``). Each rank sends and receives
``2·(N − 1)/N`` of the vector, as a ring allreduce does, and every rank ends with the same bits,
whatever the MPI library. On 2 ranks, and for small vectors (:data:`GATHER_BYTES`), one
``MPI_Allgather`` of the whole vectors replaces the two collectives: each rank adds the same
vectors in the same order, so the bits are the same either way.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import time
import traceback
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import LearnfluxError


class DistributedError(LearnfluxError, RuntimeError):
    """A data-parallel job cannot go on: MPI is missing, the ranks disagree (different models,
    data or options), or a rank stopped answering."""


#: Environment variables set by the launchers learnflux recognises, as (size, rank) pairs:
#: MPICH's and Intel MPI's Hydra (PMI), Open MPI, PMIx, Slurm's srun.
LAUNCHER_VARIABLES: tuple[tuple[str, str], ...] = (
    ("PMI_SIZE", "PMI_RANK"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("PMIX_SIZE", "PMIX_RANK"),
    ("SLURM_NTASKS", "SLURM_PROCID"),
)

#: Seconds a collective may wait for the other ranks before the watchdog stops the job
#: (``LEARNFLUX_DIST_TIMEOUT`` overrides it; ``init(timeout=...)`` too).
DEFAULT_TIMEOUT = 300.0


def launched_size() -> int:
    """The number of processes the launcher started (1 when none did), read from the launcher's
    environment variables without importing MPI."""
    for size_var, _ in LAUNCHER_VARIABLES:
        value = os.environ.get(size_var)
        if value and value.strip().isdigit():
            return max(1, int(value))
    return 1


class World:
    """What every world offers; see :class:`SingleWorld` and :class:`MPIWorld`."""

    rank: int = 0
    size: int = 1
    is_mpi: bool = False

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank arrives here."""

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s Python object (small control data: options, generator states)."""
        return obj

    def broadcast_array(self, arr: np.ndarray, root: int = 0) -> np.ndarray:
        """Rank ``root``'s array, written into ``arr`` in place where it is a numeric array
        (every rank must pass an array of the same shape and dtype); returned."""
        return arr

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's object, in rank order."""
        return [obj]

    def sum_ordered(self, vector: np.ndarray) -> np.ndarray:
        """The element-wise sum over ranks of a 1-D ``vector``, added in rank order, the same bits
        on every rank; written into ``vector`` in place for numeric dtypes and returned. Exact
        (object) vectors are gathered and added as Fractions."""
        return vector

    def sum_mpi(self, vector: np.ndarray) -> np.ndarray:
        """The same sum by ``MPI_Allreduce`` (the MPI library's order); in place, returned."""
        return vector

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` and stop every rank of the job with exit status ``code``."""
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
        raise SystemExit(code)

    def describe(self) -> str:
        return "1 process (no MPI)"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleWorld(World):
    """One process: rank 0 of 1; every collective is the identity. No MPI is imported."""


class MPIWorld(World):
    """``MPI.COMM_WORLD`` (mpi4py). Built by :func:`init`; see the module docstring."""

    is_mpi = True

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, install_excepthook: bool = True) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:  # pragma: no cover - checked by init before
            raise DistributedError(_missing_mpi(launched_size())) from exc
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.places = self.comm.allgather((self.host, self.pid))  # (host, pid) of every rank
        from .watchdog import Watchdog

        self.watchdog = Watchdog(self, timeout)
        self.collectives = 0  # collectives entered so far (the watchdog reports it)
        if install_excepthook:
            _install_excepthook(self)

    # ------------------------------------------------------------------ collectives
    def _guard(self, what: str) -> Any:
        self.collectives += 1
        return self.watchdog.guard(what, self.collectives)

    def barrier(self) -> None:
        with self._guard("barrier"):
            self.comm.Barrier()

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        with self._guard("broadcast"):
            return self.comm.bcast(obj, root=root)

    def broadcast_array(self, arr: np.ndarray, root: int = 0) -> np.ndarray:
        if arr.dtype == object or not arr.flags.c_contiguous:
            got = self.broadcast(arr, root)
            if arr.dtype == object:
                return got
            arr[...] = got
            return arr
        with self._guard("broadcast"):
            self.comm.Bcast(arr.reshape(-1), root=root)
        return arr

    def allgather(self, obj: Any) -> list[Any]:
        with self._guard("allgather"):
            return self.comm.allgather(obj)

    def sum_ordered(self, vector: np.ndarray) -> np.ndarray:
        if vector.ndim != 1:
            raise DistributedError(f"sum_ordered: expected a 1-D vector, got shape {vector.shape}")
        if vector.dtype == object:
            parts = self.allgather(vector)
            total = parts[0].copy()
            for part in parts[1:]:
                total += part
            return total
        n, size = vector.size, self.size
        if size == 2 or vector.nbytes <= GATHER_BYTES:
            # one collective: every rank gathers every vector and adds them in rank order (the
            # same additions as below; on 2 ranks the same bytes moved, one latency instead of two)
            gathered = np.empty((size, n), dtype=vector.dtype)
            with self._guard("gradient exchange"):
                self.comm.Allgather(vector, gathered)
            np.copyto(vector, gathered[0])
            for r in range(1, size):
                vector += gathered[r]
            return vector
        counts = [n // size + (1 if j < n % size else 0) for j in range(size)]
        offsets = [sum(counts[:j]) for j in range(size)]
        mine = counts[self.rank]
        received = np.empty(mine * size, dtype=vector.dtype)
        with self._guard("gradient exchange"):
            self.comm.Alltoallv(
                [vector, (counts, offsets)], [received, ([mine] * size, [mine * r for r in range(size)])]
            )
            acc = received[:mine].copy()
            for r in range(1, size):  # in rank order: the same additions on every run
                acc += received[r * mine : (r + 1) * mine]
            self.comm.Allgatherv(acc, [vector, (counts, offsets)])
        return vector

    def sum_mpi(self, vector: np.ndarray) -> np.ndarray:
        if vector.dtype == object:
            return self.sum_ordered(vector)
        with self._guard("gradient exchange"):
            self.comm.Allreduce(self.MPI.IN_PLACE, vector, op=self.MPI.SUM)
        return vector

    def abort(self, message: str, code: int = 1) -> None:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
        time.sleep(0.5)  # the launcher forwards the message before it tears the job down
        self.comm.Abort(code)

    def describe(self) -> str:
        where = ", ".join(f"rank {r} pid {pid} on {host}" for r, (host, pid) in enumerate(self.places))
        return f"{self.size} MPI ranks ({where})"


#: vectors up to this size are summed through one Allgather (latency-bound: one collective
#: instead of two); larger ones on 3 or more ranks through Alltoallv + Allgatherv (each rank moves
#: 2·(N − 1)/N of the vector instead of N − 1 times it)
GATHER_BYTES = 64 * 1024

_WORLD: Optional[World] = None


def _missing_mpi(size: int) -> str:
    return (
        f"this process was launched as one of {size} MPI ranks, but mpi4py is not installed: "
        'install the extra, pip install "learnflux[mpi]" (mpi4py and MPICH), and launch with '
        "the mpiexec it brings (.venv/bin/mpiexec)"
    )


def init(timeout: Optional[float] = None, force: Optional[str] = None) -> World:
    """Join the job and return its world (the same object on later calls).

    Launched by an MPI launcher (``mpiexec -n N``, ``srun``: it sets ``PMI_SIZE``,
    ``OMPI_COMM_WORLD_SIZE``, ``PMIX_SIZE`` or ``SLURM_NTASKS``) with ``N > 1``: an
    :class:`MPIWorld` (mpi4py is imported here, and only here). Otherwise a :class:`SingleWorld`,
    and MPI is never imported. ``force="mpi"`` / ``"single"`` overrides the detection
    (``LEARNFLUX_DISTRIBUTED=mpi|single`` too).

    ``timeout``: seconds a collective may wait for the other ranks before the job is stopped with
    an error naming the ranks that did not answer (default ``LEARNFLUX_DIST_TIMEOUT`` or 300).
    """
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    mode = force or os.environ.get("LEARNFLUX_DISTRIBUTED", "auto")
    if mode not in ("auto", "mpi", "single"):
        raise DistributedError(f"LEARNFLUX_DISTRIBUTED / force must be auto, mpi or single, got {mode!r}")
    size = launched_size()
    if mode == "single" or (mode == "auto" and size <= 1):
        _WORLD = SingleWorld()
        return _WORLD
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise DistributedError(_missing_mpi(size)) from None
    if timeout is None:
        timeout = float(os.environ.get("LEARNFLUX_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if not timeout > 0:
        raise DistributedError(f"the collective timeout must be positive, got {timeout!r}")
    world = MPIWorld(timeout=timeout)
    _WORLD = world if world.size > 1 else SingleWorld()
    return _WORLD


def get_world() -> World:
    """The world :func:`init` returned, or a :class:`SingleWorld` when it was never called."""
    return _WORLD if _WORLD is not None else SingleWorld()


# ---------------------------------------------------------------------------- errors on a rank
def _install_excepthook(world: MPIWorld) -> None:
    """An uncaught exception on one rank would leave the others waiting in their next collective
    (and this rank in ``MPI_Finalize``): print it, naming the rank, and abort the whole job."""
    previous = sys.excepthook

    def hook(kind: type, value: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        name = "interrupted (Ctrl-C)" if issubclass(kind, KeyboardInterrupt) else f"raised {kind.__name__}"
        world.abort(
            f"{text}learnflux.distributed: rank {world.rank} of {world.size} (pid {world.pid} on "
            f"{world.host}) {name}: {value}; stopping every rank of the job (MPI_Abort)",
            code=1,
        )
        previous(kind, value, tb)  # pragma: no cover - Abort does not return

    sys.excepthook = hook


def abort_on_error(world: World, error: BaseException, code: int = 1) -> None:
    """For code that catches an error itself (a command line printing a message): on a job of
    several ranks, stop them all, naming this rank; on one process, do nothing."""
    if world.size > 1:
        world.abort(
            f"learnflux.distributed: rank {world.rank} of {world.size} stopped: "
            f"{type(error).__name__}: {error}; stopping every rank of the job (MPI_Abort)",
            code=code,
        )


def check_same(world: World, what: str, value: Any) -> None:
    """Refuse to go on when the ranks disagree on ``value`` (a model's structure, the data's
    size, options): the message names the ranks that differ from rank 0."""
    if world.size == 1:
        return
    digest = pickle.dumps(value, protocol=4)
    everyone: Sequence[bytes] = world.allgather(digest)
    odd = [r for r, d in enumerate(everyone) if d != everyone[0]]
    if odd:
        mine = repr(value)
        raise DistributedError(
            f"the ranks disagree on {what}: rank(s) {odd} differ from rank 0 (this is rank "
            f"{world.rank}: {mine[:200]}); every rank must build the same model from the same data "
            "and options"
        )


def _reset_for_tests() -> None:
    """Forget the world (tests of the single-process path only)."""
    global _WORLD
    _WORLD = None

"""Who may write where: one writer per output, whatever Snakemake does with its locks.

Snakemake's own lock is a list of files in ``.snakemake/locks``, and the pinned Snakemake
ends every run by deleting that whole folder, other runs' lists included: a third run
of a target a second one is still building would then start, and two training jobs
would share a seed folder. So the workflow adds two locks that the kernel holds
(``fcntl.flock``: released when the holder exits, ``kill -9`` included, never stale):

* **a run's claim** (:func:`claim_outputs`, from ``onstart``, plain ``snakemake`` too): a
  record under ``.snakemake/cnnrepro/writers/`` of the files this run will write and read,
  locked while the run lives. A run that would write what a live run writes or reads (or
  read what it writes) is refused, naming that run's command line and pid;
* **a training folder's lock** (:func:`exclusive`): held by the job that trains into it.

Also here: **a GPU per job** (:func:`gpu_slot`): on a machine with several GPUs, each job
takes the first device no other job holds; the owner record of Snakemake's lock, which
lets ``./repro run`` tell a lock left by a run that died (:func:`stale_lock`), and the
name a local Snakemake gives its jobs so their watchdog (:mod:`cnnrepro.logs`) sees it die
(:func:`mark_scheduler`).
Imports nothing of the package and no torch: it runs before every ``./repro run``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

LOCKS = Path(".snakemake") / "locks"
OWNER = LOCKS / "cnnrepro.owner"  # Snakemake reads only <n>.{input,output}.lock there
WRITERS = Path(".snakemake") / "cnnrepro" / "writers"
SCHEDULER_ENV = "CNNREPRO_SCHEDULER"  # the local Snakemake that runs this job
COMMAND_ENV = "CNNREPRO_COMMAND"  # the ./repro command line, for the refusal message
# per machine, not per project: two runs on one machine share its GPUs
GPU_LOCKS = Path(tempfile.gettempdir()) / f"cnnrepro-gpus-{os.getuid()}"
_GPU_HELD: dict[Path, tuple[int, IO[str]]] = {}  # this process's device, held until it exits

_HELD: list[IO[str]] = []  # this process's claims: open and locked until it exits


class Busy(RuntimeError):
    """Another live process writes (or reads) what this one would write."""


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return None if fields[0] == "Z" else int(fields[19])


def _alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc").is_dir():  # Linux: a zombie or a new process under the same pid is gone
        ticks = _start_ticks(pid)
        return ticks is not None and (start is None or ticks == start)
    return True


def _this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": _start_ticks(pid)}


def _gone(owner: dict[str, Any]) -> bool:
    """Whether a recorded process is known to be gone (only on its own host)."""
    return owner.get("host") == socket.gethostname() and not _alive(owner["pid"],
                                                                    owner.get("start"))


def record_owner(workdir: str | os.PathLike = ".") -> None:
    """Write which process holds this folder's Snakemake lock (called from ``onstart``:
    the main Snakemake process, lock held). Snakemake removes the whole lock folder,
    this record included, when it unlocks."""
    path = Path(workdir) / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_this_process()) + "\n")


def mark_scheduler() -> None:
    """Name this process (a local Snakemake) in the environment its jobs inherit, so a job
    whose direct parent is a shell (conda activation) still sees it die."""
    os.environ[SCHEDULER_ENV] = json.dumps(_this_process())


def scheduler_gone() -> bool:
    """Whether the local Snakemake named by :func:`mark_scheduler` is gone."""
    try:
        return _gone(json.loads(os.environ[SCHEDULER_ENV]))
    except (KeyError, ValueError, TypeError):
        return False


def stale_lock(workdir: str | os.PathLike = ".") -> str | None:
    """A sentence saying this folder's Snakemake lock is stale and how to clear it, or
    None (no lock, its owner alive, on another host, or unknown)."""
    locks = Path(workdir) / LOCKS
    if not any(locks.glob("*.lock")):
        return None
    try:
        owner = json.loads((Path(workdir) / OWNER).read_text())
    except (OSError, ValueError):
        return None
    if not _gone(owner):
        return None
    return (f"repro: this folder is locked by a Snakemake run that is gone (pid {owner['pid']} "
            f"on {owner['host']} no longer runs: killed or crashed). Clear its stale lock, "
            f"then run your command again:\n  ./repro run --unlock")


def _command() -> str:
    return os.environ.get(COMMAND_ENV) or shlex.join([Path(sys.executable).name, *sys.argv])


def _owner_record() -> dict[str, Any]:
    return {**_this_process(), "command": _command(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())}


def _locked_by_other(handle: IO[str]) -> bool:
    """Try this file's lock without waiting; True (and no lock taken) if a process holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


def _who(record: dict[str, Any]) -> str:
    return (f"pid {record.get('pid')} on {record.get('host')}, since {record.get('since')}: "
            f"{record.get('command')}")


def _clash(mine_out: set[str], mine_in: set[str], theirs: dict[str, Any]) -> list[str]:
    """Snakemake's rule: a file one run writes may be neither written nor read by the other."""
    out, inp = set(theirs.get("outputs", ())), set(theirs.get("inputs", ()))
    return sorted((mine_out & (out | inp)) | (mine_in & out))


def claim_outputs(outputs: Iterable[str], inputs: Iterable[str],
                  workdir: str | os.PathLike = ".") -> Path:
    """Record this process as the writer of ``outputs`` (and reader of ``inputs``) for as
    long as it lives; raise :class:`Busy` if a live claim overlaps. Returns the record."""
    folder = Path(workdir) / WRITERS
    folder.mkdir(parents=True, exist_ok=True)
    mine_out = {os.path.normpath(f) for f in outputs}
    mine_in = {os.path.normpath(f) for f in inputs}
    with open(folder / "registry.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two runs starting at once check one at a time
        for path in sorted(folder.glob("*.json")):
            with open(path) as handle:
                if not _locked_by_other(handle):
                    path.unlink(missing_ok=True)  # its run is gone: the kernel let go
                    continue
                try:
                    theirs = json.load(handle)
                except ValueError:
                    continue  # being written: it is checked against ours when its run starts
            shared = _clash(mine_out, mine_in, theirs)
            if shared:
                raise Busy(
                    f"another run is writing files this run needs ({len(shared)} shared, "
                    f"e.g. {shared[0]}); it is {_who(theirs)}\nWait for it to finish (or "
                    f"stop it: kill {theirs.get('pid')}), then run this command again.")
        record = folder / f"{os.getpid()}-{len(_HELD)}.json"
        tmp = record.with_suffix(".tmp")
        handle = open(tmp, "w")
        fcntl.flock(handle, fcntl.LOCK_EX)  # the lock follows the file through the rename
        json.dump({**_owner_record(), "outputs": sorted(mine_out), "inputs": sorted(mine_in)},
                  handle)
        handle.flush()
        os.replace(tmp, record)
        _HELD.append(handle)
    return record


def claim_run(workflow: Any) -> None:
    """``onstart``: claim the files of the jobs this Snakemake will run (the sets its own
    lock lists); a clash ends the run before any job with one message."""
    persistence = workflow.persistence
    try:
        claim_outputs(map(str, persistence.all_outputfiles()),
                      map(str, persistence.all_inputfiles()))
    except Busy as err:
        from snakemake.logging import logger

        logger.error(f"cnnrepro: {err}")
        raise SystemExit(1) from None


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``path``'s lock while the block runs; raise :class:`Busy` naming the holder if
    another process has it. ``what`` says what is protected, for the message."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no truncation: the holder's record
    with os.fdopen(fd, "r+") as handle:
        if _locked_by_other(handle):
            try:
                holder = _who(json.loads(handle.read() or "{}"))
            except ValueError:
                holder = "a process that is starting"
            raise Busy(f"{what} is being written by another job ({holder}); two jobs never "
                       f"share it. Wait for that job to finish, or stop it.")
        handle.truncate(0)
        handle.write(json.dumps(_owner_record()) + "\n")
        handle.flush()
        yield


def gpu_slot(count: int, folder: Path = GPU_LOCKS, poll: float = 1.0) -> int:
    """The index of the GPU this process computes on: the first of ``count`` that no
    other process of this machine holds (an ``flock`` per device, held until this
    process exits), waiting while all are taken. Snakemake schedules GPU jobs by a
    ``gpu`` count (``./repro run`` passes ``--resources gpu=N``) but gives a job no device
    of its own: without this, N jobs at once would all compute on device 0. One GPU (a
    cluster job sees only its own): 0, no lock. The same process asking again gets the
    same device."""
    if count <= 1:
        return 0
    if folder in _GPU_HELD:
        return _GPU_HELD[folder][0]
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            handle = open(folder / f"gpu{index}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _GPU_HELD[folder] = (index, handle)
            return index
        time.sleep(poll)

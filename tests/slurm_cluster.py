"""A throwaway single-node SLURM cluster on loopback, for tests and for trying docs/scale-out.md by hand.

``munged`` (its own key and socket), ``slurmctld`` and ``slurmd`` are started as root in one directory
with their own ``slurm.conf``: proctrack/linuxproc, task/none, no cgroups, no accounting, select/cons_tres,
one node with this machine's CPUs and memory (from ``slurmd -C``), one partition, ports on 127.0.0.1.
Clients find it through ``SLURM_CONF`` (see :attr:`SlurmCluster.env`).

:func:`start_cluster` raises :class:`ClusterUnavailable` with the exact reason (the missing binary or
privilege, or the daemon's own last log lines) when the daemons cannot run here.

By hand::

    python tests/slurm_cluster.py start /tmp/fadepth-slurm   # prints: export SLURM_CONF=...
    python tests/slurm_cluster.py stop /tmp/fadepth-slurm
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PARTITION = "debug"
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")
STARTUP_TIMEOUT_S = 60.0


class ClusterUnavailable(RuntimeError):
    """SLURM cannot run in this sandbox; the message names the missing capability."""


@dataclass
class SlurmCluster:
    root: Path
    partition: str = PARTITION
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # the daemons this process started

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients (sbatch, squeue, submitit) talking to this cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def logs(self, lines: int = 30) -> str:
        out = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.root / "log" / name
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(out)

    def scontrol(self, *args: str, check: bool = True) -> str:
        return subprocess.run(["scontrol", *args], env=self.env, capture_output=True, text=True, check=check,
                              timeout=30).stdout

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):  # clients first, then the controller, then auth
            proc = self.procs.pop(name, None)
            if proc is not None:  # our child: terminate and reap it
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            else:  # started by another process (the command line): its pid file
                pid = _read_pid(self.root / "run" / f"{name}.pid")
                if pid:
                    _terminate(pid)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _terminate(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """This machine as slurmd sees it (``slurmd -C``): CPUs, Boards, SocketsPerBoard, ..., RealMemory."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0] if out else ""))
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    hw = {k: fields[k] for k in keep if k in fields}
    if "CPUs" not in hw:
        hw = {"CPUs": str(os.cpu_count() or 1)}
    if "RealMemory" in hw:  # leave the OS some room, or slurmd reports the node as low on memory
        hw["RealMemory"] = str(max(1, int(int(hw["RealMemory"]) * 0.9)))
    return hw


def write_config(root: Path, node: str, ports: tuple[int, int]) -> Path:
    hw = " ".join(f"{k}={v}" for k, v in node_hardware().items())
    lines = [
        "ClusterName=fadepthtest",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "JobRequeue=1",
        "KillWait=30",
        "MinJobAge=600",
        "MailProg=/bin/true",
        f"NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} {hw} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait(what: str, ready, procs: list[tuple[str, subprocess.Popen]], cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for name, proc in procs:
            if proc.poll() is not None:
                raise ClusterUnavailable(f"{name} exited with code {proc.returncode} while starting\n{cluster.logs()}")
        if ready():
            return
        time.sleep(0.5)
    raise ClusterUnavailable(f"{what} not ready after {STARTUP_TIMEOUT_S:.0f} s\n{cluster.logs()}")


def start_cluster(root: str | Path | None = None) -> SlurmCluster:
    """Start munged + slurmctld + slurmd under ``root`` (a new temp dir when None); wait for an idle node."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        raise ClusterUnavailable(f"SLURM/MUNGE binaries not found: {', '.join(missing)} "
                                 "(apt-get install -y slurm-wlm munge)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("not running as root: slurmd must run as root to launch jobs (SlurmdUser=root)")
    root = Path(root or tempfile.mkdtemp(prefix="fadepth-slurm-", dir="/tmp")).resolve()
    for sub in ("munge", "state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for path in (root, *root.parents):  # munged wants every directory above its socket searchable by all
        if path != Path("/") and not path.stat().st_mode & 0o001 and not path.stat().st_mode & 0o1000:
            os.chmod(path, path.stat().st_mode | 0o755)
    os.chmod(root / "munge", 0o755)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    node = socket.gethostname().split(".")[0]
    write_config(root, node, (_free_port(), _free_port()))
    cluster = SlurmCluster(root)
    env = cluster.env
    socket_path = root / "munge" / "munge.socket"
    munged = _spawn(["munged", "--foreground", "--force", f"--socket={socket_path}", f"--key-file={key}",
                     f"--log-file={root / 'log' / 'munged.log'}", f"--pid-file={root / 'run' / 'munged.pid'}",
                     f"--seed-file={root / 'munge' / 'munged.seed'}"], root / "log" / "munged.out", env)
    cluster.procs["munged"] = munged
    try:
        _wait("munged", lambda: _munge_ok(socket_path), [("munged", munged)], cluster)
        ctld = _spawn(["slurmctld", "-D", "-f", str(cluster.conf)], root / "log" / "slurmctld.out", env)
        cluster.procs["slurmctld"] = ctld
        _wait("slurmctld", lambda: _ping(env), [("slurmctld", ctld)], cluster)
        slurmd = _spawn(["slurmd", "-D", "-f", str(cluster.conf), "-N", node], root / "log" / "slurmd.out", env)
        cluster.procs["slurmd"] = slurmd
        _wait("node idle", lambda: _node_idle(env), [("slurmctld", ctld), ("slurmd", slurmd)], cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _munge_ok(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    enc = subprocess.run(["munge", "-n", "-S", str(socket_path)], capture_output=True, timeout=10)
    return enc.returncode == 0 and subprocess.run(["unmunge", "-S", str(socket_path)], input=enc.stdout,
                                                  capture_output=True, timeout=10).returncode == 0


def _ping(env: dict[str, str]) -> bool:
    out = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=30).stdout
    return "UP" in out


def _node_idle(env: dict[str, str]) -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30).stdout
    return out.strip() in ("idle", "mix", "alloc")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tests/slurm_cluster.py start|stop DIR", file=sys.stderr)
        return 2
    if argv[0] == "stop":
        SlurmCluster(Path(argv[1]).resolve()).stop()
        return 0
    try:
        cluster = start_cluster(argv[1])
    except ClusterUnavailable as exc:
        print(f"cannot start SLURM here: {exc}", file=sys.stderr)
        return 1
    print(f"export SLURM_CONF={cluster.conf}   # partition {cluster.partition}; "
          f"stop with: python tests/slurm_cluster.py stop {cluster.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

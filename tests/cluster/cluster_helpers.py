"""A real two-node Ray cluster on loopback, for the cluster tests, and the comparisons they
make between outputs.

On Linux, Ray gives a multi-node cluster the machine's network address even when told
127.0.0.1, so the cluster and every process that talks to it run inside a private network
namespace that holds only loopback (``unshare -n``; nothing in it can reach beyond the
machine). A holder process keeps the namespace open; every command enters it with
``nsenter``. Each node is a ``ray start --block`` process with its own log; stopping the
cluster kills exactly the processes inside the namespace, which are the ones started here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "safety"))
from safety_helpers import Outcome  # noqa: E402  (a command's exit code and what it printed)

RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6380
OBJECT_STORE = "100000000"  # 100 MB per node: documents never go through it


def namespace_problem() -> str | None:
    """Why this machine cannot hold the test cluster, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'assay[ray]')"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"a private network namespace needs {tool} (util-linux, iproute2)"
    if os.geteuid() != 0:
        return "a private network namespace needs root (CI runs as root)"
    return None


@dataclass
class RayCluster:
    """Two Ray nodes of one CPU each on 127.0.0.1, in a private network namespace."""

    folder: Path
    holder: subprocess.Popen[bytes] | None = None
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{PORT}"

    @property
    def enter(self) -> list[str]:
        assert self.holder is not None
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net"]

    def env(self) -> dict[str, str]:
        # The workers import the test steps. No usage reports; no token authentication (the
        # cluster listens on loopback in a namespace of its own, and a token would be written
        # to ~/.ray).
        path = os.pathsep.join([str(HERE), str(HERE.parent / "engine"),
                                *filter(None, [os.environ.get("PYTHONPATH")])])
        return {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_AUTH_MODE": "disabled", "COLUMNS": "200"}

    def start(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 100000"],
            stdout=subprocess.PIPE, start_new_session=True,
        )
        assert self.holder.stdout is not None and self.holder.stdout.readline().strip() == b"up"
        self._node("head", "--head", "--port", str(PORT), "--include-dashboard", "false",
                   "--temp-dir", str(self.folder / "ray"))
        self.add_worker()

    def add_worker(self) -> None:
        """Start a worker node and wait until the cluster has two nodes alive."""
        self._node(f"worker{len(self.nodes)}", "--address", self.address)
        self.wait_for_nodes(2)

    def _node(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")
        self.nodes.append(subprocess.Popen(
            [*self.enter, RAY, "start", "--block", "--num-cpus", "1", "--object-store-memory",
             OBJECT_STORE, "--disable-usage-stats", *args],
            stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True,
        ))

    def wait_for_nodes(self, count: int, timeout_s: float = 90) -> None:
        script = (
            "import ray, time, sys\n"
            f"ray.init(address='{self.address}', logging_level='ERROR')\n"
            f"deadline = time.time() + {timeout_s}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) != {count}:\n"
            "    if time.time() > deadline: sys.exit('nodes: %s' % ray.nodes())\n"
            "    time.sleep(0.2)\n"
        )
        deadline = time.time() + timeout_s
        while True:  # the head may still be starting: connecting fails until it listens
            proc = subprocess.run([*self.enter, sys.executable, "-c", script], env=self.env(),
                                  capture_output=True, text=True, timeout=timeout_s + 30)
            if proc.returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(f"the test cluster did not come up: {proc.stderr[-2000:]}")
            time.sleep(1)

    def raylet_pid(self, node: int) -> int:
        """The raylet of node ``node`` (0 is the head), found among its process's children."""
        parent = self.nodes[node].pid
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"raylet" in cmdline.split(b"\0")[0]:
                    return int(entry.name)
        raise RuntimeError(f"node {node} has no raylet")

    def stop(self) -> None:
        """Kill every process inside the namespace (all started here), then the holder, and
        remove the cluster's temporary folder."""
        if self.holder is None:
            return
        namespace = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        for _ in range(3):
            pids = [p for p in _pids_in(namespace) if p != self.holder.pid]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        self.holder.kill()
        self.holder.wait()
        for node in self.nodes:
            node.wait()
        self.holder = None
        shutil.rmtree(self.folder, ignore_errors=True)  # the nodes' logs and Ray's session

    # -- running assay in the namespace ---------------------------------------------------

    def command(self, *args: str | Path) -> list[str]:
        return [*self.enter, sys.executable, str(HERE / "drive.py"), *map(str, args)]

    def assay(self, *args: str | Path, timeout: float = 300, env: dict[str, str] | None = None) -> Outcome:
        """``assay ARGS`` inside the namespace; fail on a traceback in what it printed."""
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                              env={**self.env(), **(env or {})})
        outcome = Outcome(proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in outcome.output, outcome.output
        return outcome

    def start_assay(self, *args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=self.env())


def _pids_in(namespace: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "net") == namespace:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def new_cluster() -> RayCluster:
    cluster = RayCluster(Path(tempfile.mkdtemp(prefix="assay-ray-")))  # short: Ray's socket paths
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


# -- comparing outputs ----------------------------------------------------------------------

COMPARED = ("data", "rejected", "quarantine", "index", "models", "reports")
TIMINGS = {"seconds", "wall_seconds", "created"}


def output_files(root: Path) -> dict[str, bytes]:
    """Every file of a run's results and artefacts, by path below the output."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for folder in COMPARED if (root / folder).is_dir()
        for path in sorted((root / folder).rglob("*")) if path.is_file()
    }


def comparable_manifest(root: Path) -> dict:
    """The manifest without timings and without what says which executor ran it."""
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.pop("executor")
    manifest["recipe"].pop("executor")
    return without_keys(manifest, TIMINGS)


def without_keys(value: object, keys: set[str]) -> object:
    if isinstance(value, dict):
        return {k: without_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without_keys(v, keys) for v in value]
    return value


def assert_same_output(a: Path, b: Path) -> None:
    """Byte-identical results and artefacts, and the same manifest but for timings and the
    executor; both runs wrote to the same path (``b`` was moved there from ``a``'s place)."""
    files_a, files_b = output_files(a), output_files(b)
    assert sorted(files_a) == sorted(files_b)
    differ = [name for name in files_a if files_a[name] != files_b[name]]
    assert not differ, f"files differ: {differ[:10]}"
    assert comparable_manifest(a) == comparable_manifest(b)

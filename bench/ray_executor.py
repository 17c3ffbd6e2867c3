"""Ray executor against the local executor: the same `assay run`, the same 2 CPUs.

Five jobs, each an `assay run RECIPE` subprocess both ways, interleaved `--reps` times
(which side goes first alternates each rep): `bench/assay_filters.py`'s chain
(gopher_repetition -> gopher_quality -> c4_quality -> fineweb_quality, defaults, JSONL out)
on `base.jsonl`, and on a gzip copy of it (a compressed file cannot be read from an offset:
Ray's tasks read consecutive shards of it together); `minhash_dedup` with its defaults (word
5-grams, 14 bands x 8 rows, as `bench/assay_dedup.py`) on `neardup.jsonl`; and a trivial job
(`pii` on IPs only) over the first `--overhead-mb` MB of `base.jsonl` in small shards: its
wall-time difference per task is what Ray adds to each task; the same job in 2 MB shards
separates Ray's fixed cost per run (connecting) from its cost per task. Local: `--executor
local --workers 2`. Ray: `--executor ray --address 127.0.0.1:PORT` against ONE head (`ray
start --head --block --num-cpus 2`) started before the reps (start-up reported apart) and
killed by PID at the end, never by `ray stop`. As root with `unshare`/`nsenter`/`ip`, the
head and the Ray-side assay processes run in a private network namespace holding only
loopback (as `tests/cluster/cluster_helpers.py` does); stopping kills every process in it.

Wall time: around the `assay run` subprocess (start-up, connecting, writing included).
CPU seconds, one accounting for both sides: user+system time of the `assay run` process
and every descendant it reaped (`RUSAGE_CHILDREN` deltas here: the local workers are the
driver's children), plus, for Ray, what the cluster used during the run: every process in
the namespace but its holder and the driver (else the head's process tree) -- GCS, raylet,
agents, Ray workers -- is sampled every 0.1 s from `/proc/PID/stat` (utime+stime), one
that exited counting with its last sample. (The raylet ignores SIGCHLD, so its workers'
time never reaches its cutime: a before/after delta loses every worker that exits.) The
last sample is read 1 s after the driver exits, so the idle cluster's cost over the run is
in Ray's figure; the same delta during the local runs is printed as idle cluster CPU.

Output identity: every file under data/, rejected/, quarantine/, index/, models/ and
reports/ of every rep, both sides, hashed and compared with the first local rep's, and the
manifests without timings and executor. Each run writes to the same output path, then is
moved aside (`WORK/JOB/local`, `WORK/JOB/ray`: the last rep of each). Shards and stages
come from the manifests; tasks = shards x stages (a global step's map calls not counted).

usage: python bench/ray_executor.py [--reps 3] [--workers 2] [--overhead-mb 32] [--limit-mb N]
       [--jobs NAME ...]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
Not named `ray.py`: a script's folder comes first on sys.path, and a `bench/ray.py` would
shadow the `ray` package for every script in `bench/`.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import BENCH, CORPUS, SHARED

BIN = Path(sys.executable).parent
CLK = os.sysconf("SC_CLK_TCK")
COMPARED = ("data", "rejected", "quarantine", "index", "models", "reports")
TIMINGS = {"seconds", "wall_seconds", "created"}
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
FILTERS = [{"gopher_repetition": {}}, {"gopher_quality": {}}, {"c4_quality": {}},
           {"fineweb_quality": {}}]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


class Cluster:
    """One Ray head node of 2 CPUs, in a private network namespace where possible."""

    def __init__(self, folder: Path, log: Path, cpus: int) -> None:
        self.folder, self.log, self.cpus = folder, log, cpus
        self.holder: subprocess.Popen | None = None
        self.seen: dict[tuple[int, str], float] = {}  # (pid, start time): utime+stime, s
        self.lock, self.done = threading.Lock(), threading.Event()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.namespaced = os.geteuid() == 0 and all(map(shutil.which, ("unshare", "nsenter", "ip")))
        with socket.socket() as s:  # without a namespace, the machine's ports: a free one
            s.bind(("127.0.0.1", 0))
            self.port = 6379 if self.namespaced else s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    @property
    def enter(self) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net"] if self.holder else []

    def start(self) -> float:
        """Start the head; return the seconds until a driver connected and saw its CPUs."""
        started = time.perf_counter()
        if self.namespaced:
            self.holder = subprocess.Popen(
                ["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 1000000"],
                stdout=subprocess.PIPE, start_new_session=True)
            assert self.holder.stdout and self.holder.stdout.readline().strip() == b"up"
            self.netns = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        self.head = subprocess.Popen(
            [*self.enter, str(BIN / "ray"), "start", "--head", "--block", "--port", str(self.port),
             "--num-cpus", str(self.cpus), "--include-dashboard", "false", "--object-store-memory",
             "200000000", "--temp-dir", str(self.folder / "ray"), "--disable-usage-stats"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=ENV,
            cwd=self.folder, start_new_session=True)
        probe = ("import ray, sys\n"
                 f"ray.init(address='{self.address}', logging_level='ERROR')\n"
                 f"sys.exit(ray.cluster_resources().get('CPU') != {self.cpus})\n")
        while subprocess.run([*self.enter, sys.executable, "-c", probe], env=ENV, cwd=self.folder,
                             capture_output=True).returncode:
            if self.head.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError(f"the Ray head did not come up; see {self.log}")
            time.sleep(0.5)
        self.sampler.start()
        return time.perf_counter() - started

    def pids(self) -> list[int]:
        procs = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        if self.holder:
            def inside(pid: int) -> bool:
                try:
                    return os.readlink(f"/proc/{pid}/ns/net") == self.netns
                except OSError:
                    return False
            return [p for p in procs if p != self.holder.pid and inside(p)]
        kids: dict[int, list[int]] = {}
        for p in procs:
            if (st := _stat(p)) is not None:
                kids.setdefault(int(st[1]), []).append(p)
        tree, todo = [], [self.head.pid]
        while todo:
            tree.append(pid := todo.pop())
            todo += kids.get(pid, [])
        return tree

    def _sample(self) -> None:
        while not self.done.wait(0.1):
            self.cpu()

    def cpu(self) -> dict[tuple[int, str], float]:
        """utime+stime of every cluster process seen so far, one that exited with its last
        sample (the raylet ignores SIGCHLD, so its workers' time never reaches cutime)."""
        with self.lock:
            for pid in self.pids():
                if (st := _stat(pid)) is not None:
                    self.seen[(pid, st[19])] = (int(st[11]) + int(st[12])) / CLK
            return dict(self.seen)

    def stop(self) -> None:
        self.done.set()
        if self.sampler.is_alive():
            self.sampler.join()
        for _ in range(4):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        for proc in filter(None, (self.holder, getattr(self, "head", None))):
            proc.kill()
            proc.wait()


def _prefix(source: Path, target: Path, mb: float) -> Path:
    """The first ``mb`` MB of ``source`` (whole lines) as ``target``."""
    with source.open("rb") as src, target.open("wb") as dst:
        for line in src:
            dst.write(line)
            if dst.tell() >= mb * 1e6:
                break
    return target


def _fingerprint(out: Path) -> tuple[dict[str, str], dict]:
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
             for folder in COMPARED if (out / folder).is_dir()
             for p in sorted((out / folder).rglob("*")) if p.is_file()}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("executor")
    manifest["recipe"].pop("executor", None)

    def strip(v: object) -> object:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in TIMINGS}
        return [strip(x) for x in v] if isinstance(v, list) else v
    return files, strip(manifest)


def run_once(cluster: Cluster, folder: Path, side: str, workers: int) -> dict:
    """``assay run`` of ``folder``'s recipe on one side; its wall and CPU seconds."""
    command = [str(BIN / "assay"), "run", str(folder / "recipe.yaml"), "--executor", side]
    if side == "ray":
        command = [*cluster.enter, *command, "--address", cluster.address]
    else:
        command += ["--workers", str(workers)]
    load_start = os.getloadavg()[0]
    before, r0 = cluster.cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(folder / f"{side}.log", "ab") as log:
        proc = subprocess.Popen(command, env=ENV, cwd=folder, stdout=log, stderr=log)
        proc.wait()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(1.0)  # the job's Ray workers are stopped
    cluster_cpu = sum(v - before.get(k, 0.0) for k, v in cluster.cpu().items()
                      if k in before or k[0] != proc.pid)  # the driver counts in r1 - r0
    if proc.returncode:
        raise SystemExit(f"{side} failed (exit {proc.returncode}); see {folder / side}.log")
    driver = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    return {"wall_s": wall, "driver_cpu_s": driver, "cluster_cpu_s": cluster_cpu,
            "cpu_s": driver + (cluster_cpu if side == "ray" else 0.0), "load_start": load_start,
            "executor": manifest["executor"], "kept": manifest["totals"]["kept"],
            "docs": manifest["totals"]["in"]}


def summarize(sides: dict[str, list[dict]], prints: dict[str, tuple], shard_mb: float) -> dict:
    med = {s: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "cluster_cpu_s")}
           for s, rs in sides.items()}
    ref_files, ref_manifest = prints["local-r1"]
    differ = {run: sorted(f for f in set(files) | set(ref_files) if files.get(f) != ref_files.get(f))
              for run, (files, _) in prints.items()}
    differ = {run: files[:20] for run, files in differ.items() if files}
    executor = sides["ray"][0]["executor"]
    tasks = executor["shards"] * executor["stages"]
    return {
        "docs": sides["local"][0]["docs"], "kept": sides["local"][0]["kept"],
        "shards": executor["shards"], "stages": executor["stages"], "tasks": tasks,
        "shard_mb": shard_mb, "ray_workers": executor["workers"], "median": med,
        "wall_ratio": med["ray"]["wall_s"] / med["local"]["wall_s"],
        "cpu_ratio": med["ray"]["cpu_s"] / med["local"]["cpu_s"],
        "ray_overhead_ms_per_task": 1000 * (med["ray"]["wall_s"] - med["local"]["wall_s"]) / tasks,
        "paired_wall_ratios": [r["wall_s"] / loc["wall_s"]
                               for r, loc in zip(sides["ray"], sides["local"], strict=True)],
        "same_output_bytes": not differ, "differing_files": differ,
        "files_compared": len(ref_files),
        "manifests_differ": [key for key, (_, m) in prints.items() if m != ref_manifest],
        "runs": sides,
    }


def report(summary: dict, results: Path) -> None:
    print("\n| job | shards x stages | local wall s | ray wall s | ray/local | local CPU s | ray CPU s "
          "| ray/local | ray ms/task | same output bytes |\n" + "|---" * 10 + "|")
    for name, j in summary["jobs"].items():
        loc, ray = j["median"]["local"], j["median"]["ray"]
        print(f"| {name} | {j['shards']} x {j['stages']} | {loc['wall_s']:.1f} | {ray['wall_s']:.1f} "
              f"| {j['wall_ratio']:.2f}x | {loc['cpu_s']:.1f} | {ray['cpu_s']:.1f} "
              f"| {j['cpu_ratio']:.2f}x | {j['ray_overhead_ms_per_task']:+.0f} "
              f"| {'yes' if j['same_output_bytes'] else 'no'} |")
    o, load = summary["jobs"].get("overhead"), summary["load_avg_1min"]
    paired = {n: ", ".join(f"{x:.2f}x" for x in j["paired_wall_ratios"]) for n, j in summary["jobs"].items()}
    print("\npaired ray/local wall per rep: " + "; ".join(f"{n} {p}" for n, p in paired.items()))
    idle = ", ".join(f"{n} {j['median']['local']['cluster_cpu_s']:.1f} s" for n, j in summary["jobs"].items())
    print(f"medians of {summary['reps']} interleaved reps, {summary['workers']} workers each way; "
          f"Ray head up in {summary['cluster_start_s']:.1f} s (not in the runs); idle cluster's CPU "
          f"during the local runs (median): {idle}")
    if o is not None and "marginal_ms_per_task" in summary:
        print(f"per-task overhead Ray adds: {o['ray_overhead_ms_per_task']:+.1f} ms per shard "
              f"({o['shards']} shards of {o['shard_mb']} MB, pii on IPs only, {o['docs']:,} docs); "
              f"without Ray's fixed cost per run (connecting), from the two shard sizes: "
              f"{summary['marginal_ms_per_task']:+.1f} ms per task")
    for name, j in summary["jobs"].items():
        print(f"{name}: same output bytes: {'yes' if j['same_output_bytes'] else 'no'} "
              f"({j['files_compared']} files, {2 * summary['reps']} runs)"
              + (f"; differing: {j['differing_files']}" if j["differing_files"] else "")
              + (f"; manifests differ: {j['manifests_differ']}" if j["manifests_differ"] else ""))
    print(f"load average (1 min): {load['start']:.2f} at start, {load['end']:.2f} at end, "
          f"{min(load['runs']):.2f}-{max(load['runs']):.2f} at the runs' starts; this script's own "
          f"CPU (sampling, hashing) {summary['sampler_cpu_s']:.1f} s\nResults: {results}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overhead-mb", type=float, default=32, help="input of the trivial job")
    parser.add_argument("--overhead-shard-mb", type=float, default=0.25)
    parser.add_argument("--limit-mb", type=float, help="first N MB of each corpus (quick runs)")
    parser.add_argument("--jobs", nargs="+", help="run only these jobs (default: all)")
    args = parser.parse_args()
    if not (CORPUS / "base.jsonl").exists():
        subprocess.run([str(SHARED / "bench" / "make_corpus.sh")], check=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = BENCH / "work" / f"ray-{stamp}"
    work.mkdir(parents=True)
    base, neardup = CORPUS / "base.jsonl", CORPUS / "neardup.jsonl"
    if args.limit_mb:
        base = _prefix(base, work / "base.jsonl", args.limit_mb)
        neardup = _prefix(neardup, work / "neardup.jsonl", args.limit_mb)
    small = _prefix(CORPUS / "base.jsonl", work / "overhead.jsonl", args.overhead_mb)
    packed = work / "base.jsonl.gz"  # a compressed input: Ray's tasks cannot seek in it
    jobs = {  # name: (input, steps, output format, shard_mb)
        "filters": (base, FILTERS, "jsonl", 2.0),
        "filters_gz": (packed, FILTERS, "jsonl", 2.0),
        "minhash": (neardup, [{"minhash_dedup": {}}], "parquet", 2.0),
        "overhead": (small, [{"pii": {"types": ["ip"]}}], "jsonl", args.overhead_shard_mb),
        "overhead_2mb": (small, [{"pii": {"types": ["ip"]}}], "jsonl", 2.0),  # fewer tasks
    }
    jobs = {name: job for name, job in jobs.items() if not args.jobs or name in args.jobs}
    if "filters_gz" in jobs:
        with base.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
    for name, (path, steps, fmt, shard_mb) in jobs.items():
        recipe = {"name": f"bench-{name}", "input": {"path": str(path)},
                  "output": {"path": str(work / name / "out"), "format": fmt},
                  "executor": {"workers": args.workers, "shard_mb": shard_mb}, "steps": steps}
        (work / name).mkdir()
        (work / name / "recipe.yaml").write_text(json.dumps(recipe, indent=1))  # JSON is YAML

    load_start = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="bray-"))  # short: Ray's socket paths
    cluster = Cluster(folder, work / "ray-head.log", args.workers)
    runs: dict[str, dict[str, list[dict]]] = {j: {"local": [], "ray": []} for j in jobs}
    prints: dict[str, dict[str, tuple]] = {j: {} for j in jobs}
    try:
        start_s = cluster.start()
        where = "in a private network namespace" if cluster.holder else "without a namespace"
        print(f"Ray head at {cluster.address} {where}, up in {start_s:.1f} s", flush=True)
        for rep in range(1, args.reps + 1):
            for name in jobs:
                for side in ("local", "ray") if rep % 2 else ("ray", "local"):
                    record = {"rep": rep, **run_once(cluster, work / name, side, args.workers)}
                    runs[name][side].append(record)
                    prints[name][f"{side}-r{rep}"] = _fingerprint(work / name / "out")
                    shutil.rmtree(work / name / side, ignore_errors=True)
                    (work / name / "out").rename(work / name / side)
                    ex = record["executor"]
                    print(f"rep {rep} {name:8s} {side:5s} wall {record['wall_s']:7.1f}s  "
                          f"cpu {record['cpu_s']:6.1f}s (driver {record['driver_cpu_s']:.1f}, "
                          f"cluster {record['cluster_cpu_s']:.1f})  {ex['shards']} shards x "
                          f"{ex['stages']} stages  load {record['load_start']:.2f}", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)
    summary = {
        "reps": args.reps, "workers": args.workers, "cluster_start_s": start_s,
        "namespace": bool(cluster.holder), "inputs": {n: str(j[0]) for n, j in jobs.items()},
        "load_avg_1min": {"start": load_start, "end": os.getloadavg()[0],
                          "runs": [r["load_start"] for j in runs.values() for s in j.values() for r in s]},
        "sampler_cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        "jobs": {name: summarize(runs[name], prints[name], jobs[name][3]) for name in jobs},
    }
    if {"overhead", "overhead_2mb"} <= set(jobs):
        small_job, big_job = summary["jobs"]["overhead"], summary["jobs"]["overhead_2mb"]
        extra = [(j["median"]["ray"]["wall_s"] - j["median"]["local"]["wall_s"], j["tasks"])
                 for j in (small_job, big_job)]
        tasks = max(1, extra[0][1] - extra[1][1])
        summary["marginal_ms_per_task"] = 1000 * (extra[0][0] - extra[1][0]) / tasks
    results = BENCH / "results" / f"ray-{stamp}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=1))
    report(summary, results)


if __name__ == "__main__":
    main()

"""Ray driver for `llmtool merge --evolve`: the search on a Ray cluster.

The search (CMA-ES, history, outputs) stays in llmtool: each generation the driver runs
`llmtool evolve ask` for the candidates, hands them to a pool of Ray actors -- one per worker
slot, each wrapping a persistent `llmtool eval-worker` process that loaded the models and
fitness data once -- appends every record to `STATE/ray-results.jsonl` as it arrives, and runs
`llmtool evolve tell` when the generation is complete; at the end `llmtool evolve finish`
writes best.yml and best.gguf. llmtool tells CMA-ES in candidate order, so the result is the
in-process `merge --evolve`'s, byte for byte, whatever order the workers finish in.

Faults: an actor that dies (node lost, process killed, the worker process gone) fails its
call; the driver puts the candidate back in the queue and Ray restarts the actor (up to
`max_restarts` times), which starts a fresh worker. Stopping the driver loses at most the
evaluations in flight: on restart, the records already in ray-results.jsonl for the pending
generation are reused (llmtool's state re-asks the same candidates).
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import time

import ray
from ray.exceptions import RayError

RESULTS = "ray-results.jsonl"


@ray.remote
class EvalActor:
    """One worker slot: a persistent `llmtool eval-worker` child process."""

    def __init__(self, llmtool, config, threads=None, seed=None):
        cmd = [llmtool, "eval-worker", config]
        if threads:
            cmd += ["--threads", str(threads)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{' '.join(cmd)} exited before it was ready (status {self.proc.wait()})")
        self.ready = json.loads(line)
        self.ready.update(start_seconds=time.time() - t0, actor_pid=os.getpid(), worker_pid=self.proc.pid)

    def info(self):
        """The worker's ready line, its start-up time (process start to ready) and the pids."""
        return self.ready

    def evaluate(self, request):
        """Sends one request line to the worker and returns its record line."""
        try:
            self.proc.stdin.write(request.rstrip("\n") + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            # The worker process is gone (killed, out of memory): end this actor too, so Ray
            # restarts it with a fresh worker and the driver re-queues the candidate.
            os._exit(1)
        return line


class StopDriver(Exception):
    """Raised by a hook to stop the driver (the state stays resumable)."""


class Driver:
    """Runs (or resumes) one search in `state` (the output directory)."""

    def __init__(self, config, state, *, workers=2, num_cpus=1, num_gpus=0, threads=None, llmtool="llmtool",
                 seed=None, max_restarts=3, quiet=False):
        self.config = str(config)
        self.state = str(state)
        self.llmtool = llmtool
        self.seed = seed
        self.quiet = quiet
        self.max_restarts = max_restarts
        if threads is None and num_cpus and num_cpus >= 1:
            threads = int(num_cpus)
        options = dict(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_task_retries=0)
        cfg = os.path.abspath(self.config)
        self.actors = [EvalActor.options(**options).remote(llmtool, cfg, threads, seed) for _ in range(workers)]
        self.alive = list(range(workers))
        self.failures = [0] * workers
        self.requeued = 0
        self.evaluated = 0
        self.reused = 0
        self.infos = []
        # Test and monitoring hooks: on_dispatch(driver, slot, request), on_record(driver, record).
        self.on_dispatch = None
        self.on_record = None

    def log(self, msg):
        if not self.quiet:
            print(f"llmtool-ray: {msg}", file=sys.stderr, flush=True)

    def _llmtool(self, *args):
        p = subprocess.run([self.llmtool, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"llmtool {' '.join(args)} failed:\n{p.stderr}")
        return p.stdout

    def _results(self):
        """Records in STATE/ray-results.jsonl (a line cut short by a killed driver is dropped)."""
        path = os.path.join(self.state, RESULTS)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            lines = f.read().splitlines()
        good = []
        for line in lines:
            try:
                good.append(json.loads(line))
            except ValueError:
                continue
        if len(good) != len([x for x in lines if x.strip()]):
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in good)
            os.replace(tmp, path)
        return good

    def _append(self, line):
        with open(os.path.join(self.state, RESULTS), "a") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _generation(self, asked):
        """Evaluates one generation's request lines on the pool."""
        reqs = [json.loads(line) for line in asked]
        done = set()
        for r in self._results():
            if not r.get("ok"):
                continue
            for q in reqs:
                if (r.get("generation"), r.get("index"), r.get("genome")) == (q["generation"], q["index"], q["genome"]):
                    done.add(q["index"])
        self.reused += len(done)
        queue = collections.deque(line for line, q in zip(asked, reqs) if q["index"] not in done)
        idle = list(self.alive)
        inflight = {}
        while queue or inflight:
            while queue and idle:
                slot = idle.pop(0)
                line = queue.popleft()
                inflight[self.actors[slot].evaluate.remote(line)] = (slot, line)
                if self.on_dispatch:
                    self.on_dispatch(self, slot, line)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                slot, line = inflight.pop(ref)
                try:
                    rec_line = ray.get(ref)
                except RayError as e:
                    queue.appendleft(line)
                    self.requeued += 1
                    self.failures[slot] += 1
                    self.log(f"worker slot {slot} failed ({type(e).__name__}); candidate re-queued")
                    if self.max_restarts >= 0 and self.failures[slot] > self.max_restarts + 1:
                        self.alive.remove(slot)
                        self.log(f"worker slot {slot} dropped after {self.failures[slot]} failures in a row")
                        if not self.alive:
                            raise RuntimeError("every worker slot died; see the Ray logs") from e
                    else:
                        idle.append(slot)
                    continue
                self.failures[slot] = 0
                rec = json.loads(rec_line)
                self._append(rec_line)
                idle.append(slot)
                if not rec.get("ok"):
                    # The in-process search stops on a candidate it cannot evaluate; so do we.
                    raise RuntimeError(f"candidate {rec.get('index')} failed on {rec.get('worker')}: {rec.get('error')}")
                self.evaluated += 1
                if self.on_record:
                    self.on_record(self, rec)

    def run(self, finish=True):
        """Runs the search to its budget (then `evolve finish` unless finish=False); returns a summary."""
        t0 = time.time()
        try:
            self.infos = ray.get([a.info.remote() for a in self.actors])
            self.log(f"{len(self.actors)} workers ready (start-up {max(i['start_seconds'] for i in self.infos):.2f} s)")
            while True:
                asked = self._llmtool("evolve", "ask", self.config, "--state", self.state).splitlines()
                asked = [line for line in asked if line.strip()]
                if not asked:
                    break
                g0 = time.time()
                self._generation(asked)
                status = json.loads(self._llmtool("evolve", "tell", self.config, "--state", self.state,
                                                  os.path.join(self.state, RESULTS)))
                self.log(f"generation {status['generation']}: {status['evaluations']} evaluations, best fitness "
                         f"{status['best_fitness']}, {len(asked) / max(time.time() - g0, 1e-9):.3f} evals/s")
        finally:
            self.shutdown()
        if finish:
            args = ["evolve", "finish", self.config, "--state", self.state, "-q"]
            if self.seed is not None:
                args += ["--seed", str(self.seed)]
            self._llmtool(*args)
        return {
            "evaluated": self.evaluated,
            "reused": self.reused,
            "requeued": self.requeued,
            "seconds": time.time() - t0,
            "workers": self.infos,
        }

    def shutdown(self):
        for a in self.actors:
            ray.kill(a, no_restart=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="llmtool-ray", description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="EVOLVE.yml (paths in it must be readable on every node)")
    p.add_argument("out", help="output / state directory (on the driver's node)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a local Ray")
    p.add_argument("--local-cpus", type=int, help="CPUs of the local Ray started when no --address")
    p.add_argument("--workers", type=int, default=2, help="worker slots (Ray actors)")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs each actor reserves")
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs each actor reserves")
    p.add_argument("--threads", type=int, help="threads of each eval-worker (default: --num-cpus)")
    p.add_argument("--llmtool", default="llmtool", help="the llmtool binary on the nodes")
    p.add_argument("--seed", type=int, help="merge seed (as merge --seed)")
    p.add_argument("--max-restarts", type=int, default=3, help="restarts of a dead actor (-1: unlimited)")
    p.add_argument("--no-finish", action="store_true", help="stop after the search; no best.yml / best.gguf")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    t0 = time.time()
    if a.address:
        ray.init(address=a.address)
    else:
        ray.init(num_cpus=a.local_cpus)
    t1 = time.time()
    d = Driver(a.config, a.out, workers=a.workers, num_cpus=a.num_cpus, num_gpus=a.num_gpus, threads=a.threads,
               llmtool=a.llmtool, seed=a.seed, max_restarts=a.max_restarts, quiet=a.quiet)
    summary = d.run(finish=not a.no_finish)
    summary["ray_init_seconds"] = t1 - t0
    if a.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

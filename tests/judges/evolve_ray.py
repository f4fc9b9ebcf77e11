"""Runs the Ray driver (python/llmtool_ray) three ways on a local Ray cluster of 2 CPUs with
2 workers, for tests/evolve_ray.rs to compare with the in-process `merge --evolve`:

- OUT/ray: a plain run;
- OUT/ray-kill: the worker process of the slot given candidate 0 of generation 1 is killed
  (SIGKILL) as it is dispatched, and the actor given candidate 3 of generation 2 is killed by
  ray.kill (Ray restarts both actors; the candidates are re-queued);
- OUT/ray-resume: the driver is stopped after its 8th record (mid generation 1), then a new
  driver resumes the same state.

Usage: evolve_ray.py LLMTOOL EVOLVE.yml OUT. Prints a JSON summary of the three runs.
"""

import json
import os
import signal
import sys

import ray

from llmtool_ray import Driver, StopDriver


def main():
    llmtool, config, out = sys.argv[1:4]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    common = dict(workers=2, num_cpus=1, llmtool=llmtool, quiet=True)
    summary = {}

    summary["ray"] = Driver(config, os.path.join(out, "ray"), **common).run()

    killed = set()

    def kill(driver, slot, line):
        req = json.loads(line)
        key = (req["generation"], req["index"])
        if key == (1, 0) and key not in killed:
            killed.add(key)
            os.kill(driver.infos[slot]["worker_pid"], signal.SIGKILL)
        elif key == (2, 3) and key not in killed:
            killed.add(key)
            ray.kill(driver.actors[slot], no_restart=False)

    d = Driver(config, os.path.join(out, "ray-kill"), **common)
    d.on_dispatch = kill
    summary["kill"] = d.run()
    summary["kill"]["killed"] = sorted(killed)

    def stop(driver, rec):
        if driver.evaluated == 8:
            raise StopDriver()

    d = Driver(config, os.path.join(out, "ray-resume"), **common)
    d.on_record = stop
    try:
        d.run()
        stopped = False
    except StopDriver:
        stopped = True
    summary["resume"] = {"stopped": stopped, "first": d.evaluated}
    summary["resume"].update(Driver(config, os.path.join(out, "ray-resume"), **common).run())
    for s in (summary["ray"], summary["kill"], summary["resume"]):
        s.pop("workers", None)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

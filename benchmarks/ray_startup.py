"""Ray's fixed cost in `emolens batch --ray`: starting a local Ray, the actors, and stopping it.

    python benchmarks/ray_startup.py [--repeat 3] [--json out.json]

Times, in one process on an idle machine, what `--ray` adds to a batch whatever its size:
``ray.init()`` of a local Ray, two batch actors up with their models (``_Analyzer``, as
``run_ray`` makes them), and killing them plus ``ray.shutdown()``. The same models built in
the process itself, as ``--workers 1`` does, are timed for comparison. Divide the total by a
batch's time on ``--workers 2`` to see how far the Ray path can come within 15% of it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _common import emit

from emolens._machine import describe_machine


def one_start() -> dict[str, float]:
    import ray

    from emolens.batch._ray import _Analyzer
    from emolens.batch._worker import BatchSettings

    t0 = time.perf_counter()
    ray.init(log_to_driver=False)
    t1 = time.perf_counter()
    actor_class = ray.remote(num_cpus=1)(_Analyzer)
    actors = [actor_class.remote(BatchSettings()) for _ in range(2)]
    ray.get([actor.__ray_ready__.remote() for actor in actors])
    t2 = time.perf_counter()
    for actor in actors:
        ray.kill(actor)
    ray.shutdown()
    t3 = time.perf_counter()
    return {"ray_init_s": t1 - t0, "two_actors_with_models_s": t2 - t1, "kill_and_shutdown_s": t3 - t2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from emolens.batch._worker import BatchSettings, build_recognizer

    t = time.perf_counter()
    build_recognizer(BatchSettings())
    in_process = time.perf_counter() - t
    runs = [one_start() for _ in range(args.repeat)]
    medians = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    result = {
        "machine": describe_machine(),
        "median_s": medians,
        "total_median_s": round(sum(medians.values()), 2),
        "models_in_process_s": round(in_process, 2),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()

"""``python -m formal [JOB ...] [--fast] [--mutants] [--cover] [-j N] [--mode prove|bmc] [--depth N]``:
run the formal jobs of :mod:`formal.jobs` and print one table row per job; exit status 1 unless
every job passes (and every mutant fails). The jobs, their depths and a measured table:
``formal/README.md``."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .harness import check
from .jobs import MUTANTS, SKIPPED, Job, run_job, select


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _cover(job: Job, depth: int, timeout: float):
    dut = job.component()
    properties = job.properties
    if job.cover_assume is not None:
        def properties(m, dut, env, _base=job.properties, _extra=job.cover_assume):
            if _base is not None:
                _base(m, dut, env)
            _extra(m, dut, env)
    return check(dut, job.name, mode="cover", depth=depth, static=job.static, timeout=timeout,
                 properties=properties, free=job.free(dut) if job.free else None,
                 memory_map=job.memory_map)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m formal", description=__doc__)
    ap.add_argument("jobs", nargs="*", help="job or block names (default: all)")
    ap.add_argument("--fast", action="store_true", help="only the fast subset")
    ap.add_argument("--mutants", action="store_true", help="also run the ablated blocks that must FAIL")
    ap.add_argument("--cover", action="store_true",
                    help="for the bmc jobs, also find the first step an output beat transfers / waits "
                         "within the job's cover depth (shows that the bounded check reaches outputs)")
    ap.add_argument("-j", "--parallel", type=int, default=1, help="jobs run at once (default 1)")
    ap.add_argument("--mode", choices=("prove", "bmc"), help="override every job's mode")
    ap.add_argument("--depth", type=int, help="override every job's depth")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per solver run (default 900)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the failure details")
    args = ap.parse_args(argv)
    try:
        jobs = select(args.jobs, fast=args.fast, mutants=args.mutants)
    except ValueError as exc:
        ap.error(str(exc))
    mutant_names = {j.name for j in MUTANTS}

    head = ["block", "checks", "ports (in: assumed, out: asserted)", "mode", "depth", "result", "seconds"]
    widths = [26, 36, 40, 5, 5, 7, 7]
    if args.cover:
        head.append("cover @step")
        widths.append(30)
    print(_row(head, widths), flush=True)
    print(_row(["-" * w for w in widths], widths), flush=True)
    ok = True
    t0 = time.monotonic()

    def one(job: Job):
        res = run_job(job, timeout=args.timeout, mode=args.mode, depth=args.depth)
        cov = _cover(job, job.cover_depth, args.timeout) if args.cover and job.cover_depth else None
        return job, res, cov

    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        for job, res, cov in pool.map(one, jobs):
            ports = " ".join(f"{p}:{k}" for p, k in res.ports)
            expected = "FAIL" if job.name in mutant_names else "PASS"
            cells = [job.name, job.what, ports, res.mode, str(res.depth), res.status, f"{res.seconds:.0f}"]
            if args.cover:
                if cov is None:
                    cells.append("")
                else:
                    steps = sorted({v for v in cov.reached.values() if v is not None})
                    missing = [k for k, v in cov.reached.items() if v is None]
                    out_steps = [v for k, v in cov.reached.items() if v is not None and not k.startswith(
                        tuple(f"{p}:" for p, kind in res.ports if kind == "in"))]
                    text = f"out@{min(out_steps)}" if out_steps else ("-" if not steps else "")
                    if missing:
                        text += " unreached: " + ",".join(missing)
                    cells.append(text + f" (depth {cov.depth}, {cov.seconds:.0f} s)")
            print(_row(cells, widths), flush=True)
            if res.status != expected:
                ok = False
            if args.verbose and res.detail and (res.status != "PASS"):
                print("    " + res.detail, flush=True)
    if not args.jobs and not args.fast:
        for name, why in SKIPPED.items():
            print(_row([name, "skipped: " + why, "", "", "", "", ""] + ([""] if args.cover else []), widths))
    print(f"total {time.monotonic() - t0:.0f} s; {'all as expected' if ok else 'UNEXPECTED RESULTS'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

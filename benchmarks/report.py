#!/usr/bin/env python3
"""Medians, ratios and goal verdicts from Google Benchmark JSON files.

    report.py [--json OUT] [--plot-data OUT] RAW.json...

Every file is one run (round) of one executable. A row's figures are medians
over its rounds. Latency goals compare p50_ns (the median single round trip,
sampled by run_round_trips) when both rows have it, else the per-iteration
mean; either way both sides of a ratio use the same statistic.
"""
import argparse
import json
import os
import re
import statistics
import sys

# Goal table. A row that does not exist yet prints "not measured yet", never
# fails. Adding isolate's benchmarks means naming their rows as below:
#   isolate_process_add/two_cores      calc->add(a, b) under isolate::process, caller CPU 0, worker CPU 1
#   isolate_process_add/one_core       the same, both pinned to CPU 0
#   isolate_thread_add/spin            isolate::thread, caller CPU 0, worker CPU 1, spinning wait
#   isolate_thread_add/condvar         isolate::thread, sleeping wait (whichever the transport offers)
#   isolate_in_process_add             isolate::in_process
#   isolate_process_by_value/bytes:67108864   a 64 MiB argument by value; SetBytesProcessed(64 MiB per call)
#   isolate_thread_by_value/bytes:N, isolate_process_socket_by_value/bytes:N   the same under thread, over a socket
#   isolate_process_result/bytes:N    a result of N bytes returned (produce(N)); SetBytesProcessed(N per call)
#   isolate_process_shared_buffer/bytes:N     a shared_buffer of N bytes (N = 1024 and 1073741824)
#   isolate_process_start              load() and the first call, one start per iteration; p50_ns = median start
#   isolate_process_idle               counters rss_bytes (worker RSS) and cpu_percent (worker CPU while idle)
#   isolate_process_start/<preset>     the same start under limits::standard(), strict(), maximum()
#   isolate_process_add_strict/two_cores  the small call to a worker under limits::strict()
#   isolate_process_idle/strict        a sandboxed worker's two processes (PID 1 and the one serving), summed
#   isolate_process_add_no_telemetry/two_cores  the small call with telemetry compiled out (ISOLATE_TELEMETRY=0)
#   isolate_sandbox_run/cold/<preset> one isolate::sandbox run of add(2, 3) that starts its processes; p50_ns = median run
#   isolate_sandbox_run/warm/strict    the same run taken from a warm pool (refilled, untimed, before each)
#   sandbox_baseline_plain_call        add(2, 3) called directly
#   isolate_many_plugins/<preset>      a fleet of ISOLATE_BENCH_PLUGINS (1000) process plugins alive at once,
#                                      loaded from 4 threads; counters host_threads_count, memory_bytes
#                                      (host growth + every worker's PSS), start_all_ns, start_p50_ns
# ratio = metric(row) / metric(baseline); op "above<=" bounds metric(row) - metric(baseline)
# instead; with no baseline the bound is absolute.
GOALS = [
    # text, row, baseline, metric, op, bound
    ("process small call <= 2x shm spin-then-futex, two cores",
     "isolate_process_add/two_cores", "shm_spin_futex/two_cores/bytes:8", "latency", "<=", 2.0),
    ("process small call <= 1.5x shm futex, one core",
     "isolate_process_add/one_core", "shm_futex/one_core/bytes:8", "latency", "<=", 1.5),
    ("process small call >= 50x faster than Cap'n Proto",
     "isolate_process_add/two_cores", "capnp_add/two_cores", "latency", "<=", 1 / 50),
    ("thread <= 1.5x raw thread round trip, spinning",
     "isolate_thread_add/spin", "thread_spin/two_cores", "latency", "<=", 1.5),
    ("thread <= 1.5x raw thread round trip, sleeping",
     "isolate_thread_add/condvar", "thread_condvar/two_cores", "latency", "<=", 1.5),
    ("in_process <= 1.2x a virtual call",
     "isolate_in_process_add", "virtual_call", "latency", "<=", 1.2),
    ("64 MiB by value >= 50% of memcpy bandwidth",
     "isolate_process_by_value/bytes:67108864", "memcpy/bytes:67108864", "bytes_per_second", ">=", 0.5),
    ("thread: 64 MiB by value >= 50% of memcpy bandwidth",
     "isolate_thread_by_value/bytes:67108864", "memcpy/bytes:67108864", "bytes_per_second", ">=", 0.5),
    ("thread: 64 MiB by value at least as fast as a copy into a fresh vector",
     "isolate_thread_by_value/bytes:67108864", "fresh_vector_copy/bytes:67108864", "bytes_per_second", ">=", 1.0),
    ("64 MiB result >= 50% of memcpy bandwidth",
     "isolate_process_result/bytes:67108864", "memcpy/bytes:67108864", "bytes_per_second", ">=", 0.5),
    ("socket: 64 MiB by value >= 50% of a raw socketpair, one way",
     "isolate_process_socket_by_value/bytes:67108864", "socketpair_one_way/two_cores/bytes:67108864",
     "bytes_per_second", ">=", 0.5),
    ("shared buffer: 1 GiB within 2x of 1 KiB",
     "isolate_process_shared_buffer/bytes:1073741824", "isolate_process_shared_buffer/bytes:1024", "latency", "<=", 2.0),
    ("start <= 2 ms (median)", "isolate_process_start", None, "latency", "<=", 2e6),
    ("process small call <= 1.25x the raw thread round trip (the floor of any round trip), two cores",
     "isolate_process_add/two_cores", "thread_spin/two_cores", "latency", "<=", 1.25),
    ("4 callers, worker concurrency 2: at least one caller's calls/s",
     "isolate_process_throughput/concurrency:2/threads:4", "isolate_process_throughput/threads:1",
     "calls_per_second", ">=", 1.0),
    ("idle plugin PSS <= 1.5 MiB", "isolate_process_idle", None, "pss_bytes", "<=", 1.5 * 2**20),
    ("idle plugin RSS <= 1 MiB above a trivial C++ process",
     "isolate_process_idle", "baseline_cxx_process_idle", "rss_bytes", "above<=", 2**20),
    ("idle plugin ~0% CPU (<= 1%)", "isolate_process_idle", None, "cpu_percent", "<=", 1.0),
    ("strict start <= 5 ms (median; pyisolate here: 230-500 ms)", "isolate_process_start/strict", None, "latency", "<=", 5e6),
    ("strict small call <= 1.1x minimal, two cores",
     "isolate_process_add_strict/two_cores", "isolate_process_add/two_cores", "latency", "<=", 1.1),
    ("telemetry always on costs <= 3% of the small call, two cores",
     "isolate_process_add/two_cores", "isolate_process_add_no_telemetry/two_cores", "latency", "<=", 1.03),
    ("per-call accounting <= 1.5x the small call, two cores",
     "isolate_process_add_accounted/two_cores", "isolate_process_add/two_cores", "latency", "<=", 1.5),
    ("per-call accounting <= 1.5x the small call, one core",
     "isolate_process_add_accounted/one_core", "isolate_process_add/one_core", "latency", "<=", 1.5),
    ("per-call accounting <= 1.5x the small call, thread",
     "isolate_thread_add_accounted/spin", "isolate_thread_add/spin", "latency", "<=", 1.5),
    # Our own bound: an object the plugin made (isolate::capability) is
    # called like the plugin itself; the id in the frame costs little.
    ("process call to a capability <= 1.2x the plain call",
     "isolate_process_object_add/two_cores", "isolate_process_add/two_cores", "latency", "<=", 1.2),
    ("sandboxed function, cold, strict: median run <= 2 ms (pyisolate's start here: 230-500 ms)",
     "isolate_sandbox_run/cold/strict", None, "latency", "<=", 2e6),
    ("sandboxed function, warm, strict: median run <= 100 us",
     "isolate_sandbox_run/warm/strict", None, "latency", "<=", 1e5),
    ("1000 sandboxed plugins alive: <= 16 host threads beyond the callers'",
     "isolate_many_plugins/strict", None, "host_threads_count", "<=", 16),
    ("1000 sandboxed plugins alive: <= 300 MiB in all (host + workers' PSS)",
     "isolate_many_plugins/strict", None, "memory_bytes", "<=", 300 * 2**20),
]

TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
SIZE_RE = re.compile(r"^(?P<series>.+)/bytes:(?P<bytes>\d+)$")


def read_runs(paths):
    """Returns (context of the first file, {row: [sample, ...]}, errors, 1-minute load averages)."""
    context, samples, errors, loads = None, {}, [], []
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            errors.append(f"{path}: unreadable ({e})")
            continue
        context = context or data.get("context", {})
        loads += data.get("context", {}).get("load_avg", [])[:1]
        runs = data.get("benchmarks", [])
        plain = {b["run_name"] for b in runs if b.get("run_type") == "iteration"}
        for b in runs:
            # Google Benchmark's own suffixes ("/real_time" comes before
            # "/threads:N"; "/iterations:N" for a fixed count) are not row names.
            name = re.sub(r"/((real|manual)_time|iterations:\d+)(?=/|$)", "", b["run_name"])
            # Iteration runs are samples; a median aggregate only when the
            # file holds nothing else for that row (--benchmark_report_aggregates_only).
            if b.get("run_type") == "aggregate" and (b.get("aggregate_name") != "median" or b["run_name"] in plain):
                continue
            if b.get("error_occurred"):
                errors.append(f"{name}: {b.get('error_message')}")
                continue
            scale = TIME_UNIT_NS[b.get("time_unit", "ns")]
            sample = {"time_ns": b["real_time"] * scale, "cpu_ns": b["cpu_time"] * scale}
            for key, value in b.items():
                if key.endswith(("_ns", "_bytes", "_percent", "_per_second", "_count")):
                    sample.setdefault(key, value)
            samples.setdefault(name, []).append(sample)
    return context or {}, samples, errors, loads


def summarize(samples):
    rows = {}
    for name, runs in samples.items():
        row = {"rounds": len(runs)}
        for key in sorted({k for r in runs for k in r}):
            values = [r[key] for r in runs if key in r]
            row[key] = statistics.median(values)
            if key == "time_ns":
                row["time_min_ns"], row["time_max_ns"] = min(values), max(values)
        rows[name] = row
    return rows


def metric(row, other, name):
    if name == "latency":
        name = "p50_ns" if "p50_ns" in row and (other is None or "p50_ns" in other) else "time_ns"
    return name, row.get(name)


def evaluate(rows):
    verdicts = []
    for text, row_name, base_name, metric_name, op, bound in GOALS:
        v = {"goal": text, "row": row_name, "baseline": base_name, "op": op, "bound": bound}
        row, base = rows.get(row_name), rows.get(base_name) if base_name else None
        if row is None:
            v["status"] = "not measured yet"
        elif base_name and base is None:
            v["status"] = "baseline missing"
        else:
            used, value = metric(row, base, metric_name)
            v["metric"] = used
            if value is None:
                v["status"] = f"row has no {used}"
            else:
                if base is None:
                    v["value"] = value
                else:
                    base_value = metric(base, row, metric_name)[1]
                    v["value"], v["baseline_value"] = value, base_value
                    # "above<=": by how much the row exceeds its baseline, not their ratio.
                    value = value - base_value if op == "above<=" else value / base_value
                    v["excess" if op == "above<=" else "ratio"] = value
                floor_row = FLOORS.get((row_name, used))
                if floor_row and used in rows.get(floor_row, {}):
                    v["floor_row"], v["floor"] = floor_row, rows[floor_row][used]
                v["status"] = "PASS" if (value <= bound if op in ("<=", "above<=") else value >= bound) else "MISS"
        verdicts.append(v)
    return verdicts


def human_time(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def print_table(rows):
    header = ("row", "rounds", "mean/iter", "spread", "p50", "p99", "GB/s", "calls/s")
    lines = [header]
    for name in sorted(rows):
        r = rows[name]
        spread = (r["time_max_ns"] - r["time_min_ns"]) / r["time_ns"] * 100 if r["time_ns"] else 0
        gbps = f"{r['bytes_per_second'] / 1e9:.2f}" if r.get("bytes_per_second", 0) >= 1e7 else ""
        rate = f"{r['calls_per_second']:.3g}" if "calls_per_second" in r else ""
        lines.append((name, str(r["rounds"]), human_time(r["time_ns"]), f"{spread:.0f}%",
                      human_time(r.get("p50_ns")), human_time(r.get("p99_ns")), gbps, rate))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))


# Rows printed beside a goal's verdict, for scale: (goal row, metric) -> row.
FLOORS = {("isolate_process_idle", "rss_bytes"): "baseline_cxx_process_idle"}


# Counters that are neither times nor rates, printed under the table.
EXTRA_COUNTERS = ("rss_bytes", "pss_bytes", "rss_anon_bytes", "rss_file_bytes", "rss_shmem_bytes",
                  "cpu_percent", "host_cpu_percent", "unload_p50_ns",
                  "plugins_count", "host_threads_count", "host_bytes", "worker_pss_bytes", "memory_bytes",
                  "start_all_ns", "start_p50_ns", "stop_all_ns")


def print_extras(rows):
    for name in sorted(rows):
        shown = [f"{key}={human_time(rows[name][key]) if key.endswith('_ns') else human_size(rows[name][key]) if key.endswith('_bytes') else f'{rows[name][key]:.3g}'}"
                 for key in EXTRA_COUNTERS if key in rows[name]]
        if shown:
            print(f"{name}: " + " ".join(shown))


def human_size(n):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.0f} B"


def print_goals(verdicts):
    print("\ngoals (ratio = row / baseline, medians of the same run):")
    for v in verdicts:
        if "excess" in v:
            detail = (f"{human_size(v['excess'])} above {v['baseline']} ({human_size(v['value'])} vs "
                      f"{human_size(v['baseline_value'])}) <= {human_size(v['bound'])} ({v['metric']})")
        elif "ratio" in v:
            detail = f"ratio {v['ratio']:.3g} {v['op']} {v['bound']:.3g} on {v['metric']}"
            if v["op"] == "<=" and v["bound"] < 1:
                detail += f" ({1 / v['ratio']:.0f}x faster)"
        elif "value" in v:
            show = (human_time if v["metric"].endswith("_ns") else
                    human_size if v["metric"].endswith("_bytes") else (lambda x: f"{x:.4g}"))
            detail = f"{show(v['value'])} {v['op']} {show(v['bound'])} ({v['metric']})"
            if v.get("floor") is not None:
                detail += f"; a trivial C++ process: {show(v['floor'])} ({v['floor_row']})"
        else:
            detail = f"{v['row']}" + (f" vs {v['baseline']}" if v["baseline"] else "")
        print(f"  {v['status']:<16} {v['goal']}: {detail}")


def write_plot_data(rows, path):
    """One gnuplot data block per transport measured at several sizes: bytes, latency (ns)."""
    series = {}
    for name, r in rows.items():
        m = SIZE_RE.match(name)
        if m:
            series.setdefault(m["series"], []).append((int(m["bytes"]), r.get("p50_ns", r["time_ns"])))
    blocks = [f'"{name}"\n' + "".join(f"{size} {ns}\n" for size, ns in sorted(points))
              for name, points in sorted(series.items())
              if len(points) >= 2]  # one size is a point, not a line: nothing to plot
    with open(path, "w") as f:
        f.write("\n\n".join(blocks))  # two blank lines separate gnuplot index blocks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the combined results here")
    parser.add_argument("--plot-data", help="write latency by payload size here (gnuplot blocks)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    context, samples, errors, loads = read_runs(args.files)
    rows = summarize(samples)
    verdicts = evaluate(rows)
    print(f"{context.get('host_name', '?')}: {context.get('num_cpus', '?')} CPUs at "
          f"{context.get('mhz_per_cpu', '?')} MHz, {len(args.files)} runs; medians over rounds")
    if loads:  # other work on the machine: the reason to trust ratios, not absolutes
        print(f"load average (1 min) at the start of the runs: {min(loads):.2f} to {max(loads):.2f}")
    print()
    print_table(rows)
    print()
    print_extras(rows)
    print_goals(verdicts)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"context": context, "machine": dict(zip(("sysname", "nodename", "release", "version", "machine"), os.uname())), "load_avg_1min": loads,
                       "rows": rows, "goals": verdicts, "errors": errors}, f, indent=2)
    if args.plot_data:
        write_plot_data(rows, args.plot_data)


if __name__ == "__main__":
    main()

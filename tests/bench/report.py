"""Results: samples per (metric, runtime), their statistics, and the
markdown and JSON reports."""

import json
import math
import os
import platform
import statistics

from .procs import meminfo_kib, read_text

RATIO_BASE = "runc"


class Row:
    def __init__(self, unit):
        self.unit = unit
        self.samples = []
        self.status = "ok"      # ok, failed or n/a
        self.note = ""

    def stats(self):
        if not self.samples:
            return {}
        ordered = sorted(self.samples)
        # nearest rank: p90 is a value that was measured
        p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
        return {"n": len(ordered), "min": ordered[0], "median": statistics.median(ordered), "p90": p90}


class Results:
    def __init__(self):
        self.rows = {}          # (metric, runtime) -> Row, in the order measured

    def _row(self, metric, runtime, unit):
        return self.rows.setdefault((metric, runtime), Row(unit))

    def add(self, metric, runtime, value, unit):
        self._row(metric, runtime, unit).samples.append(value)

    def fail(self, metric, runtime, why, unit, status="failed"):
        """A metric a runtime could not complete: its partial samples would
        mislead, so none are kept."""
        row = self._row(metric, runtime, unit)
        row.samples.clear()
        row.status, row.note = status, f"{status}: {why}"

    def note(self, metric, runtime, text, unit):
        self._row(metric, runtime, unit).note = text

    def grouped(self):
        """The rows metric by metric, each in the order first measured."""
        metrics = {}
        for (metric, runtime), row in self.rows.items():
            metrics.setdefault(metric, []).append((runtime, row))
        return [(metric, runtime, row) for metric, rows in metrics.items() for runtime, row in rows]

    def ratio(self, metric, runtime):
        """This runtime's median over runc's, when both exist."""
        mine = self.rows[(metric, runtime)].stats()
        base = self.rows.get((metric, RATIO_BASE))
        base = base.stats() if base else {}
        if not mine or not base or base["median"] == 0:
            return None
        return mine["median"] / base["median"]


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in read_text("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.machine())
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "memory_gib": round(meminfo_kib("MemTotal") / 2**20, 1),
            "load_average": os.getloadavg()}


def _show(value, unit):
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    return f"{value:.1f} {unit}"


def _cell(results, metric, runtime, row):
    s = row.stats()
    if not s or row.note.startswith("n/a"):
        note = row.note or "—"
        return note if len(note) <= 60 else note[:59] + "…"
    ratio = results.ratio(metric, runtime)
    return _show(s["median"], row.unit) + ("" if ratio is None else f" (×{ratio:.2f})")


def _summary(results):
    """Medians side by side: a row per metric, a column per runtime."""
    # the python probes of `floor` last: they are no runtime
    runtimes = sorted(dict.fromkeys(runtime for _, runtime in results.rows), key=lambda r: r == "python")
    lines = ["| metric | " + " | ".join(runtimes) + " |", "|---" * (len(runtimes) + 1) + "|"]
    for metric in dict.fromkeys(metric for metric, _ in results.rows):
        cells = [_cell(results, metric, r, results.rows[(metric, r)]) if (metric, r) in results.rows else ""
                 for r in runtimes]
        lines.append(f"| {metric} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines


def _details(results):
    lines = [f"| metric | runtime | n | min | median | p90 | median/{RATIO_BASE} | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for metric, runtime, row in results.grouped():
        s = row.stats()
        cells = [_show(s[k], row.unit) for k in ("min", "median", "p90")] if s else ["—"] * 3
        ratio = results.ratio(metric, runtime)
        lines.append(f"| {metric} | {runtime} | {s.get('n', 0)} | " + " | ".join(cells)
                     + f" | {'—' if ratio is None else f'{ratio:.2f}'} | {row.note.replace('|', '/')} |")
    return lines


def markdown(results, header):
    m = header["machine"]
    lines = [
        "# runsc-py benchmark", "",
        f"- date: {header['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}, "
        f"Python {m['python']}, load average {' '.join(f'{x:.1f}' for x in m['load_average'])}",
        "- runtimes: " + "; ".join(f"{k}: {v}" for k, v in header["versions"].items()),
        f"- options: {header['options']}",
    ] + [f"- note: {n}" for n in header["notes"]] + [
        "", f"Wall-clock times per command (containers/s: higher is better); (×r) is the median over "
        f"{RATIO_BASE}'s.", "", "## Medians", "",
    ] + _summary(results) + ["", "## Details", ""] + _details(results) + [
        "", "Leak check: " + ("clean" if not header["leaks"] else
                              f"{len(header['leaks'])} left behind (listed in bench.json)")]
    return "\n".join(lines) + "\n"


def as_json(results, header):
    rows = []
    for metric, runtime, row in results.grouped():
        rows.append({"metric": metric, "runtime": runtime, "unit": row.unit, "status": row.status,
                     "note": row.note, **row.stats(),
                     f"median_over_{RATIO_BASE}": results.ratio(metric, runtime), "samples": row.samples})
    return json.dumps({**header, "results": rows}, indent=2) + "\n"


def write(out_dir, results, header):
    os.makedirs(out_dir, exist_ok=True)
    text = markdown(results, header)
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        f.write(as_json(results, header))
    return text

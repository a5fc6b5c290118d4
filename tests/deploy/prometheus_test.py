#!/usr/bin/env python3
"""Debian's Prometheus server scrapes every service of a running `anisoflow demo`
(docs/monitoring.md; issue 5, "The Prometheus test passes in CI").

The demo starts ingest, two reduce workers, analyze, archive and the gateway on free ports and
writes OUT_DIR/prometheus/targets.json (Prometheus file_sd: one entry per service, labels
service and instance); `--linger-s` keeps the chain up after the final result. This test

1. runs `anisoflow demo --out-dir TMP/demo --frames 4 --fps 4 --rows 512 --cols 512 --linger-s 60`,
2. waits for targets.json to list the six services,
3. starts `prometheus` with a 1 s scrape interval, file_sd_configs on that file and the alert rules
   of deploy/prometheus/alerts.yml,
4. polls /api/v1/targets until every target is "up" (fails after 60 s naming those that are not),
   checks through /api/v1/query that each service's own metrics were stored, and through
   /api/v1/rules that every alert rule evaluates without error,
5. prints the figures, sends SIGTERM to the demo and to Prometheus, and checks that both exit and
   that none of the demo's services outlives it.

Exit 77 (CTest SKIP_RETURN_CODE) when `anisoflow demo --help` has no --linger-s.

Usage: prometheus_test.py ANISOFLOW PROMETHEUS REPO_ROOT
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

SKIP = 77
EXPECTED = {"ingest": 1, "reduce": 2, "analyze": 1, "archive": 1, "gateway": 1}
OWN_METRIC = {  # one metric each service registers (services/<service>/<service>_service.cpp)
    "ingest": "anisoflow_ingest_frames_received_total",
    "reduce": "anisoflow_reduce_frames_reduced_total",
    "analyze": "anisoflow_analyze_frames_merged_total",
    "archive": "anisoflow_archive_bytes_written_total",
    "gateway": "anisoflow_gateway_messages_received_total",
}
TARGETS_TIMEOUT_S = 60
UP_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 30
RUN_TIMEOUT_S = 120


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def api(port, path, **params):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise Failure(f"{path}: {body}")
    return body["data"]


def read_targets(path):
    """The services listed in the demo's file_sd file, or None while it is absent or partial."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    counts = {}
    for entry in entries:
        service = entry.get("labels", {}).get("service")
        counts[service] = counts.get(service, 0) + len(entry.get("targets", []))
    return entries, counts


def stop(process, name, timeout_s=EXIT_TIMEOUT_S):
    """SIGTERM, then wait; returns (exit code, seconds) or raises if it does not exit."""
    if process.poll() is not None:
        return process.returncode, 0.0
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Failure(f"{name} (pid {process.pid}) did not exit {timeout_s} s after SIGTERM")
    return code, time.monotonic() - started


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running: its parent has exited and init reaps it soon
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def run(anisoflow, prometheus, root, work):
    demo_dir = work / "demo"
    targets_file = demo_dir / "prometheus" / "targets.json"
    demo_log = work / "demo.log"
    prometheus_log = work / "prometheus.log"
    processes = []
    try:
        t0 = time.monotonic()
        with open(demo_log, "wb") as log:
            demo = subprocess.Popen(
                [anisoflow, "demo", "--out-dir", str(demo_dir), "--frames", "4", "--fps", "4",
                 "--rows", "512", "--cols", "512", "--linger-s", "60"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(demo)

        # 2. the six services in targets.json
        deadline = t0 + TARGETS_TIMEOUT_S
        while True:
            found = read_targets(targets_file)
            if found is not None and all(found[1].get(s, 0) >= n for s, n in EXPECTED.items()):
                entries, counts = found
                break
            if demo.poll() is not None:
                raise Failure(f"anisoflow demo exited {demo.returncode} before {targets_file} "
                              f"listed every service ({found and found[1]}):\n{tail(demo_log)}")
            if time.monotonic() > deadline:
                raise Failure(f"{targets_file} does not list {EXPECTED} after "
                              f"{TARGETS_TIMEOUT_S} s (has {found and found[1]}):\n{tail(demo_log)}")
            time.sleep(0.2)
        t_targets = time.monotonic() - t0
        n_targets = sum(len(e["targets"]) for e in entries)

        # 3. Prometheus on the demo's targets, with the deployment's alert rules
        port = free_port()
        config = work / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(root / "deploy/prometheus/alerts.yml")],
            "scrape_configs": [{"job_name": "anisoflow-demo",
                                "file_sd_configs": [{"files": [str(targets_file)],
                                                     "refresh_interval": "1s"}]}],
        }, indent=2))
        with open(prometheus_log, "wb") as log:
            server = subprocess.Popen(
                [prometheus, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(server)
        t_prometheus = time.monotonic()

        # 4. every target up
        deadline = t_prometheus + UP_TIMEOUT_S
        targets = []
        while True:
            if server.poll() is not None:
                raise Failure(f"prometheus exited {server.returncode}:\n{tail(prometheus_log)}")
            if demo.poll() is not None:
                raise Failure(f"anisoflow demo exited {demo.returncode} while Prometheus had "
                              f"{[(t['labels'].get('instance'), t['health']) for t in targets]}"
                              f":\n{tail(demo_log)}")
            try:
                targets = api(port, "/api/v1/targets", state="active")["activeTargets"]
            except (OSError, Failure):
                targets = []
            if len(targets) == n_targets and all(t["health"] == "up" for t in targets):
                break
            if time.monotonic() > deadline:
                not_up = [f"{t['labels'].get('instance')} ({t['scrapeUrl']}): {t['health']} "
                          f"{t.get('lastError', '')}".strip()
                          for t in targets if t["health"] != "up"]
                missing = n_targets - len(targets)
                raise Failure(f"after {UP_TIMEOUT_S} s not up: {not_up or 'none'}"
                              f"{f'; {missing} targets of targets.json not discovered' if missing else ''}"
                              f"\n{tail(prometheus_log)}")
            time.sleep(0.5)
        t_up = time.monotonic() - t_prometheus

        by_service = {}
        for target in targets:
            service = target["labels"].get("service")
            by_service[service] = by_service.get(service, 0) + 1
        if by_service != EXPECTED:
            raise Failure(f"targets up by service {by_service}, expected {EXPECTED}")

        # each service's own metrics are stored, under its service label
        stored = {}
        for service, metric in OWN_METRIC.items():
            result = api(port, "/api/v1/query",
                         query=f'count by (instance) ({metric}{{service="{service}"}})')["result"]
            stored[service] = sorted(r["metric"].get("instance", "") for r in result)
            if len(stored[service]) != EXPECTED[service]:
                raise Failure(f"{metric}: stored for {stored[service]}, expected "
                              f"{EXPECTED[service]} instance(s) of {service}")
        series = {r["metric"]["instance"]: int(r["value"][1]) for r in api(
            port, "/api/v1/query", query='count by (instance) ({__name__=~"anisoflow_.+"})')
            ["result"]}
        received = api(port, "/api/v1/query",
                       query="sum(anisoflow_ingest_frames_received_total)")["result"]

        # the deployment's alert rules load and evaluate against real series
        deadline = time.monotonic() + 15
        while True:
            rules = [rule for group in api(port, "/api/v1/rules")["groups"]
                     for rule in group["rules"]]
            if rules and all(rule.get("health") == "ok" for rule in rules):
                break
            if time.monotonic() > deadline:
                raise Failure("alert rules not healthy: " + ", ".join(
                    f"{r.get('name')}: {r.get('health')} {r.get('lastError', '')}"
                    for r in rules if r.get("health") != "ok"))
            time.sleep(0.5)
        firing = [rule["name"] for rule in rules if rule.get("state") == "firing"]

        print(f"targets.json listed {n_targets} targets after {t_targets:.1f} s; "
              f"all up {t_up:.1f} s after Prometheus started (scrape interval 1 s)")
        for target in sorted(targets, key=lambda t: t["labels"].get("instance", "")):
            instance = target["labels"].get("instance", "")
            print(f"  {instance:10s} {target['scrapeUrl']:34s} {target['health']}  "
                  f"last scrape {1000 * target['lastScrapeDuration']:.1f} ms  "
                  f"{series.get(instance, 0)} anisoflow_ series")
        if received:
            print(f"frames received at ingest, as scraped: {float(received[0]['value'][1]):.0f}")
        print(f"{len(rules)} alert rules evaluated, health ok; firing: {firing or 'none'}")
        if "AnisoflowFramesLost" in firing or "AnisoflowTargetDown" in firing:
            raise Failure(f"alerts firing on a healthy demo: {firing}")

        # The demo stops on a signal with 0 once it lingers after its run (a signal during the
        # stream ends it with 1). The 8-frame run is over long before this point in the dev
        # build, not always in a sanitizer build on a busy machine: wait for it.
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while b"services stay up for" not in demo_log.read_bytes():
            if demo.poll() is not None:
                raise Failure(f"anisoflow demo exited {demo.returncode} before its final result:"
                              f"\n{tail(demo_log)}")
            if time.monotonic() > deadline:
                raise Failure(f"anisoflow demo has no final result after {RUN_TIMEOUT_S} s:"
                              f"\n{tail(demo_log)}")
            time.sleep(0.2)

        # 5. both stop on SIGTERM, and the demo's services with it
        service_pids = [int(p) for p in re.findall(r"started \S+ pid (\d+)",
                                                   demo_log.read_text(errors="replace"))]
        demo_code, demo_s = stop(demo, "anisoflow demo")
        prometheus_code, prometheus_s = stop(server, "prometheus")
        print(f"SIGTERM: anisoflow demo exited {demo_code} after {demo_s:.1f} s, "
              f"prometheus exited {prometheus_code} after {prometheus_s:.1f} s")
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in service_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in service_pids if alive(pid)]
        if left:
            raise Failure(f"services still running after the demo exited: pids {left}")
        if prometheus_code != 0:
            raise Failure(f"prometheus exited {prometheus_code}:\n{tail(prometheus_log)}")
        if demo_code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            raise Failure(f"anisoflow demo exited {demo_code}:\n{tail(demo_log)}")
        return 0
    finally:
        for process in processes:  # only what this test started, by its own process group
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()


def main():
    anisoflow, prometheus, root = sys.argv[1], sys.argv[2], Path(sys.argv[3]).resolve()
    help_text = subprocess.run([anisoflow, "demo", "--help"], capture_output=True, text=True,
                               check=False).stdout
    if "--linger-s" not in help_text:
        print("SKIP: `anisoflow demo --help` has no --linger-s yet: the demo cannot keep the "
              "services up for Prometheus (issue 5)")
        return SKIP
    work = Path(tempfile.mkdtemp(prefix="anisoflow-prometheus-"))
    try:
        code = run(anisoflow, prometheus, root, work)
    except Failure as failure:
        print(f"FAIL: {failure}\n(demo output, Prometheus log and data kept in {work})",
              file=sys.stderr)
        return 1
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return code


if __name__ == "__main__":
    sys.exit(main())

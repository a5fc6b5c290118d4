#!/usr/bin/env python3
"""The monitoring files name only metrics the services really export (no Prometheus needed):

- deploy/grafana/dashboards/*.json parse, every panel has a PromQL expression, every panel's
  data source is the one deploy/grafana/provisioning provides (by uid), and with PROMTOOL every
  panel query is valid PromQL (`promtool check rules` on them as recording rules, Grafana's
  $__rate_interval read as 1m);
- every metric name in the dashboard's and in deploy/prometheus/alerts.yml's expressions is
  registered by a service (registry.counter/gauge/histogram/counter_family("anisoflow_...") in
  services/*/*.cpp; _bucket/_sum/_count only of a histogram), or is Prometheus' own `up` or
  `ALERTS`;
- the rules Kubernetes' Prometheus loads (deploy/k8s/prometheus.yaml) equal alerts.yml.

Usage: check_monitoring.py REPO_ROOT [PROMTOOL]
"""
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REGISTERED = re.compile(
    r"registry\.(counter_family|counter|gauge|histogram)\(\s*\"(anisoflow_[a-z0-9_]+)\"", re.S)
NAME = re.compile(r"(?<![A-Za-z0-9_:])(anisoflow_[a-z0-9_]+|up|ALERTS)(?![A-Za-z0-9_(])")
PROMETHEUS_OWN = {"up", "ALERTS"}


def exported(root):
    """{metric name as scraped: kind} from the services' registrations."""
    names = {}
    for source in sorted(root.glob("services/*/*.cpp")):
        for kind, name in REGISTERED.findall(source.read_text()):
            names[name] = kind
    scraped = {}
    for name, kind in names.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                scraped[name + suffix] = kind
        else:
            scraped[name] = kind
    return scraped


def strip_strings(expr):
    """PromQL without its string literals (label values, legend templates)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def check_expr(where, expr, scraped, problems, used):
    names = NAME.findall(strip_strings(expr))
    if not names:
        problems.append(f"{where}: no metric in {expr!r}")
    for name in names:
        used.add(name)
        if name not in scraped and name not in PROMETHEUS_OWN:
            problems.append(f"{where}: {name} is not exported by any service ({expr!r})")


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def main():
    root = Path(sys.argv[1])
    scraped = exported(root)
    problems, used = [], set()
    if len(scraped) < 40:
        problems.append(f"only {len(scraped)} metric names found in services/*/*.cpp: the "
                        "registration pattern changed, fix REGISTERED")

    uids = set()
    for source in (root / "deploy/grafana/provisioning/datasources").glob("*.yml"):
        for datasource in yaml.safe_load(source.read_text()).get("datasources", []):
            uids.add(datasource["uid"])
    dashboards = sorted((root / "deploy/grafana/dashboards").glob("*.json"))
    if not dashboards:
        problems.append("no dashboard in deploy/grafana/dashboards")
    expressions = 0
    queries = []
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        for key in ("uid", "title", "panels"):
            if key not in dashboard:
                problems.append(f"{path.name}: no {key}")
        ids = [panel["id"] for panel in panels_of(dashboard)]
        if len(ids) != len(set(ids)):
            problems.append(f"{path.name}: panel ids repeat")
        for panel in panels_of(dashboard):
            if panel.get("type") == "row":
                continue
            where = f"{path.name} panel {panel.get('title')!r}"
            if panel.get("datasource", {}).get("uid") not in uids:
                problems.append(f"{where}: data source {panel.get('datasource')} is not "
                                f"provisioned ({sorted(uids)})")
            targets = panel.get("targets", [])
            if not targets:
                problems.append(f"{where}: no query")
            for target in targets:
                expressions += 1
                check_expr(where, target.get("expr", ""), scraped, problems, used)
                queries.append(target.get("expr", "").replace("$__rate_interval", "1m"))

    if len(sys.argv) > 2 and queries:  # PromQL syntax of every panel query
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as rules_file:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
                {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]}]},
                rules_file)
            rules_file.flush()
            check = subprocess.run([sys.argv[2], "check", "rules", rules_file.name],
                                   capture_output=True, text=True, check=False)
            if check.returncode != 0:
                problems.append(f"dashboard queries are not valid PromQL: {check.stdout.strip()} "
                                f"{check.stderr.strip()}")

    rules = yaml.safe_load((root / "deploy/prometheus/alerts.yml").read_text())
    alerts = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            alerts += 1
            check_expr(f"alerts.yml {rule.get('alert', rule.get('record'))}", rule["expr"],
                       scraped, problems, used)

    k8s = root / "deploy/k8s/prometheus.yaml"
    if k8s.exists():
        found = False
        for document in yaml.safe_load_all(k8s.read_text()):
            if document and document.get("kind") == "ConfigMap" and \
                    "alerts.yml" in document.get("data", {}):
                found = True
                if yaml.safe_load(document["data"]["alerts.yml"]) != rules:
                    problems.append("deploy/k8s/prometheus.yaml: its alerts.yml differs from "
                                    "deploy/prometheus/alerts.yml (copy it over)")
        if not found:
            problems.append("deploy/k8s/prometheus.yaml: no ConfigMap with alerts.yml")

    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(dashboards)} dashboards, {expressions} panel queries, {alerts} alert rules, "
          f"{len(used)} metric names used of {len(scraped)} exported: "
          f"{'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

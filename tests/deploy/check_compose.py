#!/usr/bin/env python3
"""docker-compose.yml and deploy/prometheus/prometheus.yml agree with the services' real
configuration (no Docker needed, which CI lacks):

- every anisoflow service's command, run with --check-config by the built binary, is a valid
  configuration (exit 0), and its printed effective TOML is what the checks below read;
- every address a service connects to (">tcp://HOST:PORT") names a compose service that binds
  that port ("@tcp://*:PORT"), on every interface, and so does the simulator's --stream address;
- every published container port is one the service binds (ZeroMQ, metrics or the gateway's
  HTTP), on every interface (a loopback bind inside a container cannot be reached from outside);
- the widening is explicit: the built-in defaults bind loopback (docs/security.md), so every
  bind on all interfaces must be a `--set KEY=...` of the service's command, and every bind the
  command does not name must be loopback;
- every Prometheus target (static or by DNS) is a service's metrics port, every rule file of
  prometheus.yml is mounted into the Prometheus container, and so is every Grafana
  provisioning folder the compose file names;
- the image ships every binary the compose commands run, and the dashboard where the gateway's
  http.static_dir expects it.

Usage: check_compose.py REPO_ROOT NAME=BINARY...  (NAME: anisoflow-ingest, ..., anisoflow)
"""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ADDRESS = re.compile(r"^([@>])tcp://([^:]+):(\d+)$")
WIDE = ("0.0.0.0", "*", "", "[::]", "::")  # every interface
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def fail(problems, text):
    problems.append(text)


def addresses(node, path=""):
    """Every (key path, address) of a configuration, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from addresses(value, f"{path}.{key}" if path else key)
    elif isinstance(node, str) and ADDRESS.match(node):
        yield path, node


def main():
    root = Path(sys.argv[1])
    binaries = dict(arg.split("=", 1) for arg in sys.argv[2:])
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    prometheus = yaml.safe_load((root / "deploy/prometheus/prometheus.yml").read_text())
    dockerfile = (root / "deploy/docker/Dockerfile").read_text()
    services = compose["services"]
    problems = []

    effective = {}  # compose service -> its configuration as the binary prints it
    for name, service in services.items():
        command = service.get("command") or []
        program = command[0] if command else ""
        if program.startswith("anisoflow"):
            if f"/{program}" not in dockerfile and f"/{program} " not in dockerfile:
                fail(problems, f"{name}: the image does not ship {program} (deploy/docker/Dockerfile)")
        if not program.startswith("anisoflow-"):
            continue
        run = subprocess.run([binaries[program], *command[1:], "--check-config"],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            fail(problems, f"{name}: {' '.join(command)} --check-config exited {run.returncode}: "
                 f"{run.stderr.strip()}")
            continue
        effective[name] = tomllib.loads(run.stdout)
        static_dir = effective[name].get("http", {}).get("static_dir", "")
        if static_dir and f" {static_dir.rstrip('/')}/" not in dockerfile:
            fail(problems, f"{name}: the image has nothing at http.static_dir {static_dir} "
                 "(deploy/docker/Dockerfile copies no dashboard there)")

    binds = {}  # compose service -> {port: the configuration key that binds it}
    bind_hosts = {}  # compose service -> {port: the host part of that bind}
    for name, config in effective.items():
        ports, hosts = {}, {}
        for path, address in addresses(config):
            mode, host, port = ADDRESS.match(address).groups()
            if mode == "@":
                ports[int(port)] = path
                hosts[int(port)] = host
        metrics = config.get("metrics", {})
        if metrics.get("enabled"):
            host, port = metrics["bind_address"].rsplit(":", 1)
            ports[int(port)] = "metrics.bind_address"
            hosts[int(port)] = host
        http = config.get("http", {})  # the gateway
        if http.get("bind_address"):
            host, port = http["bind_address"].rsplit(":", 1)
            ports[int(port)] = "http.bind_address"
            hosts[int(port)] = host
        binds[name] = ports
        bind_hosts[name] = hosts

    # Loopback by default, widened explicitly: a bind on every interface is named by a --set of
    # the command; one the command leaves to the defaults is loopback.
    for name, config in effective.items():
        command = [str(arg) for arg in services[name].get("command") or []]
        overridden = {command[i + 1].split("=", 1)[0] for i, arg in enumerate(command[:-1])
                      if arg == "--set"}
        for port, key in binds[name].items():
            host = bind_hosts[name][port]
            if host in WIDE and key not in overridden:
                fail(problems, f"{name}: {key} binds every interface ({host or '*'}:{port}) "
                     "without a --set in its command: the defaults must be loopback")
            elif key not in overridden and host not in LOOPBACK:
                fail(problems, f"{name}: {key} binds {host}:{port} by default, not loopback")

    def peer_key(path):
        """The key that must bind what `path` connects to: endpoints.X_in -> endpoints.X_out
        (the schema's naming rule), --stream -> source.stream_address."""
        if path == "--stream":
            return "source.stream_address"
        if path.startswith("endpoints.") and path.endswith("_in.address"):
            return path[: -len("_in.address")] + "_out.address"
        return None  # e.g. a DECTRIS detector: not a compose service's socket

    def check_connect(owner, path, address):
        mode, host, port = ADDRESS.match(address).groups()
        if mode != ">":
            return
        if host not in services:
            fail(problems, f"{owner}: {path} = {address}: no compose service {host}")
            return
        bound_by = binds.get(host, {}).get(int(port))
        if bound_by is None:
            fail(problems, f"{owner}: {path} = {address}: {host} does not bind port {port}")
        elif host != owner and bind_hosts[host][int(port)] not in WIDE:
            fail(problems, f"{owner}: {path} = {address}: {host}'s {bound_by} binds "
                 f"{bind_hosts[host][int(port)]} only, which another container cannot reach")
        elif peer_key(path) is not None and bound_by != peer_key(path):
            fail(problems, f"{owner}: {path} = {address}: port {port} of {host} is its "
                 f"{bound_by}, not its {peer_key(path)}")

    for name, config in effective.items():
        source_kind = config.get("source", {}).get("kind", "")
        for path, address in addresses(config):
            if path == "source.dectris_address" and source_kind != "dectris_stream":
                continue  # not read unless the source is a DECTRIS detector
            check_connect(name, path, address)

    for name, service in services.items():
        command = service.get("command") or []
        if "--stream" in command:
            check_connect(name, "--stream", command[command.index("--stream") + 1])
        if name not in effective:
            continue
        for mapping in service.get("ports", []):
            container = int(str(mapping).split(":")[-1].split("/")[0])
            if container not in binds[name]:
                fail(problems, f"{name}: publishes port {container}, which it does not bind")
                continue
            key = binds[name][container]
            host = bind_hosts[name][container]
            if host not in WIDE:
                fail(problems, f"{name}: publishes port {container}, but {key} binds {host} "
                     "only: unreachable from outside the container")

    def metrics_port(host):
        config = effective.get(host)
        if config is None:
            return None
        return int(config["metrics"]["bind_address"].rsplit(":", 1)[1])

    scraped = set()
    for job in prometheus["scrape_configs"]:
        targets = []
        for static in job.get("static_configs", []):
            targets += [tuple(t.rsplit(":", 1)) for t in static["targets"]]
        for dns in job.get("dns_sd_configs", []):
            targets += [(n, str(dns["port"])) for n in dns["names"]]
        for host, port in targets:
            scraped.add(host)
            if metrics_port(host) != int(port):
                fail(problems, f"prometheus job {job['job_name']}: {host}:{port} is not "
                     f"{host}'s metrics port ({metrics_port(host)})")
            elif bind_hosts[host][int(port)] not in WIDE:
                fail(problems, f"prometheus job {job['job_name']}: {host}:{port}: "
                     f"metrics.bind_address binds {bind_hosts[host][int(port)]} only, which "
                     "Prometheus' container cannot reach")
    for name in effective:
        if name not in scraped:
            fail(problems, f"prometheus scrapes no {name}")

    def mounts(service):
        """{container path: host path} of a service's bind mounts."""
        out = {}
        for volume in service.get("volumes", []):
            parts = str(volume).split(":")
            if len(parts) >= 2 and parts[0].startswith("."):
                out[parts[1]] = parts[0]
        return out

    prometheus_service = services.get("prometheus", {})
    mounted = mounts(prometheus_service)
    config_in_container = next((arg.split("=", 1)[1] for arg in prometheus_service.get("command", [])
                                if str(arg).startswith("--config.file=")), None)
    if config_in_container is None or mounted.get(config_in_container) != \
            "./deploy/prometheus/prometheus.yml":
        fail(problems, "prometheus: --config.file is not deploy/prometheus/prometheus.yml")
    for rule_file in prometheus.get("rule_files", []):
        in_container = str(Path(config_in_container or "/").parent / rule_file)
        host = mounted.get(in_container)
        if host is None:
            fail(problems, f"prometheus: rule file {rule_file} ({in_container}) is not mounted")
        elif not (root / host).is_file():
            fail(problems, f"prometheus: rule file {host} does not exist")
    for name, service in services.items():
        for container, host in mounts(service).items():
            if "deploy/" in host and not (root / host).exists():
                fail(problems, f"{name}: mounts {host}, which does not exist")

    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"checked {len(effective)} services, {len(scraped)} scrape targets: "
          f"{'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""deploy/k8s agrees with itself and with the built services (no cluster needed, which CI lacks):

- every manifest parses, has apiVersion, kind and metadata.name of a known kind, lives in the
  namespace the Namespace declares, and is listed in kustomization.yaml (and nothing else is);
- every anisoflow container command, run by the built binary with --check-config and the files
  of the ConfigMap it mounts (written to a temporary folder in place of the mount path), is a
  valid configuration; its printed effective TOML is what the checks below read;
- the reduce Deployment has at least 2 replicas; every Deployment's selector matches its pods;
- every container port is one the service binds (ZeroMQ, metrics, the gateway's HTTP), on
  every interface; the probes GET /api/health (gateway) or /metrics (the others) on a
  port the container declares, the one that serves that path; the prometheus.io/port annotation
  is the metrics port;
- every address a service connects to names a Service of the namespace, on one of its ports,
  whose pods bind it (endpoints.X_in to the peer's endpoints.X_out) on every interface;
- the widening is explicit: the built-in defaults bind loopback (docs/security.md), so every
  bind on all interfaces must be written in the site file the container reads (--config) or a
  --set of its command, and every bind they do not name must be loopback;
- archive's archive_dir is a mounted PersistentVolumeClaim that the manifests declare;
- the run configuration (ingest's source.dectris_run_file) is in the ConfigMap, and its keys and
  enum values are fields of DectrisRun / ExperimentConfig (proto/);
- the Prometheus ConfigMap passes `promtool check config` and scrapes every service's metrics
  port through its Service.

Usage: check_k8s.py REPO_ROOT PROMTOOL NAME=BINARY...
"""
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ADDRESS = re.compile(r"^([@>])tcp://([^:]+):(\d+)$")
WIDE = ("0.0.0.0", "*", "", "::", "[::]")  # every interface
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
KINDS = {"Namespace": "v1", "ConfigMap": "v1", "Service": "v1", "PersistentVolumeClaim": "v1",
         "Deployment": "apps/v1"}
PROBE_PATH = {"anisoflow-gateway": "/api/health"}  # the others: /metrics


def addresses(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from addresses(value, f"{path}.{key}" if path else key)
    elif isinstance(node, str) and ADDRESS.match(node):
        yield path, node


def proto_messages(root):
    """{message name: {field: type}} and {enum name: [short value names]} of proto/."""
    messages, enums = {}, {}
    for source in root.glob("proto/**/*.proto"):
        text = re.sub(r"//[^\n]*", "", source.read_text())
        for name, body in re.findall(r"\bmessage\s+(\w+)\s*\{([^{}]*)\}", text):
            fields = {}
            for ftype, fname in re.findall(
                    r"(?:optional\s+|repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*\d+\s*;", body):
                fields[fname] = ftype.rsplit(".", 1)[-1]
            messages[name] = fields
        for name, body in re.findall(r"\benum\s+(\w+)\s*\{([^{}]*)\}", text):
            prefix = re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper() + "_"
            enums[name] = [v[len(prefix):].lower() if v.startswith(prefix) else v.lower()
                           for v in re.findall(r"(\w+)\s*=\s*\d+", body)]
    return messages, enums


def check_message(where, table, message, messages, enums, problems):
    fields = messages.get(message)
    if fields is None:
        problems.append(f"{where}: no message {message} in proto/")
        return
    for key, value in table.items():
        if key not in fields:
            problems.append(f"{where}: {key} is not a field of {message}")
        elif isinstance(value, dict):
            check_message(f"{where}.{key}", value, fields[key], messages, enums, problems)
        elif fields[key] in enums and str(value).lower() not in enums[fields[key]]:
            problems.append(f"{where}.{key} = {value!r}: not a value of {fields[key]} "
                            f"({enums[fields[key]]})")


def keys_of(table, path=""):
    """Every key path of a TOML table ("metrics.bind_address")."""
    for key, value in table.items():
        full = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            yield from keys_of(value, full)
        else:
            yield full


def explicit_keys(args):
    """The keys a command sets itself: those of its --config files and its --set overrides."""
    keys = set()
    for i, arg in enumerate(args[:-1]):
        if arg == "--config" and Path(args[i + 1]).is_file():
            keys |= set(keys_of(tomllib.loads(Path(args[i + 1]).read_text())))
        elif arg == "--set":
            keys.add(args[i + 1].split("=", 1)[0])
    return keys


def port_of(container, port):
    """A probe's or a Service's port (number or name) as the container's port number."""
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            return declared["containerPort"]
    return None


def main():
    root = Path(sys.argv[1])
    promtool = sys.argv[2]
    binaries = dict(arg.split("=", 1) for arg in sys.argv[3:])
    k8s = root / "deploy/k8s"
    problems = []
    fail = problems.append

    documents = []
    for path in sorted(k8s.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    files = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
    for name in sorted(files - listed):
        fail(f"kustomization.yaml does not list {name}")
    for name in sorted(listed - files):
        fail(f"kustomization.yaml lists {name}, which does not exist")

    namespaces = [d["metadata"]["name"] for _, d in documents if d.get("kind") == "Namespace"]
    if len(namespaces) != 1:
        fail(f"expected one Namespace, found {namespaces}")
    namespace = namespaces[0] if namespaces else None
    by_kind = {}
    for file, document in documents:
        kind = document.get("kind")
        name = document.get("metadata", {}).get("name")
        where = f"{file}: {kind} {name}"
        if kind not in KINDS:
            fail(f"{where}: unexpected kind")
            continue
        if document.get("apiVersion") != KINDS[kind]:
            fail(f"{where}: apiVersion {document.get('apiVersion')}, expected {KINDS[kind]}")
        if not name:
            fail(f"{where}: no metadata.name")
        if kind != "Namespace" and document["metadata"].get("namespace") != namespace:
            fail(f"{where}: namespace {document['metadata'].get('namespace')}, not {namespace}")
        if (kind, name) in {(k, n) for k, items in by_kind.items() for n in items}:
            fail(f"{where}: declared twice")
        by_kind.setdefault(kind, {})[name] = document
    configmaps = by_kind.get("ConfigMap", {})
    services = by_kind.get("Service", {})
    deployments = by_kind.get("Deployment", {})
    claims = by_kind.get("PersistentVolumeClaim", {})

    work = Path(tempfile.mkdtemp(prefix="anisoflow-k8s-"))
    for name, configmap in configmaps.items():
        folder = work / name
        folder.mkdir()
        for key, text in configmap.get("data", {}).items():
            (folder / key).write_text(text)

    effective = {}  # deployment -> (container, its effective configuration, {mount: folder})
    explicit = {}  # deployment -> the keys its site file and --set name
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]
        where = f"Deployment {name}"
        selector = spec.get("selector", {}).get("matchLabels", {})
        labels = pod.get("metadata", {}).get("labels", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            fail(f"{where}: selector {selector} does not match its pods' labels {labels}")
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for container in pod["spec"]["containers"]:
            mounts = {}
            for mount in container.get("volumeMounts", []):
                volume = volumes.get(mount["name"])
                if volume is None:
                    fail(f"{where}: mounts volume {mount['name']}, which it does not declare")
                elif "configMap" in volume:
                    if volume["configMap"]["name"] not in configmaps:
                        fail(f"{where}: ConfigMap {volume['configMap']['name']} not declared")
                    mounts[mount["mountPath"]] = work / volume["configMap"]["name"]
                elif "persistentVolumeClaim" in volume:
                    claim = volume["persistentVolumeClaim"]["claimName"]
                    if claim not in claims:
                        fail(f"{where}: PersistentVolumeClaim {claim} not declared")
                    mounts[mount["mountPath"]] = f"pvc:{claim}"
            for probe_kind in ("readinessProbe", "livenessProbe"):
                if probe_kind not in container:
                    fail(f"{where}: container {container['name']} has no {probe_kind}")
            command = container.get("command") or []
            program = command[0] if command else ""
            if not program.startswith("anisoflow-"):
                continue
            if program not in binaries:
                fail(f"{where}: no such service binary {program}")
                continue

            def local(arg):
                for mount_path, folder in mounts.items():
                    if isinstance(folder, Path) and str(arg).startswith(mount_path + "/"):
                        return str(folder) + str(arg)[len(mount_path):]
                return str(arg)

            args = [local(arg) for arg in command[1:]]
            for arg in args:
                if arg.startswith("/etc/") or arg.startswith("/var/"):
                    fail(f"{where}: {program} reads {arg}, which no volume of the pod provides")
            run = subprocess.run([binaries[program], *args, "--check-config"],
                                 capture_output=True, text=True, check=False)
            if run.returncode != 0:
                fail(f"{where}: {' '.join(command)} --check-config exited {run.returncode}: "
                     f"{run.stderr.strip()}")
                continue
            effective[name] = (container, tomllib.loads(run.stdout), mounts, program)
            explicit[name] = explicit_keys(args)

    if deployments.get("reduce", {}).get("spec", {}).get("replicas", 0) < 2:
        fail("Deployment reduce: replicas below 2")
    for expected in ("ingest", "reduce", "analyze", "archive", "gateway"):
        if expected not in effective:
            fail(f"no anisoflow Deployment {expected} with a valid configuration")

    binds = {}  # deployment -> {port: key}
    bind_hosts = {}  # deployment -> {port: the host part of that bind}
    for name, (container, config, mounts, program) in effective.items():
        where = f"Deployment {name}"
        ports, hosts = {}, {}
        for path, address in addresses(config):
            mode, host, port = ADDRESS.match(address).groups()
            if mode == "@":
                ports[int(port)] = path
                hosts[int(port)] = host
        for key in ("metrics", "http"):
            section = config.get(key, {})
            if section.get("bind_address") and section.get("enabled", True):
                host, port = section["bind_address"].rsplit(":", 1)
                ports[int(port)] = f"{key}.bind_address"
                hosts[int(port)] = host
        binds[name] = ports
        bind_hosts[name] = hosts
        for port, key in ports.items():
            host = hosts[port]
            if host in WIDE and key not in explicit[name]:
                fail(f"{where}: {key} binds every interface ({host or '*'}:{port}) but neither "
                     "its site file nor a --set says so: the defaults must be loopback")
            elif key not in explicit[name] and host not in LOOPBACK:
                fail(f"{where}: {key} binds {host}:{port} by default, not loopback")
        for declared in container.get("ports", []):
            port = declared["containerPort"]
            if port not in ports:
                fail(f"{where}: declares port {port}, which {program} does not bind")
            elif hosts[port] not in WIDE:
                fail(f"{where}: declares port {port}, but {ports[port]} binds {hosts[port]} "
                     "only: not reachable from outside the pod")
        metrics_port = int(config["metrics"]["bind_address"].rsplit(":", 1)[1])
        path = PROBE_PATH.get(program, "/metrics")
        serving = ports.get(int(config["http"]["bind_address"].rsplit(":", 1)[1])) \
            if path == "/api/health" else None
        for probe_kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(probe_kind, {}).get("httpGet")
            if probe is None:
                fail(f"{where}: {probe_kind} is not an HTTP GET")
                continue
            if probe.get("path") != path:
                fail(f"{where}: {probe_kind} GETs {probe.get('path')}, expected {path}")
            port = port_of(container, probe.get("port"))
            if port is None:
                fail(f"{where}: {probe_kind} port {probe.get('port')} is not a container port")
            elif path == "/metrics" and port != metrics_port:
                fail(f"{where}: {probe_kind} GETs /metrics on {port}, metrics are on "
                     f"{metrics_port}")
            elif path == "/api/health" and (serving != "http.bind_address"):
                fail(f"{where}: {probe_kind} GETs /api/health on {port}, not http.bind_address")
            elif path == "/api/health" and port != int(
                    config["http"]["bind_address"].rsplit(":", 1)[1]):
                fail(f"{where}: {probe_kind} GETs /api/health on {port}, HTTP is on "
                     f"{config['http']['bind_address']}")
        annotations = deployments[name]["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true" and \
                int(annotations.get("prometheus.io/port", 0)) != metrics_port:
            fail(f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')} is not "
                 f"the metrics port {metrics_port}")
        if program == "anisoflow-archive":
            if not str(mounts.get(config["archive_dir"], "")).startswith("pvc:"):
                fail(f"{where}: archive_dir {config['archive_dir']} is not a mounted "
                     "PersistentVolumeClaim")
        if program == "anisoflow-ingest" and config["source"]["kind"] == "dectris_stream" and \
                not config.get("endpoints", {}).get("run_control", {}).get("address"):
            run_file = config["source"]["dectris_run_file"]
            local_file = None
            for mount_path, folder in mounts.items():
                if isinstance(folder, Path) and run_file.startswith(mount_path + "/"):
                    local_file = folder / run_file[len(mount_path) + 1:]
            if local_file is None or not local_file.is_file():
                fail(f"{where}: source.dectris_run_file {run_file} is not in a mounted ConfigMap")
            else:
                messages, enums = proto_messages(root)
                check_message(run_file, tomllib.loads(local_file.read_text()), "DectrisRun",
                              messages, enums, problems)

    def pods_of(service):
        selector = service["spec"].get("selector", {})
        return [name for name, d in deployments.items()
                if selector and all(d["spec"]["template"]["metadata"].get("labels", {}).get(k)
                                    == v for k, v in selector.items())]

    service_ports = {}  # service -> {port: container port}
    for name, service in services.items():
        pods = pods_of(service)
        if not pods:
            fail(f"Service {name}: selects no Deployment")
            continue
        mapping = {}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for pod in pods:
                container = deployments[pod]["spec"]["template"]["spec"]["containers"][0]
                resolved = port_of(container, target)
                if resolved is None:
                    fail(f"Service {name}: targetPort {target} is not a port of {pod}")
                mapping[port["port"]] = (pod, resolved)
        service_ports[name] = mapping

    def peer_key(path):
        if path.startswith("endpoints.") and path.endswith("_in.address"):
            return path[: -len("_in.address")] + "_out.address"
        return None

    for name, (_, config, _, _) in effective.items():
        kind = config.get("source", {}).get("kind", "")
        for path, address in addresses(config):
            mode, host, port = ADDRESS.match(address).groups()
            if mode != ">":
                continue
            if path == "source.dectris_address":
                if kind == "dectris_stream" and host.split(".")[0] in services:
                    fail(f"{name}: the detector {host} is named like a Service")
                continue  # outside the cluster
            service_name = host.split(".")[0]
            if service_name not in service_ports:
                fail(f"Deployment {name}: {path} = {address}: no Service {service_name}")
                continue
            target = service_ports[service_name].get(int(port))
            if target is None:
                fail(f"Deployment {name}: {path} = {address}: Service {service_name} has no "
                     f"port {port}")
                continue
            pod, container_port = target
            bound_by = binds.get(pod, {}).get(container_port)
            if bound_by is None:
                fail(f"Deployment {name}: {path} = {address}: {pod} does not bind {container_port}")
            elif bind_hosts[pod][container_port] not in WIDE:
                fail(f"Deployment {name}: {path} = {address}: {pod}'s {bound_by} binds "
                     f"{bind_hosts[pod][container_port]} only, which another pod cannot reach")
            elif peer_key(path) and bound_by != peer_key(path):
                fail(f"Deployment {name}: {path} = {address}: port {container_port} of {pod} is "
                     f"its {bound_by}, not its {peer_key(path)}")

    # Prometheus
    prometheus_config = configmaps.get("prometheus-config", {}).get("data", {})
    if "prometheus.yml" not in prometheus_config:
        fail("no ConfigMap prometheus-config with prometheus.yml")
    else:
        folder = work / "prometheus-config"
        check = subprocess.run([promtool, "check", "config", str(folder / "prometheus.yml")],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            fail(f"promtool check config (k8s): {check.stdout.strip()} {check.stderr.strip()}")
        scraped = set()
        config = yaml.safe_load(prometheus_config["prometheus.yml"])
        for job in config["scrape_configs"]:
            targets = [tuple(t.rsplit(":", 1)) for s in job.get("static_configs", [])
                       for t in s["targets"]]
            targets += [(n, str(d["port"])) for d in job.get("dns_sd_configs", [])
                        for n in d["names"]]
            for host, port in targets:
                service_name = host.split(".")[0]
                if host.count(".") >= 1 and host.split(".")[1] != namespace:
                    fail(f"prometheus job {job['job_name']}: {host} is not in {namespace}")
                target = service_ports.get(service_name, {}).get(int(port))
                if target is None:
                    fail(f"prometheus job {job['job_name']}: Service {service_name} has no "
                         f"port {port}")
                    continue
                pod, container_port = target
                if binds.get(pod, {}).get(container_port) != "metrics.bind_address":
                    fail(f"prometheus job {job['job_name']}: {host}:{port} is not {pod}'s "
                         "metrics port")
                if job.get("dns_sd_configs") and \
                        services[service_name]["spec"].get("clusterIP") != "None":
                    fail(f"prometheus job {job['job_name']}: DNS discovery of {service_name} "
                         "needs a headless Service (clusterIP: None) to see every replica")
                scraped.add(pod)
        for name in effective:
            if name not in scraped:
                fail(f"the Kubernetes Prometheus scrapes no {name}")

    subprocess.run(["rm", "-rf", str(work)], check=False)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"checked {len(documents)} manifests, {len(effective)} services' configurations, "
          f"{len(services)} Services: {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""EMULATED PODS: run the pods of a generated Indexed Job on this machine, in network namespaces.

There is no cluster here, so the tests take the exact ``Job`` and headless ``Service`` that the
builders make and do what the Job controller, the kubelet and cluster DNS would do:

- one pod per completion index, named ``<job>-<index>`` with the completion-index annotation;
- the container's environment resolved as the kubelet does: ``valueFrom.fieldRef`` of the
  pod's annotations, labels, name and namespace, ``$(VAR)`` references to earlier variables
  (``$$`` is a literal ``$``), then ``JOB_COMPLETION_INDEX`` and ``HOSTNAME``;
  ``$(VAR)`` expansion in ``command``;
- each pod in a network namespace of its own (``ip netns``) with an ``eth0`` on a private
  10.x bridge that lives in one more namespace (nothing is added to the host's network), a
  UTS namespace whose hostname is the pod's (``unshare --uts``), and an ``/etc/hosts`` that
  ``ip netns exec`` mounts from ``/etc/netns/<ns>/hosts``: the pod's own line as the kubelet
  writes it, plus every pod's headless-Service names as cluster DNS would answer them.

Not emulated: images (the container runs with this machine's files and ``PATH``; the image's
``python`` is this venv's, mapped in :data:`IMAGE_PYTHON` only), resources, volumes (paths must
exist here), probes, restarts, the service-account token, Service virtual IPs and real DNS.
Needs root, ``ip`` and ``unshare``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aicloud.backends.kubernetes.builders import COMPLETION_INDEX

# The one place where the image's interpreter becomes this machine's: pods run
# ``python -m torch.distributed.run ...``; here that is the test venv's python.
IMAGE_PYTHON = {"python": sys.executable, "python3": sys.executable}
CLUSTER_DOMAIN = "cluster.local"
_FIELD = re.compile(r"^metadata\.(annotations|labels)\['(?P<key>[^']+)'\]$")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` a literal ``$``."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and (end := value.find(")", i + 2)) != -1:
            name = value[i + 2 : end]
            out.append(env[name] if name in env else value[i : end + 1])
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def field_value(path: str, metadata: dict) -> str:
    """A downward-API ``fieldRef`` of the pod's metadata."""
    if path in ("metadata.name", "metadata.namespace"):
        return metadata[path.split(".")[1]]
    match = _FIELD.match(path)
    if not match:
        raise ValueError(f"fieldRef {path!r} is not emulated")
    return metadata.get(match[1], {}).get(match["key"], "")


@dataclass
class Pod:
    """One emulated pod: what the kubelet would run, and where."""

    name: str
    index: int
    namespace: str
    subdomain: str | None
    argv: list[str]
    env: dict[str, str]
    cwd: str
    netns: str = ""
    ip: str = ""

    @property
    def fqdn(self) -> str:
        """The pod's name under its headless Service, as cluster DNS answers it."""
        if not self.subdomain:
            return self.name
        return f"{self.name}.{self.subdomain}.{self.namespace}.svc.{CLUSTER_DOMAIN}"


def job_pods(job: dict) -> list[Pod]:
    """The pods the Job controller would create for an Indexed ``job``."""
    template = job["spec"]["template"]
    namespace = job["metadata"]["namespace"]
    (container,) = template["spec"]["containers"]
    pods = []
    for index in range(job["spec"]["completions"]):
        name = f"{job['metadata']['name']}-{index}"
        metadata = {
            "name": name,
            "namespace": namespace,
            "labels": {**template["metadata"].get("labels", {}), COMPLETION_INDEX: str(index)},
            "annotations": {
                **template["metadata"].get("annotations", {}),
                COMPLETION_INDEX: str(index),
            },
        }
        env: dict[str, str] = {}
        for entry in container.get("env", []):
            if "valueFrom" in entry:
                env[entry["name"]] = field_value(
                    entry["valueFrom"]["fieldRef"]["fieldPath"], metadata
                )
            else:
                env[entry["name"]] = expand(entry.get("value", ""), env)
        env["JOB_COMPLETION_INDEX"] = str(index)
        env["HOSTNAME"] = name
        argv = [expand(a, env) for a in container["command"] + container.get("args", [])]
        argv[0] = IMAGE_PYTHON.get(argv[0], argv[0])
        pods.append(
            Pod(
                name=name,
                index=index,
                namespace=namespace,
                subdomain=template["spec"].get("subdomain"),
                argv=argv,
                env=env,
                cwd=container["workingDir"],
            )
        )
    return pods


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class PodNetwork:
    """Network namespaces for ``pods`` on one bridge; removed again by :meth:`close`."""

    def __init__(self, pods: list[Pod]):
        self.pods = pods
        self.tag = "aick-" + secrets.token_hex(3)
        self.switch = f"{self.tag}-sw"
        self.subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        self.created: list[str] = []

    def open(self) -> PodNetwork:
        """Create the namespaces, the bridge and the hosts files."""
        _ip("netns", "add", self.switch)
        self.created.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for pod in self.pods:
            pod.netns = f"{self.tag}-{pod.index}"
            pod.ip = f"{self.subnet}.{pod.index + 2}"
            _ip("netns", "add", pod.netns)
            self.created.append(pod.netns)
            port = f"v{pod.index}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", pod.netns)  # fmt: skip
            _ip("-n", self.switch, "link", "set", port, "master", "br0")
            _ip("-n", self.switch, "link", "set", port, "up")
            _ip("-n", pod.netns, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
            _ip("-n", pod.netns, "link", "set", "eth0", "up")
            _ip("-n", pod.netns, "link", "set", "lo", "up")
        for pod in self.pods:
            self._write_etc(pod)
        return self

    def _write_etc(self, pod: Pod) -> None:
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        for other in self.pods:
            names = [other.fqdn]
            if other.subdomain:
                names += [f"{other.name}.{other.subdomain}.{other.namespace}",
                          f"{other.name}.{other.subdomain}"]  # fmt: skip
            if other is pod:
                names.append(pod.name)  # the kubelet's line: FQDN first, then the hostname
            lines.append(f"{other.ip} {' '.join(names)}")
        etc = Path("/etc/netns") / pod.netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        search = f"{pod.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
        # No DNS server in a pod namespace: refused at once instead of a timeout.
        (etc / "resolv.conf").write_text(f"search {search}\nnameserver 127.0.0.1\n")

    def close(self) -> None:
        """Remove every namespace and hosts file made here (also after a failure)."""
        for name in reversed(self.created):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", name)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        self.created.clear()

    def start(self, pod: Pod, log: Path) -> subprocess.Popen:
        """Run ``pod``'s container command in its namespaces, output to ``log``."""
        env = {**pod.env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        wrapper = 'hostname "$1" && shift && exec "$@"'
        argv = ["ip", "netns", "exec", pod.netns, "unshare", "--uts", "--", "sh", "-c", wrapper,
                "sh", pod.name, *pod.argv]  # fmt: skip
        with open(log, "wb") as out:
            return subprocess.Popen(
                argv, env=env, cwd=pod.cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip


def run_pods(pods: list[Pod], network: PodNetwork, logs: Path, timeout: float) -> list[int]:
    """Start every pod, wait for all of them; their exit codes (a hung pod is killed: -9)."""
    logs.mkdir(parents=True, exist_ok=True)
    processes = [network.start(pod, logs / f"{pod.name}.log") for pod in pods]
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for other in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(other.pid, 9)
            codes.append(process.wait())
    return codes

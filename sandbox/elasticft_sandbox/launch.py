"""How the sandbox kubelet turns a pod's first container into a host process (pure).

A container becomes `argv`, `env` and a working directory:
- env: the Service link variables of the namespace, then the container's `env` in order, each value
  `$(VAR)`-expanded against the variables before it, `valueFrom.fieldRef` from the downward API;
- `command` + `args` (or the image's entrypoint, for the project's images: see `images.py`)
  `$(VAR)`-expanded against the whole env;
- paths: processes see the host file system, so every path in env values, args and `workingDir` that
  starts with a volumeMount's `mountPath` is rewritten to the host directory backing the volume
  (emptyDir: per pod; persistentVolumeClaim: `{state}/volumes/{ns}/{claim}`; hostPath: itself), and
  the `terminationMessagePath` to a per-pod host file;
- `python`/`python3` run the sandbox's own interpreter, whose bin directory leads PATH so that
  `torchrun` and `elasticft` resolve to the same installation;
- the readiness probe (httpGet, tcpSocket or exec) is resolved against the pod IP and named ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from elasticft_sandbox.images import UnknownImage, container_argv

Obj = dict[str, Any]

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# The host variables a process needs to work at all (the image would have provided their equivalents).
HOST_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_EXPANSION = re.compile(r"\$\$|\$\(([^)]*)\)")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


class LaunchError(Exception):
    """The container cannot be started as specified; reported as a waiting reason, like a kubelet."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PodDirs:
    """Host directories of one pod and of the sandbox's persistent volumes."""

    pod_root: Path
    volumes_root: Path

    def empty_dir(self, volume: str) -> Path:
        return self.pod_root / "volumes" / volume

    @property
    def termination_log(self) -> Path:
        return self.pod_root / "termination-log"

    @property
    def stdin_fifo(self) -> Path:
        """The named pipe a container with `stdin: true` reads; `kubectl attach -i` writes to it."""
        return self.pod_root / "stdin"

    @property
    def rootfs(self) -> Path:
        """Stands in for the image's file system: default working directory and unmapped workingDirs."""
        return self.pod_root / "rootfs"

    def claim(self, namespace: str, claim: str) -> Path:
        return self.volumes_root / namespace / claim


@dataclass(frozen=True)
class Launch:
    """Everything needed to start the process of a container."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_log: Path
    host_dirs: list[Path]
    readiness: ReadinessCheck | None
    #: (container path, host path) pairs the paths of the container were rewritten with
    path_map: tuple[tuple[str, str], ...] = ()

    def exec_argv(self, command: Sequence[str], python: str) -> list[str]:
        """A command run inside this container (`kubectl exec`): its paths mapped, `python` the sandbox's."""
        argv = [rewrite_paths(str(part), self.path_map) for part in command]
        if argv and _PYTHON.match(Path(argv[0]).name):
            argv[0] = python
        if argv and Path(argv[0]).name == "tar":
            # `kubectl cp` reads `tar cf - PATH`: members must be named by container paths, not host ones.
            argv += [f"--transform=s|^{host.lstrip('/')}|{container.lstrip('/')}|"
                         for container, host in self.path_map if any(host in part for part in argv[1:])]
        return argv


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, and an undefined
    `$(NAME)` or an unclosed `$(` stays as written."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _EXPANSION.sub(substitute, text)


def field_ref_value(pod: Obj, field_path: str, pod_ip: str, host_ip: str) -> str:
    """The downward-API value of `fieldRef.fieldPath` for this pod."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if field_path in simple:
        return str(simple[field_path])
    match = _LABEL_REF.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise LaunchError("CreateContainerConfigError", f"unsupported fieldRef fieldPath {field_path!r}")


def service_env(services: Iterable[Obj]) -> dict[str, str]:
    """The `{SVC}_SERVICE_HOST`/`_PORT` and Docker-link variables a kubelet injects for each Service."""
    env: dict[str, str] = {}
    for service in sorted(services, key=lambda s: s["metadata"]["name"]):
        ip = service.get("spec", {}).get("clusterIP")
        ports = service.get("spec", {}).get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        first_protocol = ports[0].get("protocol", "TCP").lower()
        env[f"{prefix}_PORT"] = f"{first_protocol}://{ip}:{ports[0]['port']}"
        for port in ports:
            protocol = port.get("protocol", "TCP")
            link = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[link] = f"{protocol.lower()}://{ip}:{port['port']}"
            env[f"{link}_PROTO"] = protocol.lower()
            env[f"{link}_PORT"] = str(port["port"])
            env[f"{link}_ADDR"] = ip
    return env


def volume_host_dirs(pod: Obj, dirs: PodDirs) -> dict[str, Path]:
    """The host directory behind each volume of the pod that the sandbox can provide."""
    namespace = pod["metadata"].get("namespace", "default")
    backing: dict[str, Path] = {}
    for volume in pod.get("spec", {}).get("volumes") or []:
        name = volume["name"]
        if "emptyDir" in volume:
            backing[name] = dirs.empty_dir(name)
        elif "persistentVolumeClaim" in volume:
            backing[name] = dirs.claim(namespace, volume["persistentVolumeClaim"]["claimName"])
        elif "hostPath" in volume:
            backing[name] = Path(volume["hostPath"]["path"])
    return backing


def path_mapping(container: Obj, backing: Mapping[str, Path], termination_log: Path) -> list[tuple[str, str]]:
    """(container path, host path) pairs, longest container path first so nested mounts win."""
    mapping: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        mount_path = mount["mountPath"].rstrip("/")
        if not mount_path:
            continue
        if mount["name"] not in backing:
            raise LaunchError(
                "CreateContainerConfigError",
                f"volume {mount['name']!r} mounted at {mount['mountPath']} is not an emptyDir, "
                "persistentVolumeClaim or hostPath volume, the kinds the sandbox kubelet provides",
            )
        mapping[mount_path] = str(backing[mount["name"]] / mount.get("subPath", ""))
    message_path = container.get("terminationMessagePath", DEFAULT_TERMINATION_MESSAGE_PATH)
    mapping[message_path] = str(termination_log)
    return sorted(mapping.items(), key=lambda pair: len(pair[0]), reverse=True)


def rewrite_paths(text: str, mapping: Sequence[tuple[str, str]]) -> str:
    """Replace each container path that starts at a path boundary (`/checkpoints/x`, `--dir=/checkpoints`)
    with its host path; `/checkpoints-old` is a different path and is left alone."""
    if not mapping:
        return text
    hosts = dict(mapping)
    alternatives = "|".join(re.escape(container_path) for container_path, _ in mapping)
    pattern = re.compile(rf"(?<![\w.~/-])({alternatives})(?![\w.~-])")
    return pattern.sub(lambda match: hosts[match.group(1)], text)


def container_env(
    pod: Obj, container: Obj, services_env: Mapping[str, str], pod_ip: str, host_ip: str
) -> dict[str, str]:
    """The container's environment as a kubelet builds it (before path rewriting)."""
    env = dict(services_env)
    for variable in container.get("env") or []:
        name = variable["name"]
        if "value" in variable or "valueFrom" not in variable:
            env[name] = expand(str(variable.get("value", "")), env)
            continue
        source = variable["valueFrom"]
        if "fieldRef" not in source:
            kinds = ", ".join(sorted(source))
            raise LaunchError("CreateContainerConfigError", f"env {name}: valueFrom {kinds} is not supported")
        env[name] = field_ref_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
    return env


def build_launch(
    pod: Obj,
    dirs: PodDirs,
    services_env: Mapping[str, str],
    pod_ip: str,
    host_ip: str,
    python: str,
    host_env: Mapping[str, str],
) -> Launch:
    """The process for the pod's first container, or `LaunchError` saying why it cannot run."""
    container = pod["spec"]["containers"][0]
    try:
        parts = container_argv(str(container.get("image", "")), [str(p) for p in container.get("command") or []],
                               [str(a) for a in container.get("args") or []])
    except UnknownImage as error:
        raise LaunchError("CreateContainerConfigError", str(error)) from error
    backing = volume_host_dirs(pod, dirs)
    mapping = path_mapping(container, backing, dirs.termination_log)
    raw_env = container_env(pod, container, services_env, pod_ip, host_ip)
    argv = [rewrite_paths(expand(part, raw_env), mapping) for part in parts]
    if _PYTHON.match(Path(argv[0]).name):
        argv[0] = python
    bin_dir = str(Path(python).parent)
    env = {key: host_env[key] for key in HOST_ENV_PASSTHROUGH if key in host_env}
    # Images commonly set this; without it `kubectl logs` of a running Python process stays empty.
    env["PYTHONUNBUFFERED"] = "1"
    env["HOSTNAME"] = pod["metadata"]["name"]
    env.update({key: rewrite_paths(value, mapping) for key, value in raw_env.items()})
    env["PATH"] = bin_dir + ":" + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    working_dir = container.get("workingDir")
    cwd = Path(rewrite_paths(working_dir, mapping)) if working_dir else dirs.rootfs
    if working_dir and cwd == Path(working_dir) and not cwd.is_dir():
        cwd = dirs.rootfs / working_dir.lstrip("/")
    mounted = [Path(host) for _, host in mapping if Path(host) != dirs.termination_log]
    host_dirs = sorted({cwd, *(d for d in mounted if not d.exists() or d.is_dir())})
    readiness = readiness_check(container, pod_ip, mapping, python)
    nul = next((name for name, value in [*env.items(), *(("args", a) for a in argv)] if "\x00" in value), None)
    if nul is not None:  # the API refuses these in env values; an exec would fail on any of them
        raise LaunchError("CreateContainerError", f"{nul} contains a NUL byte, which no process can be given")
    return Launch(argv, env, cwd, dirs.termination_log, host_dirs, readiness, tuple(mapping))


def container_port(port: int | str, container: Obj) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(str(port))
    named = {p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []}
    if port not in named:
        raise LaunchError("CreateContainerConfigError", f"probe port {port!r} names no containerPort")
    return named[port]


@dataclass(frozen=True)
class ReadinessCheck:
    """One readiness probe, resolved: what to try (an HTTP GET, a TCP connect or a command) and how often."""

    url: str = ""
    tcp_address: tuple[str, int] | None = None
    command: tuple[str, ...] = ()
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def readiness_check(
    container: Obj, pod_ip: str, mapping: Sequence[tuple[str, str]], python: str
) -> ReadinessCheck | None:
    """The container's readinessProbe with Kubernetes' defaults; host defaults to the pod IP."""
    probe = container.get("readinessProbe")
    if not probe:
        return None
    timing = ReadinessCheck(
        initial_delay_s=float(probe.get("initialDelaySeconds", 0)),
        period_s=float(probe.get("periodSeconds", 10)),
        timeout_s=float(probe.get("timeoutSeconds", 1)),
        success_threshold=int(probe.get("successThreshold", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )
    if "httpGet" in probe:
        http_get = probe["httpGet"]
        port = container_port(http_get["port"], container)
        path = "/" + str(http_get.get("path", "/")).lstrip("/")
        scheme = str(http_get.get("scheme", "HTTP")).lower()
        return replace(timing, url=f"{scheme}://{http_get.get('host') or pod_ip}:{port}{path}")
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"]
        address = (str(tcp.get("host") or pod_ip), container_port(tcp["port"], container))
        return replace(timing, tcp_address=address)
    if "exec" in probe:
        command = [rewrite_paths(str(part), mapping) for part in probe["exec"].get("command") or []]
        if command and _PYTHON.match(Path(command[0]).name):
            command[0] = python
        return replace(timing, command=tuple(command))
    kinds = ", ".join(sorted(set(probe) - set(_PROBE_TIMING_FIELDS)))
    raise LaunchError("CreateContainerConfigError", f"readinessProbe {kinds} is not supported by the sandbox")


_PROBE_TIMING_FIELDS = (
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
)

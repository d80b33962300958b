"""The sandbox's process kubelet: runs the pods bound to the simulated nodes as local processes.

Pods get their ServiceAccount token at the standard path and the API's in-cluster address (see
`serviceaccounts.py`) when the sandbox gives the kubelet an `ApiEndpoint`.

One kubelet serves every node of the sandbox. For each pod it starts the first container (see
`launch.py`), writes its log to `{logs_dir}/{ns}/{pod}/{container}.log` with line times beside it
(`containerlogs.py`; the API server serves both as `kubectl logs`), probes readiness, restarts per
`restartPolicy` with back-off, and reports status (see `podstatus.py`). Deletion is graceful as on a
real node: a pod with `deletionTimestamp` gets SIGTERM (to its process group), SIGKILL after the
grace period, then the kubelet removes the pod from the API.
A pod whose node disappeared is killed at once and removed, which is what pod garbage collection
does after a cloud instance is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import aiohttp

from elasticft_sandbox.addresses import POD_ADDRESSES, AddressBlock
from elasticft_sandbox.apiserver.streams import ContainerNotRunning, ExecSpec
from elasticft_sandbox.containerlogs import copy_output, times_path
from elasticft_sandbox.kubeapi import (
    ApiError,
    Controller,
    Informer,
    KubeApi,
    Obj,
    now_rfc3339,
    pod_path,
    record_event,
)
from elasticft_sandbox.launch import (
    Launch,
    LaunchError,
    PodDirs,
    ReadinessCheck,
    build_launch,
    service_env,
)
from elasticft_sandbox.podstatus import (
    ContainerState,
    PodReport,
    Readiness,
    Running,
    Terminated,
    Waiting,
    exit_code_of,
    exit_reason,
    pod_status,
    restart_backoff_s,
    should_restart,
    termination_message,
)
from elasticft_sandbox.processes import ProcessTable, ProcessTree
from elasticft_sandbox.serviceaccounts import ApiEndpoint, automounts_token, with_token_mount, write_token
from elasticft_trainer.simulated_device import SIMULATED_DEVICE_ANNOTATION, SIMULATED_DEVICE_ENV

log = logging.getLogger(__name__)

COMPONENT = "kubelet"
DEFAULT_GRACE_S = 30.0
TREE_SAMPLE_S = 1.0
# A container that ran this long before failing restarts with the shortest back-off again (kubelet rule).
BACK_OFF_RESET_S = 600.0
# A start failure (executable not found, bad working directory) as container runtimes report it.
START_ERROR_EXIT_CODE = 128
OUTPUT_DRAIN_S = 5.0


class PodIpAllocator:
    """Hands out the block's pod addresses (127.{3i}.x.y, x ≥ 1), round-robin so a freed address is not
    reused soon."""

    def __init__(self, block: AddressBlock) -> None:
        self._block = block
        self._next = 0
        self._used: set[str] = set()

    def allocate(self) -> str:
        while True:
            serial, self._next = self._next, (self._next + 1) % POD_ADDRESSES
            address = self._block.pod_address(serial)
            if address not in self._used:
                self._used.add(address)
                return address

    def release(self, address: str) -> None:
        self._used.discard(address)


class PodWorker:
    """Runs one pod: start, wait, restart, report, and stop on deletion."""

    def __init__(self, kubelet: Kubelet, pod: Obj, pod_ip: str, host_ip: str) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.container: Obj = pod["spec"]["containers"][0]
        self.pod_ip = pod_ip
        self.host_ip = host_ip
        self.dirs = PodDirs(kubelet.state_dir / "pods" / self.uid, kubelet.state_dir / "volumes")
        self.log_path = kubelet.logs_dir / self.namespace / self.name / f"{self.container['name']}.log"
        self.start_time = now_rfc3339()
        self.state: ContainerState = Waiting("ContainerCreating")
        self.last_state: Terminated | None = None
        self.restart_count = 0
        self.ready = False
        self.final = False
        self.process_id: int | None = None
        self.launch: Launch | None = None
        self._stop = asyncio.Event()
        self._stop_grace_s = DEFAULT_GRACE_S
        self._remove_from_api = False
        self._report_lock = asyncio.Lock()
        self._last_status: Obj | None = None
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    @property
    def restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def request_stop(self, grace_s: float, remove_from_api: bool) -> None:
        """Stop the pod's processes (SIGTERM, SIGKILL after `grace_s`); a shorter grace may cut a longer."""
        if self._stop.is_set():
            self._stop_grace_s = min(self._stop_grace_s, grace_s)
        else:
            self._stop_grace_s = grace_s
        self._remove_from_api = self._remove_from_api or remove_from_api
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _run(self) -> None:
        try:
            await self._run_container()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)
        await self._stop.wait()
        if self._remove_from_api:
            with contextlib.suppress(ApiError, aiohttp.ClientError):
                await self.kubelet.api.delete(pod_path(self.namespace, self.name), grace_period_s=0)

    async def _run_container(self) -> None:
        try:
            launch = build_launch(
                self.pod,
                self.dirs,
                self.kubelet.services_env(self.pod),
                self.pod_ip,
                self.host_ip,
                self.kubelet.python,
                os.environ,
            )
            launch.env.update(self.kubelet.device_env(self.pod))
            self.dirs.pod_root.mkdir(parents=True, exist_ok=True)
            for directory in launch.host_dirs:
                directory.mkdir(parents=True, exist_ok=True)
            launch = await self.kubelet.with_identity(self.pod, launch, self.dirs)
            self.launch = launch
        except (LaunchError, OSError, ApiError, aiohttp.ClientError) as error:
            reason = error.reason if isinstance(error, LaunchError) else "CreateContainerError"
            self.state = Waiting(reason, str(error))
            await self.report()
            await record_event(self.kubelet.api, self.pod, "Failed", str(error), COMPONENT, "Warning")
            await self._stop.wait()
            self.final = True
            await self.report()
            return
        back_offs = 0
        while not self.stopping:
            started = asyncio.get_running_loop().time()
            exit_code = await self._run_once(launch)
            if self.stopping or not should_restart(self.restart_policy, exit_code):
                break
            if asyncio.get_running_loop().time() - started >= BACK_OFF_RESET_S:
                back_offs = 0
            await self._back_off(restart_backoff_s(back_offs, self.kubelet.restart_backoff_s))
            back_offs += 1
        self.final = True
        self.ready = False
        await self.report()

    async def _back_off(self, delay_s: float) -> None:
        """Wait before the next start, shown as CrashLoopBackOff; a deletion ends the wait."""
        exited, earlier = self.state, self.last_state
        # lastState is the latest finished instance while another one is awaited or runs.
        if isinstance(exited, Terminated):
            self.last_state = exited
        message = (
            f"back-off {delay_s:g}s restarting failed container={self.container['name']} "
            f"pod={self.name}_{self.namespace}({self.uid})"
        )
        self.state = Waiting("CrashLoopBackOff", message)
        await self.report()
        await record_event(self.kubelet.api, self.pod, "BackOff", message, COMPONENT, "Warning")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay_s)
        if self.stopping:  # deleted while backing off: the pod ends with the exit it had
            self.state, self.last_state = exited, earlier
        else:
            self.restart_count += 1

    @contextlib.contextmanager
    def _open_stdin(self) -> Iterator[int]:
        """The container's stdin: closed, or with `stdin: true` a named pipe that stays open across
        restarts and attaches (the container holds both ends, so it never reads an end of file)."""
        if not self.container.get("stdin"):
            yield asyncio.subprocess.DEVNULL
            return
        fifo = self.dirs.stdin_fifo
        if not fifo.exists():
            os.mkfifo(fifo)
        descriptor = os.open(fifo, os.O_RDWR)
        try:
            yield descriptor
        finally:
            os.close(descriptor)

    async def _run_once(self, launch: Launch) -> int:
        """Start the process, wait for it to exit or be stopped, and record its terminated state."""
        self._rotate_log()
        launch.termination_log.write_text("")
        started_at = now_rfc3339()
        try:
            with self._open_stdin() as stdin:
                process = await _start_in_container(launch.argv, launch, asyncio.subprocess.PIPE, stdin)
        except OSError as error:
            with self.log_path.open("ab") as log_file:
                log_file.write(f"{error}\n".encode())
            await self._set_terminated(
                START_ERROR_EXIT_CODE, "StartError", str(error), started_at, launch.termination_log
            )
            return START_ERROR_EXIT_CODE
        assert process.stdout is not None
        output = asyncio.create_task(copy_output(process.stdout, self.log_path))
        self.process_id = process.pid
        tree = ProcessTree(process.pid, self.dirs.pod_root / "processes.json", self.kubelet.process_table)
        self.state = Running(started_at)
        self.ready = launch.readiness is None
        await self.report()
        await record_event(
            self.kubelet.api, self.pod, "Started", f"Started container {self.container['name']}", COMPONENT
        )
        helpers = [asyncio.create_task(self._sample_tree(tree))]
        if launch.readiness is not None:
            helpers.append(asyncio.create_task(self._probe_readiness(launch.readiness, launch)))
        try:
            exit_code = await self._wait_or_stop(process, tree)
        finally:
            for helper in helpers:
                helper.cancel()
            # Like a container runtime, leave nothing of the container behind once its main process is gone.
            tree.kill_all()
            # The output pipe closes once no process of the container holds it; then the log is complete.
            await asyncio.wait({output}, timeout=OUTPUT_DRAIN_S)
            output.cancel()
        self.ready = False
        reason = exit_reason(exit_code)
        await self._set_terminated(exit_code, reason, "", started_at, launch.termination_log)
        return exit_code

    async def _wait_or_stop(self, process: asyncio.subprocess.Process, tree: ProcessTree) -> int:
        exited = asyncio.create_task(process.wait())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not exited.done():
            message = f"Stopping container {self.container['name']}"
            await record_event(self.kubelet.api, self.pod, "Killing", message, COMPONENT)
            tree.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), self._stop_grace_s)
            except TimeoutError:
                tree.kill_all()
        returncode = await exited
        return exit_code_of(returncode)

    async def _set_terminated(
        self, exit_code: int, reason: str, error: str, started_at: str, termination_log: Path
    ) -> None:
        try:
            file_text = termination_log.read_text(errors="replace")
        except OSError:
            file_text = ""
        policy = self.container.get("terminationMessagePolicy", "File")
        message = error or termination_message(file_text, self._log_tail(), policy, exit_code)
        self.state = Terminated(exit_code, reason, message, started_at, now_rfc3339())

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - 16384))
                tail: bytes = log_file.read()
                return tail.decode(errors="replace")
        except OSError:
            return ""

    def _rotate_log(self) -> None:
        """Keep the previous instance's log beside the current one (`kubectl logs --previous`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            previous = self.log_path.with_suffix(".previous.log")
            self.log_path.replace(previous)
            if times_path(self.log_path).exists():
                times_path(self.log_path).replace(times_path(previous))

    async def _sample_tree(self, tree: ProcessTree) -> None:
        while True:
            await asyncio.sleep(TREE_SAMPLE_S)
            await asyncio.to_thread(tree.refresh, False)

    async def _probe_readiness(self, check: ReadinessCheck, launch: Launch) -> None:
        await asyncio.sleep(check.initial_delay_s)
        readiness = Readiness()
        while True:
            succeeded = await self._probe_once(check, launch)
            readiness = readiness.after(succeeded, check.success_threshold, check.failure_threshold)
            if readiness.ready != self.ready:
                self.ready = readiness.ready
                await self.report()
            await asyncio.sleep(check.period_s)

    async def _probe_once(self, check: ReadinessCheck, launch: Launch) -> bool:
        try:
            if check.tcp_address is not None:
                opening = asyncio.open_connection(*check.tcp_address)
                _, writer = await asyncio.wait_for(opening, check.timeout_s)
                writer.close()
                return True
            if check.command:
                return await _run_probe_command(check, launch)
            async with self.kubelet.api.session.get(
                check.url, timeout=aiohttp.ClientTimeout(total=check.timeout_s), allow_redirects=False
            ) as response:
                return 200 <= response.status < 400
        except (OSError, TimeoutError, aiohttp.ClientError):
            return False

    def report_now(self) -> PodReport:
        return PodReport(
            container_name=self.container["name"],
            image=str(self.container.get("image", "")),
            state=self.state,
            last_state=self.last_state,
            restart_count=self.restart_count,
            ready=self.ready,
            final=self.final,
            pod_ip=self.pod_ip,
            host_ip=self.host_ip,
            start_time=self.start_time,
            process_id=self.process_id,
        )

    async def report(self) -> None:
        """Write the pod's status if it changed since the last write."""
        async with self._report_lock:
            existing = self.kubelet.current_conditions(self.namespace, self.name)
            status = pod_status(self.report_now(), existing, now_rfc3339())
            if status == self._last_status:
                return
            try:
                path = pod_path(self.namespace, self.name, "status")
                await self.kubelet.api.patch(path, {"status": status})
                self._last_status = status
            except ApiError as error:
                if error.status != 404:
                    log.warning("status of %s/%s not written: %s", self.namespace, self.name, error)
            except aiohttp.ClientError as error:
                log.warning("status of %s/%s not written: %s", self.namespace, self.name, error)


class Kubelet(Controller):
    """Starts, watches and stops the processes of every pod bound to a sandbox node."""

    def __init__(
        self,
        api: KubeApi,
        pods: Informer,
        nodes: Informer,
        services: Informer,
        state_dir: Path,
        logs_dir: Path,
        restart_backoff_s: float = 10.0,
        python: str = sys.executable,
        *,
        addresses: AddressBlock,
        api_endpoint: ApiEndpoint | None = None,
    ) -> None:
        super().__init__()
        #: where pods reach the API with their ServiceAccount token (None: no tokens are mounted)
        self.api_endpoint = api_endpoint
        self.api = api
        self.pods = pods
        self.nodes = nodes
        self.services = services
        self.state_dir = state_dir
        self.logs_dir = logs_dir
        self.restart_backoff_s = restart_backoff_s
        self.python = python
        self.workers: dict[str, PodWorker] = {}
        #: one scan of the machine's processes per sampling round serves every pod's tree
        self.process_table = ProcessTable(TREE_SAMPLE_S / 2)
        self._ips = PodIpAllocator(addresses)
        self._collected: set[str] = set()
        self._deletions: set[asyncio.Task[None]] = set()
        pods.subscribe(self.wake)
        nodes.subscribe(self.wake)

    def services_env(self, pod: Obj) -> dict[str, str]:
        """Service variables for a pod: its namespace's Services (unless enableServiceLinks is false)
        and the API server's `kubernetes` Service, as the kubelet injects them."""
        namespace = pod["metadata"]["namespace"]
        links = pod["spec"].get("enableServiceLinks", True)
        chosen = [
            service
            for key, service in self.services.objects.items()
            if (links and key[0] == namespace) or key == ("default", "kubernetes")
        ]
        return {**service_env(chosen), **(self.api_endpoint.env() if self.api_endpoint else {})}

    def exec_spec(self, namespace: str, pod: str, container: str, command: Sequence[str]) -> ExecSpec:
        """How `kubectl exec` runs `command` in a running container (called from the API server's thread)."""
        worker = next((w for w in list(self.workers.values()) if (w.namespace, w.name) == (namespace, pod)), None)
        if worker is None or worker.launch is None or not isinstance(worker.state, Running):
            raise ContainerNotRunning(f'container "{container}" in pod "{pod}" is not running')
        if container != worker.container["name"]:
            raise ContainerNotRunning(f'container "{container}" is not the container the sandbox runs in pod "{pod}"')
        argv = worker.launch.exec_argv(command, self.python)
        token = worker.dirs.pod_root / "serviceaccount"
        if token.is_dir():
            argv = with_token_mount(argv, token)
        return ExecSpec(argv, dict(worker.launch.env), worker.launch.cwd)

    def attach_stdin(self, namespace: str, pod: str, container: str) -> Path | None:
        """The pipe `kubectl attach -i` writes the container's stdin to; None if it has no stdin."""
        worker = next((w for w in list(self.workers.values()) if (w.namespace, w.name) == (namespace, pod)), None)
        if worker is None or not isinstance(worker.state, Running) or container != worker.container["name"]:
            raise ContainerNotRunning(f'container "{container}" in pod "{pod}" is not running')
        fifo = worker.dirs.stdin_fifo
        return fifo if worker.container.get("stdin") and fifo.exists() else None

    async def with_identity(self, pod: Obj, launch: Launch, dirs: PodDirs) -> Launch:
        """The launch with the pod's ServiceAccount token mounted, unless the pod opts out."""
        if self.api_endpoint is None or not automounts_token(pod):
            return launch
        directory = dirs.pod_root / "serviceaccount"
        await write_token(self.api, pod, self.api_endpoint, directory)
        return replace(launch, argv=with_token_mount(launch.argv, directory))

    def device_env(self, pod: Obj) -> dict[str, str]:
        """The simulated accelerator of the pod's node, as the trainer reads it (none: no variable)."""
        node = self.nodes.objects.get(("", pod["spec"].get("nodeName", "")), {})
        profile = (node.get("metadata", {}).get("annotations") or {}).get(SIMULATED_DEVICE_ANNOTATION)
        return {SIMULATED_DEVICE_ENV: profile} if profile else {}

    def current_conditions(self, namespace: str, name: str) -> list[Obj]:
        pod = self.pods.objects.get((namespace, name), {})
        return list(pod.get("status", {}).get("conditions") or [])

    def _host_ip(self, node_name: str) -> str:
        node = self.nodes.objects.get(("", node_name), {})
        for address in node.get("status", {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return str(address["address"])
        return ""

    async def reconcile(self) -> None:
        await self.pods.synced.wait()
        await self.nodes.synced.wait()
        await self.services.synced.wait()
        present: set[str] = set()
        for pod in list(self.pods.objects.values()):
            node_name = pod["spec"].get("nodeName")
            uid = pod["metadata"]["uid"]
            if not node_name:
                continue
            present.add(uid)
            worker = self.workers.get(uid)
            if ("", node_name) not in self.nodes.objects:
                self._node_gone(pod, worker)
            elif worker is not None:
                worker.pod = pod
                if pod["metadata"].get("deletionTimestamp"):
                    worker.request_stop(_deletion_grace_s(pod), remove_from_api=True)
            elif pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") in (
                "Succeeded",
                "Failed",
            ):
                # Finished before this kubelet started, or deleted before it ever ran: nothing to run.
                if pod["metadata"].get("deletionTimestamp"):
                    self._collect(pod)
            else:
                worker = PodWorker(self, pod, self._ips.allocate(), self._host_ip(node_name))
                self.workers[uid] = worker
                await worker.report()
        for uid, worker in list(self.workers.items()):
            if uid not in present:
                # Removed from the API without passing through deletionTimestamp (a forced delete).
                worker.request_stop(_deletion_grace_s(worker.pod), remove_from_api=False)
                if worker.task.done():
                    self._forget(uid)
        self._collected &= present

    def _node_gone(self, pod: Obj, worker: PodWorker | None) -> None:
        if worker is not None:
            worker.request_stop(0, remove_from_api=True)
        else:
            self._collect(pod)

    def _collect(self, pod: Obj) -> None:
        """Remove a pod that has nothing left to run (pod garbage collection)."""
        uid = pod["metadata"]["uid"]
        if uid in self._collected:
            return
        self._collected.add(uid)
        meta = pod["metadata"]
        path = pod_path(meta["namespace"], meta["name"])
        task = asyncio.create_task(self._delete_quietly(path))
        self._deletions.add(task)
        task.add_done_callback(self._deletions.discard)

    async def _delete_quietly(self, path: str) -> None:
        with contextlib.suppress(ApiError, aiohttp.ClientError):
            await self.api.delete(path, grace_period_s=0)

    def _forget(self, uid: str) -> None:
        worker = self.workers.pop(uid)
        self._ips.release(worker.pod_ip)
        shutil.rmtree(worker.dirs.pod_root, ignore_errors=True)

    async def shutdown(self, grace_s: float) -> None:
        """Stop every pod's processes (SIGTERM, SIGKILL after `grace_s`) without touching the API."""
        for worker in self.workers.values():
            worker.request_stop(min(grace_s, _deletion_grace_s(worker.pod)), remove_from_api=False)
        tasks = [worker.task for worker in self.workers.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s + 5)
        for task in tasks:
            task.cancel()


async def _start_in_container(argv: Sequence[str], launch: Launch, output: int,
                              stdin: int = asyncio.subprocess.DEVNULL) -> asyncio.subprocess.Process:
    """A process in the container's environment (its working directory and variables), stdout and
    stderr together to `output`, in a session of its own so that a signal to the session reaches
    whatever it starts."""
    return await asyncio.create_subprocess_exec(
        *argv, cwd=launch.cwd, env=launch.env, stdin=stdin, stdout=output, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def _run_probe_command(check: ReadinessCheck, launch: Launch) -> bool:
    """An exec probe: the command, in the container's environment, succeeds when it exits 0 in time."""
    process = await _start_in_container(check.command, launch, asyncio.subprocess.DEVNULL)
    try:
        return await asyncio.wait_for(process.wait(), check.timeout_s) == 0
    except TimeoutError:
        process.kill()
        await process.wait()
        return False


def _deletion_grace_s(pod: Obj) -> float:
    """The grace period of a deletion: the one the delete asked for, else the pod's own."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    return float(grace)

"""The sandbox's kube-controller-manager for workloads: Deployments make ReplicaSets, ReplicaSets make Pods.

As the real controllers do, in short:
- a Deployment's pod template is hashed (`pod-template-hash`); the ReplicaSet of that hash is the new
  one, every other one it controls is old. `Recreate` scales the old ones to 0 and starts the new one
  once their pods are gone; `RollingUpdate` scales the new one up and the old ones down together
  (without the surge and unavailability limits: the sandbox has no traffic to protect);
- a ReplicaSet creates or deletes pods (`generateName`, controller owner reference) until it has
  `spec.replicas` live pods;
- both report the status `kubectl rollout status` and Helm's `--wait` read: observedGeneration,
  replicas, updated/ready/available replicas, and the Available and Progressing conditions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from elasticft_sandbox.kubeapi import ApiError, Controller, Informer, KubeApi, Obj, now_rfc3339, pod_path

log = logging.getLogger(__name__)

APPS = "/apis/apps/v1"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
MERGE = "application/merge-patch+json"


def template_hash(template: Obj) -> str:
    """A short, stable hash of a pod template (the label that tells ReplicaSets of one Deployment apart)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def _controlled_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("controller") and ref.get("uid") == owner["metadata"]["uid"]
               for ref in obj["metadata"].get("ownerReferences") or ())


def _owner_reference(owner: Obj, kind: str) -> Obj:
    return {"apiVersion": "apps/v1", "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _live(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _path(kind: str, namespace: str, name: str = "", subresource: str = "") -> str:
    path = f"{APPS}/namespaces/{namespace}/{kind}"
    return "/".join(part for part in (path, name, subresource) if part)


def _condition(kind: str, status: bool, reason: str, message: str, previous: list[Obj]) -> Obj:
    now = now_rfc3339()
    old = next((c for c in previous if c.get("type") == kind), {})
    value = "True" if status else "False"
    changed = old.get("status") != value
    return {"type": kind, "status": value, "reason": reason, "message": message, "lastUpdateTime": now,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now)}


class WorkloadController(Controller):
    """Reconciles every Deployment and ReplicaSet of the sandbox."""

    def __init__(self, api: KubeApi, deployments: Informer, replicasets: Informer, pods: Informer) -> None:
        super().__init__()
        self.api = api
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self._written: dict[str, Any] = {}  # last status written per uid: the watch may lag behind
        for informer in (deployments, replicasets, pods):
            informer.subscribe(self.wake)

    async def reconcile(self) -> None:
        for informer in (self.deployments, self.replicasets, self.pods):
            await informer.synced.wait()
        present = {o["metadata"]["uid"] for i in (self.deployments, self.replicasets) for o in i.objects.values()}
        self._written = {uid: status for uid, status in self._written.items() if uid in present}
        for deployment in list(self.deployments.objects.values()):
            if not deployment["metadata"].get("deletionTimestamp"):
                await self._sync_deployment(deployment)
        for replicaset in list(self.replicasets.objects.values()):
            if not replicaset["metadata"].get("deletionTimestamp"):
                await self._sync_replicaset(replicaset)

    # -- Deployments -----------------------------------------------------------------------------

    async def _sync_deployment(self, deployment: Obj) -> None:
        spec = deployment["spec"]
        owned = [rs for rs in self.replicasets.objects.values() if _controlled_by(rs, deployment)]
        pod_hash = template_hash(spec["template"])
        new = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == pod_hash), None)
        old = [rs for rs in owned if rs is not new]
        desired = int(spec.get("replicas", 1))
        for replicaset in old:
            await self._scale(replicaset, 0)
        old_pods_left = any(_controlled_by(p, rs) for p in self.pods.objects.values() for rs in old)
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        new_replicas = 0 if recreate and old_pods_left else desired
        revision = 1 + max((int((rs["metadata"].get("annotations") or {}).get(REVISION, 0)) for rs in owned),
                           default=0)
        if new is None:
            new = await self._create_replicaset(deployment, pod_hash, new_replicas, revision)
            if new is None:
                return
        else:
            await self._scale(new, new_replicas)
        await self._write_deployment_status(deployment, new, owned, desired)

    async def _create_replicaset(self, deployment: Obj, pod_hash: str, replicas: int, revision: int) -> Obj | None:
        meta, spec = deployment["metadata"], deployment["spec"]
        template = json.loads(json.dumps(spec["template"]))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        body = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                         "labels": template["metadata"]["labels"], "annotations": {REVISION: str(revision)},
                         "ownerReferences": [_owner_reference(deployment, "Deployment")]},
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        try:
            created: Obj = await self.api.create(_path("replicasets", meta["namespace"]), body)
        except ApiError as error:
            if error.status != 409:
                log.warning("replicaset of %s/%s not created: %s", meta["namespace"], meta["name"], error)
            return None
        self.replicasets.objects[(meta["namespace"], created["metadata"]["name"])] = created
        return created

    async def _scale(self, replicaset: Obj, replicas: int) -> None:
        if int(replicaset["spec"].get("replicas", 1)) == replicas:
            return
        meta = replicaset["metadata"]
        with_log = f"{meta['namespace']}/{meta['name']}"
        try:
            await self.api.patch(_path("replicasets", meta["namespace"], meta["name"]),
                                 {"spec": {"replicas": replicas}}, MERGE)
        except ApiError as error:
            log.warning("replicaset %s not scaled: %s", with_log, error)

    async def _write_deployment_status(self, deployment: Obj, new: Obj, owned: list[Obj], desired: int) -> None:
        statuses = [rs.get("status") or {} for rs in owned]
        new_status = new.get("status") or {}
        available = sum(int(s.get("availableReplicas", 0)) for s in statuses)
        replicas = sum(int(s.get("replicas", 0)) for s in statuses)
        updated = int(new_status.get("replicas", 0))
        complete = updated == desired and replicas == desired and available >= desired \
            and new_status.get("observedGeneration") == new["metadata"].get("generation")
        previous = (deployment.get("status") or {}).get("conditions") or []
        name = new["metadata"]["name"]
        conditions = [
            _condition("Available", available >= desired, "MinimumReplicasAvailable" if available >= desired
                       else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if available >= desired
                       else "Deployment does not have minimum availability.", previous),
            _condition("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                       f'ReplicaSet "{name}" has successfully progressed.' if complete
                       else f'ReplicaSet "{name}" is progressing.', previous),
        ]
        status = {"observedGeneration": deployment["metadata"].get("generation", 1), "replicas": replicas,
                  "updatedReplicas": updated, "readyReplicas": sum(int(s.get("readyReplicas", 0)) for s in statuses),
                  "availableReplicas": available, "unavailableReplicas": max(0, desired - available),
                  "conditions": conditions}
        await self._write_status("deployments", deployment, status)

    # -- ReplicaSets -----------------------------------------------------------------------------

    async def _sync_replicaset(self, replicaset: Obj) -> None:
        meta = replicaset["metadata"]
        pods = sorted((p for p in self.pods.objects.values() if _controlled_by(p, replicaset) and _live(p)),
                      key=lambda p: (_pod_ready(p), p["metadata"].get("creationTimestamp", "")))
        wanted = int(replicaset["spec"].get("replicas", 1))
        for _ in range(wanted - len(pods)):
            await self._create_pod(replicaset)
        for pod in pods[:max(0, len(pods) - wanted)]:  # not-ready and youngest go first
            try:
                await self.api.delete(pod_path(meta["namespace"], pod["metadata"]["name"]))
            except ApiError as error:
                log.warning("pod %s of %s not deleted: %s", pod["metadata"]["name"], meta["name"], error)
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": meta.get("generation", 1)}
        await self._write_status("replicasets", replicaset, status)

    async def _create_pod(self, replicaset: Obj) -> None:
        meta, template = replicaset["metadata"], replicaset["spec"]["template"]
        pod_meta = json.loads(json.dumps(template.get("metadata") or {}))
        pod_meta.update(generateName=f"{meta['name']}-", namespace=meta["namespace"],
                        ownerReferences=[_owner_reference(replicaset, "ReplicaSet")])
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template.get("spec") or {}}
        try:
            created = await self.api.create(f"/api/v1/namespaces/{meta['namespace']}/pods", body)
        except ApiError as error:
            log.warning("pod of %s/%s not created: %s", meta["namespace"], meta["name"], error)
            return
        self.pods.objects[(meta["namespace"], created["metadata"]["name"])] = created

    async def _write_status(self, kind: str, obj: Obj, status: Obj) -> None:
        meta = obj["metadata"]
        comparable = {**status, "conditions": [{k: v for k, v in c.items() if not k.endswith("Time")}
                                               for c in status.get("conditions") or []]}
        if self._written.get(meta["uid"]) == comparable:
            return
        try:
            await self.api.patch(_path(kind, meta["namespace"], meta["name"], "status"), {"status": status}, MERGE)
        except ApiError as error:
            if error.status != 404:
                log.warning("status of %s %s/%s not written: %s", kind, meta["namespace"], meta["name"], error)
            return
        self._written[meta["uid"]] = comparable

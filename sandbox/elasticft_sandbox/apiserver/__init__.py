"""A Kubernetes API emulator that the real kubectl, kopf and the `kubernetes` client work against.

What a kubelet or scheduler written against it must know:
- `POST .../pods/{name}/binding` sets `spec.nodeName` (and condition PodScheduled); pod and node status
  are written through their `/status` subresources (writes to the main resource keep the old status).
- Deleting a pod bound to a node is graceful: the pod gets `deletionTimestamp` (now + grace period) and
  `deletionGracePeriodSeconds`; the kubelet stops the process and then deletes it with
  `gracePeriodSeconds=0`. If it does not, the server removes the pod when the grace period ends.
  Unbound pods and pods in phase Succeeded/Failed are deleted at once.
- Deleting a Node deletes the pods bound to it (pod garbage collection).
- Pod logs are read from `{logs_dir}/{namespace}/{pod}/{container}.log` (`previous=true`:
  `{container}.previous.log`); `follow=true` streams until the pod is Succeeded/Failed or gone.
- Services get `spec.clusterIP` from the server's service network (`service_network`, 127.1.0.0/16
  unless given; a sandbox passes its own block's, see `elasticft_sandbox.addresses`) unless they ask for
  one in that range (or for `None`); an address outside it is refused with 422, as on a real server.
"""

from .server import ApiServer, ApiServerThread, write_kubeconfig

__all__ = ["ApiServer", "ApiServerThread", "write_kubeconfig"]

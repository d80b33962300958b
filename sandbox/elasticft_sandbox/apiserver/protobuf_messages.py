"""The messages `protobuf.py` reads: for each kind, its fields by number, as in the `generated.proto`
files of k8s.io/api and k8s.io/apimachinery. A kind that kubectl or Helm sends as protobuf gets its
message here (and every message it nests); nothing else needs to change.

`keep_zero` lists a message's pointer fields (`*int32`, `*bool`): Go writes those only when set, so a
zero on the wire was sent on purpose; every other zero is dropped, as `omitempty` does in JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Field types: scalars, a nested message (by name), maps and the special encodings of apimachinery.
STRING, BYTES, INT, BOOL, TIME, INT_OR_STRING = "string", "bytes", "int", "bool", "time", "intorstring"
QUANTITY = "quantity"  # resource.Quantity: a message whose one string field is the quantity as written


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # one of the scalar kinds above, or the name of a message in MESSAGES
    repeated: bool = False
    map_value: str | None = None  # a map<string, map_value>
    #: an embedded Go struct (`json:",inline"`): its fields are the parent's in JSON, a nested message on the wire
    inline: bool = False


@dataclass(frozen=True)
class Message:
    fields: dict[int, Field]
    keep_zero: frozenset[str] = field(default_factory=frozenset)


def _message(*fields: tuple[int, Field], keep_zero: tuple[str, ...] = ()) -> Message:
    return Message(dict(fields), frozenset(keep_zero))


def _f(number: int, name: str, kind: str, repeated: bool = False, map_value: str | None = None) -> tuple[int, Field]:
    return number, Field(name, kind, repeated, map_value)


def _inline(number: int, kind: str) -> tuple[int, Field]:
    return number, Field("", kind, inline=True)


# The apimachinery encodings behind the kinds TIME, INT_OR_STRING and QUANTITY.
TIME_MESSAGE = _message(_f(1, "seconds", INT), _f(2, "nanos", INT))
INT_OR_STRING_MESSAGE = _message(_f(1, "type", INT), _f(2, "intVal", INT), _f(3, "strVal", STRING))
QUANTITY_MESSAGE = _message(_f(1, "string", STRING))

# Pods and the workloads that template them (apps/v1 Deployment and ReplicaSet: `kubectl create
# deployment`). The PodSpec covers what a training or serving pod sets; fields such as
# resourceClaims, dnsConfig, hostAliases, readinessGates, os or schedulingGates are not read yet.
_CONTAINER_FIELDS = (
    _f(1, "name", STRING), _f(2, "image", STRING), _f(3, "command", STRING, repeated=True),
    _f(4, "args", STRING, repeated=True), _f(5, "workingDir", STRING), _f(6, "ports", "ContainerPort", repeated=True),
    _f(7, "env", "EnvVar", repeated=True), _f(8, "resources", "ResourceRequirements"),
    _f(9, "volumeMounts", "VolumeMount", repeated=True), _f(10, "livenessProbe", "Probe"),
    _f(11, "readinessProbe", "Probe"), _f(12, "lifecycle", "Lifecycle"), _f(13, "terminationMessagePath", STRING),
    _f(14, "imagePullPolicy", STRING), _f(15, "securityContext", "SecurityContext"), _f(16, "stdin", BOOL),
    _f(17, "stdinOnce", BOOL), _f(18, "tty", BOOL), _f(19, "envFrom", "EnvFromSource", repeated=True),
    _f(20, "terminationMessagePolicy", STRING), _f(22, "startupProbe", "Probe"), _f(24, "restartPolicy", STRING),
)
_SELECTOR_REQUIREMENT = _message(_f(1, "key", STRING), _f(2, "operator", STRING),
                                 _f(3, "values", STRING, repeated=True))
_LOCAL_REFERENCE_OPTIONAL = _message(_inline(1, "LocalObjectReference"), _f(2, "optional", BOOL),
                                     keep_zero=("optional",))
_KEY_SELECTOR = _message(_inline(1, "LocalObjectReference"), _f(2, "key", STRING), _f(3, "optional", BOOL),
                         keep_zero=("optional",))
_PROJECTION = _message(_inline(1, "LocalObjectReference"), _f(2, "items", "KeyToPath", repeated=True),
                       _f(4, "optional", BOOL), keep_zero=("optional",))
_HANDLER_FIELDS = (_f(1, "exec", "ExecAction"), _f(2, "httpGet", "HTTPGetAction"),
                   _f(3, "tcpSocket", "TCPSocketAction"))
_POD_AFFINITY = _message(
    _f(1, "requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm", repeated=True),
    _f(2, "preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm", repeated=True),
)

WORKLOAD_MESSAGES: dict[str, Message] = {
    "Deployment": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "DeploymentSpec")),
    "DeploymentSpec": _message(
        _f(1, "replicas", INT), _f(2, "selector", "LabelSelector"), _f(3, "template", "PodTemplateSpec"),
        _f(4, "strategy", "DeploymentStrategy"), _f(5, "minReadySeconds", INT), _f(6, "revisionHistoryLimit", INT),
        _f(7, "paused", BOOL), _f(9, "progressDeadlineSeconds", INT),
        keep_zero=("replicas", "revisionHistoryLimit", "progressDeadlineSeconds"),
    ),
    "DeploymentStrategy": _message(_f(1, "type", STRING), _f(2, "rollingUpdate", "RollingUpdateDeployment")),
    "RollingUpdateDeployment": _message(
        _f(1, "maxUnavailable", INT_OR_STRING), _f(2, "maxSurge", INT_OR_STRING),
        keep_zero=("maxUnavailable", "maxSurge"),
    ),
    "ReplicaSet": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "ReplicaSetSpec")),
    "ReplicaSetSpec": _message(
        _f(1, "replicas", INT), _f(2, "selector", "LabelSelector"), _f(3, "template", "PodTemplateSpec"),
        _f(4, "minReadySeconds", INT), keep_zero=("replicas",),
    ),
    "LabelSelector": _message(
        _f(1, "matchLabels", STRING, map_value=STRING),
        _f(2, "matchExpressions", "LabelSelectorRequirement", repeated=True),
    ),
    "LabelSelectorRequirement": _SELECTOR_REQUIREMENT,
    "PodTemplateSpec": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "PodSpec")),
    "Pod": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "PodSpec")),
    "PodSpec": _message(
        _f(1, "volumes", "Volume", repeated=True), _f(2, "containers", "Container", repeated=True),
        _f(3, "restartPolicy", STRING), _f(4, "terminationGracePeriodSeconds", INT),
        _f(5, "activeDeadlineSeconds", INT), _f(6, "dnsPolicy", STRING),
        _f(7, "nodeSelector", STRING, map_value=STRING), _f(8, "serviceAccountName", STRING),
        _f(9, "serviceAccount", STRING), _f(10, "nodeName", STRING), _f(11, "hostNetwork", BOOL),
        _f(12, "hostPID", BOOL), _f(13, "hostIPC", BOOL), _f(14, "securityContext", "PodSecurityContext"),
        _f(15, "imagePullSecrets", "LocalObjectReference", repeated=True), _f(16, "hostname", STRING),
        _f(17, "subdomain", STRING), _f(18, "affinity", "Affinity"), _f(19, "schedulerName", STRING),
        _f(20, "initContainers", "Container", repeated=True), _f(21, "automountServiceAccountToken", BOOL),
        _f(22, "tolerations", "Toleration", repeated=True), _f(24, "priorityClassName", STRING),
        _f(25, "priority", INT), _f(27, "shareProcessNamespace", BOOL), _f(29, "runtimeClassName", STRING),
        _f(30, "enableServiceLinks", BOOL), _f(31, "preemptionPolicy", STRING),
        _f(33, "topologySpreadConstraints", "TopologySpreadConstraint", repeated=True),
        _f(34, "ephemeralContainers", "EphemeralContainer", repeated=True), _f(35, "setHostnameAsFQDN", BOOL),
        _f(37, "hostUsers", BOOL),
        keep_zero=("terminationGracePeriodSeconds", "activeDeadlineSeconds", "automountServiceAccountToken",
                   "priority", "shareProcessNamespace", "enableServiceLinks", "setHostnameAsFQDN", "hostUsers"),
    ),
    "Container": _message(*_CONTAINER_FIELDS),
    "EphemeralContainer": _message(_inline(1, "EphemeralContainerCommon"), _f(2, "targetContainerName", STRING)),
    "EphemeralContainerCommon": _message(*_CONTAINER_FIELDS),
    "ContainerPort": _message(
        _f(1, "name", STRING), _f(2, "hostPort", INT), _f(3, "containerPort", INT), _f(4, "protocol", STRING),
        _f(5, "hostIP", STRING),
    ),
    "EnvVar": _message(_f(1, "name", STRING), _f(2, "value", STRING), _f(3, "valueFrom", "EnvVarSource")),
    "EnvVarSource": _message(
        _f(1, "fieldRef", "ObjectFieldSelector"), _f(2, "resourceFieldRef", "ResourceFieldSelector"),
        _f(3, "configMapKeyRef", "ConfigMapKeySelector"), _f(4, "secretKeyRef", "SecretKeySelector"),
    ),
    "ObjectFieldSelector": _message(_f(1, "apiVersion", STRING), _f(2, "fieldPath", STRING)),
    "ResourceFieldSelector": _message(_f(1, "containerName", STRING), _f(2, "resource", STRING),
                                      _f(3, "divisor", QUANTITY)),
    "ConfigMapKeySelector": _KEY_SELECTOR,
    "SecretKeySelector": _KEY_SELECTOR,
    "EnvFromSource": _message(_f(1, "prefix", STRING), _f(2, "configMapRef", "ConfigMapEnvSource"),
                              _f(3, "secretRef", "SecretEnvSource")),
    "ConfigMapEnvSource": _LOCAL_REFERENCE_OPTIONAL,
    "SecretEnvSource": _LOCAL_REFERENCE_OPTIONAL,
    "LocalObjectReference": _message(_f(1, "name", STRING)),
    "ResourceRequirements": _message(_f(1, "limits", STRING, map_value=QUANTITY),
                                     _f(2, "requests", STRING, map_value=QUANTITY)),
    "VolumeMount": _message(
        _f(1, "name", STRING), _f(2, "readOnly", BOOL), _f(3, "mountPath", STRING), _f(4, "subPath", STRING),
        _f(5, "mountPropagation", STRING), _f(6, "subPathExpr", STRING),
    ),
    "Probe": _message(
        _inline(1, "ProbeHandler"), _f(2, "initialDelaySeconds", INT), _f(3, "timeoutSeconds", INT),
        _f(4, "periodSeconds", INT), _f(5, "successThreshold", INT), _f(6, "failureThreshold", INT),
        _f(7, "terminationGracePeriodSeconds", INT), keep_zero=("terminationGracePeriodSeconds",),
    ),
    "ProbeHandler": _message(*_HANDLER_FIELDS, _f(4, "grpc", "GRPCAction")),
    "ExecAction": _message(_f(1, "command", STRING, repeated=True)),
    "HTTPGetAction": _message(
        _f(1, "path", STRING), _f(2, "port", INT_OR_STRING), _f(3, "host", STRING), _f(4, "scheme", STRING),
        _f(5, "httpHeaders", "HTTPHeader", repeated=True),
    ),
    "HTTPHeader": _message(_f(1, "name", STRING), _f(2, "value", STRING)),
    "TCPSocketAction": _message(_f(1, "port", INT_OR_STRING), _f(2, "host", STRING)),
    "GRPCAction": _message(_f(1, "port", INT), _f(2, "service", STRING)),
    "Lifecycle": _message(_f(1, "postStart", "LifecycleHandler"), _f(2, "preStop", "LifecycleHandler")),
    "LifecycleHandler": _message(*_HANDLER_FIELDS, _f(4, "sleep", "SleepAction")),
    "SleepAction": _message(_f(1, "seconds", INT), keep_zero=("seconds",)),
    "SecurityContext": _message(
        _f(1, "capabilities", "Capabilities"), _f(2, "privileged", BOOL), _f(4, "runAsUser", INT),
        _f(5, "runAsNonRoot", BOOL), _f(6, "readOnlyRootFilesystem", BOOL), _f(7, "allowPrivilegeEscalation", BOOL),
        _f(8, "runAsGroup", INT),
        keep_zero=("privileged", "runAsUser", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                   "runAsGroup"),
    ),
    "Capabilities": _message(_f(1, "add", STRING, repeated=True), _f(2, "drop", STRING, repeated=True)),
    "PodSecurityContext": _message(
        _f(2, "runAsUser", INT), _f(3, "runAsNonRoot", BOOL), _f(4, "supplementalGroups", INT, repeated=True),
        _f(5, "fsGroup", INT),
        _f(6, "runAsGroup", INT), keep_zero=("runAsUser", "runAsNonRoot", "fsGroup", "runAsGroup"),
    ),
    "Toleration": _message(
        _f(1, "key", STRING), _f(2, "operator", STRING), _f(3, "value", STRING), _f(4, "effect", STRING),
        _f(5, "tolerationSeconds", INT), keep_zero=("tolerationSeconds",),
    ),
    "TopologySpreadConstraint": _message(
        _f(1, "maxSkew", INT), _f(2, "topologyKey", STRING), _f(3, "whenUnsatisfiable", STRING),
        _f(4, "labelSelector", "LabelSelector"), _f(5, "minDomains", INT), _f(6, "nodeAffinityPolicy", STRING),
        _f(7, "nodeTaintsPolicy", STRING), _f(8, "matchLabelKeys", STRING, repeated=True), keep_zero=("minDomains",),
    ),
    "Affinity": _message(_f(1, "nodeAffinity", "NodeAffinity"), _f(2, "podAffinity", "PodAffinity"),
                         _f(3, "podAntiAffinity", "PodAntiAffinity")),
    "NodeAffinity": _message(
        _f(1, "requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        _f(2, "preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm", repeated=True),
    ),
    "NodeSelector": _message(_f(1, "nodeSelectorTerms", "NodeSelectorTerm", repeated=True)),
    "NodeSelectorTerm": _message(_f(1, "matchExpressions", "NodeSelectorRequirement", repeated=True),
                                 _f(2, "matchFields", "NodeSelectorRequirement", repeated=True)),
    "NodeSelectorRequirement": _SELECTOR_REQUIREMENT,
    "PreferredSchedulingTerm": _message(_f(1, "weight", INT), _f(2, "preference", "NodeSelectorTerm")),
    "PodAffinity": _POD_AFFINITY,
    "PodAntiAffinity": _POD_AFFINITY,
    "PodAffinityTerm": _message(
        _f(1, "labelSelector", "LabelSelector"), _f(2, "topologyKey", STRING),
        _f(3, "namespaces", STRING, repeated=True), _f(4, "namespaceSelector", "LabelSelector"),
        _f(5, "matchLabelKeys", STRING, repeated=True), _f(6, "mismatchLabelKeys", STRING, repeated=True),
    ),
    "WeightedPodAffinityTerm": _message(_f(1, "weight", INT), _f(2, "podAffinityTerm", "PodAffinityTerm")),
    "Volume": _message(_f(1, "name", STRING), _inline(2, "VolumeSource")),
    "VolumeSource": _message(
        _f(1, "hostPath", "HostPathVolumeSource"), _f(2, "emptyDir", "EmptyDirVolumeSource"),
        _f(6, "secret", "SecretVolumeSource"), _f(10, "persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        _f(16, "downwardAPI", "DownwardAPIVolumeSource"), _f(19, "configMap", "ConfigMapVolumeSource"),
        _f(26, "projected", "ProjectedVolumeSource"),
    ),
    "HostPathVolumeSource": _message(_f(1, "path", STRING), _f(2, "type", STRING)),
    "EmptyDirVolumeSource": _message(_f(1, "medium", STRING), _f(2, "sizeLimit", QUANTITY)),
    "SecretVolumeSource": _message(
        _f(1, "secretName", STRING), _f(2, "items", "KeyToPath", repeated=True), _f(3, "defaultMode", INT),
        _f(4, "optional", BOOL), keep_zero=("defaultMode", "optional"),
    ),
    "ConfigMapVolumeSource": _message(
        _inline(1, "LocalObjectReference"), _f(2, "items", "KeyToPath", repeated=True), _f(3, "defaultMode", INT),
        _f(4, "optional", BOOL), keep_zero=("defaultMode", "optional"),
    ),
    "KeyToPath": _message(_f(1, "key", STRING), _f(2, "path", STRING), _f(3, "mode", INT), keep_zero=("mode",)),
    "PersistentVolumeClaimVolumeSource": _message(_f(1, "claimName", STRING), _f(2, "readOnly", BOOL)),
    "DownwardAPIVolumeSource": _message(_f(1, "items", "DownwardAPIVolumeFile", repeated=True),
                                        _f(2, "defaultMode", INT), keep_zero=("defaultMode",)),
    "DownwardAPIVolumeFile": _message(
        _f(1, "path", STRING), _f(2, "fieldRef", "ObjectFieldSelector"),
        _f(3, "resourceFieldRef", "ResourceFieldSelector"), _f(4, "mode", INT), keep_zero=("mode",),
    ),
    "ProjectedVolumeSource": _message(_f(1, "sources", "VolumeProjection", repeated=True), _f(2, "defaultMode", INT),
                                      keep_zero=("defaultMode",)),
    "VolumeProjection": _message(
        _f(1, "secret", "SecretProjection"), _f(2, "downwardAPI", "DownwardAPIProjection"),
        _f(3, "configMap", "ConfigMapProjection"), _f(4, "serviceAccountToken", "ServiceAccountTokenProjection"),
    ),
    "SecretProjection": _PROJECTION,
    "ConfigMapProjection": _PROJECTION,
    "DownwardAPIProjection": _message(_f(1, "items", "DownwardAPIVolumeFile", repeated=True)),
    "ServiceAccountTokenProjection": _message(
        _f(1, "audience", STRING), _f(2, "expirationSeconds", INT), _f(3, "path", STRING),
        keep_zero=("expirationSeconds",),
    ),
}

MESSAGES: dict[str, Message] = {
    "ObjectMeta": _message(
        _f(1, "name", STRING), _f(2, "generateName", STRING), _f(3, "namespace", STRING), _f(5, "uid", STRING),
        _f(6, "resourceVersion", STRING), _f(7, "generation", INT), _f(8, "creationTimestamp", TIME),
        _f(9, "deletionTimestamp", TIME), _f(10, "deletionGracePeriodSeconds", INT),
        _f(11, "labels", STRING, map_value=STRING), _f(12, "annotations", STRING, map_value=STRING),
        _f(13, "ownerReferences", "OwnerReference", repeated=True), _f(14, "finalizers", STRING, repeated=True),
    ),
    "OwnerReference": _message(
        _f(1, "kind", STRING), _f(3, "name", STRING), _f(4, "uid", STRING), _f(5, "apiVersion", STRING),
        _f(6, "controller", BOOL), _f(7, "blockOwnerDeletion", BOOL),
    ),
    "Namespace": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "NamespaceSpec")),
    "NamespaceSpec": _message(_f(1, "finalizers", STRING, repeated=True)),
    "ConfigMap": _message(
        _f(1, "metadata", "ObjectMeta"), _f(2, "data", STRING, map_value=STRING),
        _f(3, "binaryData", STRING, map_value=BYTES), _f(4, "immutable", BOOL), keep_zero=("immutable",),
    ),
    "Secret": _message(
        _f(1, "metadata", "ObjectMeta"), _f(2, "data", STRING, map_value=BYTES), _f(3, "type", STRING),
        _f(4, "stringData", STRING, map_value=STRING), _f(5, "immutable", BOOL), keep_zero=("immutable",),
    ),
    "ServiceAccount": _message(
        _f(1, "metadata", "ObjectMeta"), _f(4, "automountServiceAccountToken", BOOL),
        keep_zero=("automountServiceAccountToken",),
    ),
    "Service": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "ServiceSpec")),
    "ServiceSpec": _message(
        _f(1, "ports", "ServicePort", repeated=True), _f(2, "selector", STRING, map_value=STRING),
        _f(3, "clusterIP", STRING), _f(4, "type", STRING), _f(5, "externalIPs", STRING, repeated=True),
        _f(7, "sessionAffinity", STRING), _f(10, "externalName", STRING), _f(18, "clusterIPs", STRING, repeated=True),
    ),
    "ServicePort": _message(
        _f(1, "name", STRING), _f(2, "protocol", STRING), _f(3, "port", INT), _f(4, "targetPort", INT_OR_STRING),
        _f(5, "nodePort", INT), _f(6, "appProtocol", STRING), keep_zero=("port",),
    ),
    "SelfSubjectAccessReview": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "SelfSubjectAccessReviewSpec")),
    "SelfSubjectAccessReviewSpec": _message(
        _f(1, "resourceAttributes", "ResourceAttributes"), _f(2, "nonResourceAttributes", "NonResourceAttributes"),
    ),
    "SubjectAccessReview": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "SubjectAccessReviewSpec")),
    "SubjectAccessReviewSpec": _message(
        _f(1, "resourceAttributes", "ResourceAttributes"), _f(2, "nonResourceAttributes", "NonResourceAttributes"),
        _f(3, "user", STRING), _f(4, "groups", STRING, repeated=True), _f(6, "uid", STRING),
    ),
    "ResourceAttributes": _message(
        _f(1, "namespace", STRING), _f(2, "verb", STRING), _f(3, "group", STRING), _f(4, "version", STRING),
        _f(5, "resource", STRING), _f(6, "subresource", STRING), _f(7, "name", STRING),
    ),
    "NonResourceAttributes": _message(_f(1, "path", STRING), _f(2, "verb", STRING)),
    "SelfSubjectReview": _message(_f(1, "metadata", "ObjectMeta")),
    "Role": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "rules", "PolicyRule", repeated=True)),
    "ClusterRole": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "rules", "PolicyRule", repeated=True)),
    "PolicyRule": _message(
        _f(1, "verbs", STRING, repeated=True), _f(2, "apiGroups", STRING, repeated=True),
        _f(3, "resources", STRING, repeated=True), _f(4, "resourceNames", STRING, repeated=True),
        _f(5, "nonResourceURLs", STRING, repeated=True),
    ),
    "RoleBinding": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "subjects", "Subject", repeated=True),
                            _f(3, "roleRef", "RoleRef")),
    "ClusterRoleBinding": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "subjects", "Subject", repeated=True),
                                   _f(3, "roleRef", "RoleRef")),
    "Subject": _message(_f(1, "kind", STRING), _f(2, "apiGroup", STRING), _f(3, "name", STRING),
                        _f(4, "namespace", STRING)),
    "RoleRef": _message(_f(1, "apiGroup", STRING), _f(2, "kind", STRING), _f(3, "name", STRING)),
    "SelfSubjectRulesReview": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "SelfSubjectRulesReviewSpec")),
    "SelfSubjectRulesReviewSpec": _message(_f(1, "namespace", STRING)),
    "DeleteOptions": _message(
        _f(1, "gracePeriodSeconds", INT), _f(2, "preconditions", "Preconditions"), _f(3, "orphanDependents", BOOL),
        _f(4, "propagationPolicy", STRING), _f(5, "dryRun", STRING, repeated=True),
        keep_zero=("gracePeriodSeconds", "orphanDependents"),
    ),
    "Preconditions": _message(_f(1, "uid", STRING), _f(2, "resourceVersion", STRING)),
    "TokenRequest": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "TokenRequestSpec")),
    "TokenRequestSpec": _message(
        _f(1, "audiences", STRING, repeated=True), _f(4, "expirationSeconds", INT),
    ),
    **WORKLOAD_MESSAGES,
}

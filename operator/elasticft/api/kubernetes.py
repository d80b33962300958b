"""Field formats of the Kubernetes objects that spec fields are copied into (Pod, Service, PVC).

Each type checks a value as the API server checks it where it lands (apimachinery's
`validation.IsQualifiedName`, `IsValidLabelValue`, `IsDNS1123Subdomain`, `IsEnvVarName`, resource
quantities), so a bad value is rejected at the FineTuneJob, naming the field the user wrote, instead of
failing later at pod or claim creation. The same patterns go into the CRD's schema.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, PlainValidator, WithJsonSchema

INT64_MAX = 2**63 - 1

# A resource quantity without a sign: requests, limits and claim sizes must not be negative.
QUANTITY_PATTERN = r"^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$"
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN_PATTERN = rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$"
# `prefix/name` or `name`: the prefix a DNS subdomain, the name at most 63 characters.
QUALIFIED_NAME_PATTERN = rf"^({_DNS_LABEL}(\.{_DNS_LABEL})*/)?{_NAME}$"
LABEL_VALUE_PATTERN = rf"^({_NAME})?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# A NUL byte cannot be passed through exec's environment.
ENV_VALUE_PATTERN = r"^[^\x00]*$"

# What each pattern means, for error messages a user can act on.
PATTERN_RULES = {
    QUANTITY_PATTERN: "must be a quantity such as 2, 500m or 8Gi, never negative",
    DNS_SUBDOMAIN_PATTERN: "must be a DNS-1123 subdomain: lower case alphanumerics, '-' and '.', "
                           "starting and ending alphanumeric",
    QUALIFIED_NAME_PATTERN: "must be a label key: an optional DNS-subdomain prefix and '/', then at most 63 "
                            "alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
    LABEL_VALUE_PATTERN: "must be a label value: empty, or at most 63 alphanumerics, '-', '_' or '.', "
                         "starting and ending alphanumeric",
    ENV_NAME_PATTERN: "must be an environment variable name: letters, digits, '-', '_' or '.', not starting "
                      "with a digit (no '=')",
    ENV_VALUE_PATTERN: "must not contain a NUL byte",
}


def _quantity(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX:
        return value
    if isinstance(value, str) and re.match(QUANTITY_PATTERN, value):
        return value
    raise ValueError(PATTERN_RULES[QUANTITY_PATTERN])


Int64 = Annotated[int, Field(le=INT64_MAX)]
Quantity = Annotated[
    int | str,
    PlainValidator(_quantity),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                              {"type": "string", "pattern": QUANTITY_PATTERN}]}),
]
"""A Kubernetes resource quantity (`2`, `500m`, `8Gi`), never negative."""
QualifiedName = Annotated[str, Field(min_length=1, max_length=317, pattern=QUALIFIED_NAME_PATTERN)]
"""A label or resource key (`karpenter.sh/capacity-type`, `nvidia.com/gpu`); the 317 characters are
a 253-character prefix, the slash and a 63-character name."""
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""Names of ConfigMaps, PersistentVolumeClaims and StorageClasses."""
EnvName = Annotated[str, Field(min_length=1, pattern=ENV_NAME_PATTERN)]
EnvValue = Annotated[str, Field(pattern=ENV_VALUE_PATTERN)]
Labels = dict[QualifiedName, LabelValue]

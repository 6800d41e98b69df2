"""What one job pod asks for, from the job spec and the hardware catalog; checks of bad input.

Everything here is pure and raises :class:`aicloud.errors.InvalidSpec` naming the field, so
that a job the cluster can never run is refused before anything is created.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from aicloud.catalog import (
    GPU_RESOURCE,
    TPU_RESOURCE,
    Catalog,
    CatalogError,
    Profile,
    pod_resources,
)
from aicloud.errors import InvalidSpec
from aicloud.spec import Framework, JobKind, JobSpec

# The image reference grammar of distribution/reference (what the kubelet accepts).
_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_COMPONENT}(?:\.{_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
MAX_IMAGE_NAME = 255


def check_image(image: str, field_name: str = "image") -> str:
    """Return ``image`` if it is a valid image reference, else :class:`InvalidSpec`."""
    match = IMAGE_REFERENCE.match(image)
    if match is None:
        raise InvalidSpec(
            field_name,
            f"{image!r} is not a valid image reference "
            "(like ghcr.io/org/name:tag or name@sha256:<hex>; lower-case repository names)",
        )
    if len(match["name"]) > MAX_IMAGE_NAME:
        raise InvalidSpec(field_name, f"the image name is longer than {MAX_IMAGE_NAME} characters")
    return image


@dataclass(frozen=True)
class PodShape:
    """One pod's resources, placement and image."""

    image: str
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cpu(self) -> float | None:
        """The pod's CPU limit in cores, if it has one."""
        value = self.limits.get("cpu")
        if value is None:
            return None
        return float(value[:-1]) / 1000 if value.endswith("m") else float(value)

    def threads(self, processes: int) -> int | None:
        """CPU threads per process when ``processes`` share the pod (None: no CPU limit)."""
        cpu = self.cpu
        return None if cpu is None else max(1, math.floor(cpu / max(1, processes)))

    @property
    def accelerator(self) -> str | None:
        """The extended resource the pod asks for, if any."""
        return next((name for name in self.limits if "/" in name), None)


@dataclass(frozen=True)
class Images:
    """Default worker images, when neither the spec nor the profile names one."""

    cpu: str
    gpu: str


def _accelerators(catalog: Catalog) -> set[str]:
    return {p.accelerator for p in catalog.profiles if p.accelerator}


def _profile(spec: JobSpec, catalog: Catalog) -> Profile | None:
    if spec.resources.profile is None:
        return None
    try:
        return catalog.get(spec.resources.profile)
    except CatalogError as e:
        raise InvalidSpec("resources.profile", str(e)) from None


def _profile_shape(spec: JobSpec, profile: Profile) -> dict[str, Any]:
    """The profile's pod resources; the spec may only restate its accelerator."""
    resources = spec.resources
    if resources.accelerator and resources.accelerator != profile.accelerator:
        raise InvalidSpec(
            "resources.accelerator",
            f"profile {profile.slug!r} has {profile.accelerator or 'no accelerator'}, "
            f"not {resources.accelerator}",
        )
    if resources.accelerator_count and resources.accelerator_count != profile.accelerator_count:
        raise InvalidSpec(
            "resources.accelerator_count",
            f"profile {profile.slug!r} gives {profile.accelerator_count} per node, "
            f"not {resources.accelerator_count}",
        )
    if profile.tpu is not None and resources.nodes != profile.tpu.hosts:
        raise InvalidSpec(
            "resources.nodes",
            f"profile {profile.slug!r} is a TPU slice of {profile.tpu.hosts} host(s) "
            f"({profile.tpu.topology}); set nodes to {profile.tpu.hosts}",
        )
    shape = pod_resources(profile)
    # The spec's cpu and memory, when given, replace the profile's.
    if resources.cpu is not None:
        shape["requests"]["cpu"] = shape["limits"]["cpu"] = f"{resources.cpu:g}"
    if resources.memory is not None:
        shape["requests"]["memory"] = shape["limits"]["memory"] = resources.memory
    return shape


def _plain_shape(spec: JobSpec, catalog: Catalog) -> dict[str, Any]:
    """Resources from the spec alone; the accelerator must be one the catalog offers."""
    resources = spec.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    if resources.cpu is not None:
        requests["cpu"] = limits["cpu"] = f"{resources.cpu:g}"
    if resources.memory is not None:
        requests["memory"] = limits["memory"] = resources.memory
    accelerator = resources.accelerator
    if accelerator:
        offered = _accelerators(catalog)
        if accelerator not in offered:
            raise InvalidSpec(
                "resources.accelerator",
                f"{accelerator} is not in the hardware catalog; offered: "
                + (", ".join(sorted(offered)) or "none"),
            )
        if accelerator == TPU_RESOURCE:
            raise InvalidSpec(
                "resources.profile", "TPU jobs need a TPU profile (it names the slice topology)"
            )
        if resources.accelerator_count == 0:
            raise InvalidSpec("resources.accelerator_count", f"how many {accelerator} per node?")
        requests[accelerator] = limits[accelerator] = str(resources.accelerator_count)
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return {"requests": requests, "limits": limits, "node_selector": {}, "tolerations": tolerations}


def pod_shape(spec: JobSpec, catalog: Catalog, images: Images) -> PodShape:
    """The resources, placement and image of each of ``spec``'s pods."""
    profile = _profile(spec, catalog)
    shape = _profile_shape(spec, profile) if profile else _plain_shape(spec, catalog)
    if spec.image is not None:
        image = check_image(spec.image)
    elif profile is not None and profile.image is not None:
        image = check_image(catalog.image_for(profile), "resources.profile")
    else:
        image = images.gpu if any("/" in name for name in shape["limits"]) else images.cpu
    return PodShape(image=image, **shape)


def check_quota(spec: JobSpec, shape: PodShape, catalog: Catalog, max_nodes: int) -> None:
    """Refuse more nodes than a job may have, or more GPUs than any group may hold."""
    nodes = spec.resources.nodes
    if nodes > max_nodes:
        raise InvalidSpec(
            "resources.nodes",
            f"{nodes} nodes exceed this cluster's quota of {max_nodes} nodes per job",
        )
    accelerator = shape.accelerator
    if accelerator and accelerator != TPU_RESOURCE and catalog.gpu_quota:
        wanted = nodes * int(shape.limits[accelerator])
        most = max(catalog.gpu_quota.values())
        if wanted > most:
            raise InvalidSpec(
                "resources.nodes",
                f"{nodes} nodes x {shape.limits[accelerator]} {accelerator} = {wanted} GPUs "
                f"exceed the largest GPU quota of the catalog ({most})",
            )


def check_shape(spec: JobSpec) -> None:
    """Job shapes that have no Kubernetes form."""
    resources = spec.resources
    if spec.framework is Framework.tensorflow and resources.procs_per_node != 1:
        raise InvalidSpec(
            "resources.procs_per_node",
            "TensorFlow jobs on Kubernetes run one worker per pod (it uses all of the pod's "
            "GPUs); set procs_per_node to 1 and nodes to the number of workers",
        )
    if spec.kind is JobKind.train and spec.framework is Framework.none:
        raise InvalidSpec("framework", "train jobs need framework torch or tensorflow")
    if spec.kind is JobKind.infer and resources.procs_per_node != 1:
        raise InvalidSpec(
            "resources.procs_per_node",
            "infer jobs on Kubernetes run one worker per pod; set procs_per_node to 1 and "
            "nodes to the number of workers",
        )

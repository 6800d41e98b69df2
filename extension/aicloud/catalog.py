"""The hardware catalog: one YAML file that the admin keeps, read by the hub and the jobs.

It lists the hardware profiles users may pick (CPU sizes, NVIDIA GPU types and counts, MIG
slices, GKE TPU slices), the images, who may use each profile and the per-group GPU quotas.
The hub turns it into KubeSpawner's ``profile_list``; the Kubernetes backend uses the same
entries for job pods. Everything here is pure: parsing, validation and the pod resources
(limits, node selectors, tolerations) that a profile means. Nothing talks to a cluster.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from aicloud.spec import MEMORY, StrictModel

SLUG = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
GPU_RESOURCE = "nvidia.com/gpu"
TPU_RESOURCE = "google.com/tpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set by NVIDIA GPU feature discovery
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
MIG_NAME = re.compile(r"^[1-7]g\.[0-9]+gb(\.me)?$")


class CatalogError(ValueError):
    """The catalog is not valid; the message names the profile and the field."""


class TPUGeneration(StrictModel):
    """What GKE allows for one TPU accelerator (``cloud.google.com/gke-tpu-accelerator``)."""

    dimensions: Literal[2, 3]
    chips_per_host: int  # on multi-host slices; single-host slices use all their chips
    single_host: frozenset[str]  # topologies that fit on one VM


# GKE's TPU accelerators (https://cloud.google.com/kubernetes-engine/docs/concepts/tpus).
TPU_GENERATIONS: dict[str, TPUGeneration] = {
    "tpu-v4-podslice": TPUGeneration(
        dimensions=3, chips_per_host=4, single_host=frozenset({"2x2x1"})
    ),
    "tpu-v5-lite-podslice": TPUGeneration(
        dimensions=2, chips_per_host=4, single_host=frozenset({"1x1", "2x2", "2x4"})
    ),
    "tpu-v5p-slice": TPUGeneration(
        dimensions=3, chips_per_host=4, single_host=frozenset({"2x2x1"})
    ),
    "tpu-v6e-slice": TPUGeneration(
        dimensions=2, chips_per_host=4, single_host=frozenset({"1x1", "2x2", "2x4"})
    ),
}


class GPU(StrictModel):
    """NVIDIA GPUs: whole devices of one product, or MIG slices of one profile."""

    count: int = Field(1, ge=1, le=16)
    product: str | None = Field(
        None,
        max_length=63,
        description="Node label value of nvidia.com/gpu.product, e.g. NVIDIA-A100-SXM4-80GB.",
    )
    mig: str | None = Field(None, description="MIG profile, e.g. 1g.10gb (mixed strategy).")

    @field_validator("mig")
    @classmethod
    def _check_mig(cls, value: str | None) -> str | None:
        if value is not None and not MIG_NAME.match(value):
            raise ValueError(f"{value!r} is not a MIG profile name like 1g.10gb or 3g.40gb")
        return value

    @property
    def resource(self) -> str:
        """The extended resource the pod asks for."""
        return f"nvidia.com/mig-{self.mig}" if self.mig else GPU_RESOURCE


class TPU(StrictModel):
    """A GKE TPU slice: accelerator type and topology, e.g. tpu-v5-lite-podslice 2x4."""

    accelerator: str
    topology: str = Field(pattern=r"^[1-9][0-9]*(x[1-9][0-9]*){1,2}$")
    chips: int | None = Field(None, ge=1, description="Total chips; checked against topology.")

    @model_validator(mode="after")
    def _check_shape(self) -> TPU:
        generation = TPU_GENERATIONS.get(self.accelerator)
        if generation is None:
            known = ", ".join(sorted(TPU_GENERATIONS))
            raise ValueError(f"accelerator {self.accelerator!r} is not one of: {known}")
        dims = self.topology.split("x")
        if len(dims) != generation.dimensions:
            raise ValueError(
                f"topology {self.topology!r} of {self.accelerator} needs "
                f"{generation.dimensions} dimensions"
            )
        total = math.prod(int(d) for d in dims)
        if self.chips is not None and self.chips != total:
            raise ValueError(
                f"topology {self.topology} has {total} chips, not the {self.chips} given"
            )
        if not self.single_host and total % generation.chips_per_host:
            raise ValueError(
                f"topology {self.topology} ({total} chips) does not split into hosts of "
                f"{generation.chips_per_host} chips"
            )
        return self

    @property
    def total_chips(self) -> int:
        """Chips in the whole slice."""
        return math.prod(int(d) for d in self.topology.split("x"))

    @property
    def single_host(self) -> bool:
        """Whether the slice fits on one VM (one pod)."""
        return self.topology in TPU_GENERATIONS[self.accelerator].single_host

    @property
    def chips_per_host(self) -> int:
        """The ``google.com/tpu`` limit of each pod: all chips on one host, else the rule's."""
        if self.single_host:
            return self.total_chips
        return TPU_GENERATIONS[self.accelerator].chips_per_host

    @property
    def hosts(self) -> int:
        """VMs (pods) in the slice."""
        return self.total_chips // self.chips_per_host


class Toleration(StrictModel):
    """A Kubernetes toleration, in the API's own field names."""

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Profile(StrictModel):
    """One hardware profile users can pick for their server or a job."""

    slug: str = Field(pattern=SLUG, max_length=63)
    display_name: str = Field(min_length=1, max_length=100)
    description: str = ""
    default: bool = False
    image: str | None = Field(None, description="An image key from `images`, or a reference.")
    cpu: float | None = Field(None, gt=0, le=1024)
    memory: str | None = None
    gpu: GPU | None = None
    tpu: TPU | None = None
    groups: list[str] = Field(
        default_factory=list, description="Hub groups that may use it; empty means everyone."
    )
    idle_timeout_seconds: int | None = Field(
        None, ge=60, description="Culling: idle seconds before the server stops."
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    kubespawner_override: dict[str, Any] = Field(
        default_factory=dict, description="Extra KubeSpawner traits (checked by the hub)."
    )

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str | None) -> str | None:
        if value is not None and not MEMORY.match(value):
            raise ValueError("must be a quantity like 512Mi, 16Gi or 2G")
        return value

    @model_validator(mode="after")
    def _one_accelerator(self) -> Profile:
        if self.gpu and self.tpu:
            raise ValueError("a profile has gpu or tpu, not both")
        return self

    @property
    def accelerator(self) -> str | None:
        """The extended resource name of the profile's accelerator, if any."""
        if self.gpu:
            return self.gpu.resource
        if self.tpu:
            return TPU_RESOURCE
        return None

    @property
    def accelerator_count(self) -> int:
        """Accelerators per pod."""
        if self.gpu:
            return self.gpu.count
        if self.tpu:
            return self.tpu.chips_per_host
        return 0

    @property
    def gpus(self) -> int:
        """GPUs (whole or MIG slices) that count against a group's quota."""
        return self.gpu.count if self.gpu else 0


class Catalog(StrictModel):
    """The whole catalog: images, profiles, and GPU quotas per hub group."""

    images: dict[str, str] = Field(default_factory=dict)
    profiles: list[Profile] = Field(min_length=1)
    gpu_quota: dict[str, int] = Field(
        default_factory=dict, description="Most GPUs a hub group's users hold at once."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        slugs = [p.slug for p in self.profiles]
        duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
        if duplicates:
            raise ValueError(f"profile slugs must be unique: {', '.join(duplicates)}")
        if sum(p.default for p in self.profiles) > 1:
            raise ValueError("at most one profile may be the default")
        for profile in self.profiles:
            image = profile.image
            if image and image not in self.images and not ("/" in image or ":" in image):
                raise ValueError(
                    f"profile {profile.slug}: image {image!r} is neither a key "
                    f"of images ({', '.join(sorted(self.images)) or 'none'}) nor a reference"
                )
        return self

    def get(self, slug: str) -> Profile:
        """The profile named ``slug``; :class:`CatalogError` lists the known ones."""
        for profile in self.profiles:
            if profile.slug == slug:
                return profile
        raise CatalogError(
            f"unknown profile {slug!r}; known: {', '.join(p.slug for p in self.profiles)}"
        )

    def for_groups(self, groups: set[str] | list[str], admin: bool = False) -> list[Profile]:
        """The profiles a user in ``groups`` may pick (an admin may pick all)."""
        groups = set(groups)
        return [p for p in self.profiles if admin or not p.groups or groups & set(p.groups)]

    def image_for(self, profile: Profile, default: str | None = None) -> str | None:
        """The image reference of ``profile`` (an ``images`` key resolved), or ``default``."""
        if profile.image is None:
            return default
        return self.images.get(profile.image, profile.image)

    def quota_for(self, groups: set[str] | list[str]) -> int | None:
        """The largest GPU quota among ``groups`` (None: no quota applies)."""
        limits = [self.gpu_quota[g] for g in groups if g in self.gpu_quota]
        return max(limits) if limits else None


def pod_resources(profile: Profile) -> dict[str, Any]:
    """What ``profile`` means for one pod: requests, limits, node selector and tolerations.

    GPUs: ``nvidia.com/gpu`` (or ``nvidia.com/mig-<profile>``) limits, the product's node
    label and the usual ``nvidia.com/gpu`` taint. TPUs: ``google.com/tpu`` limits of the
    chips per host, and GKE's accelerator and topology node labels and taint.
    """
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    selector = dict(profile.node_selector)
    tolerations = [t.model_dump(exclude_none=True) for t in profile.tolerations]
    if profile.cpu is not None:
        requests["cpu"] = limits["cpu"] = f"{profile.cpu:g}"
    if profile.memory is not None:
        requests["memory"] = limits["memory"] = profile.memory
    if profile.gpu is not None:
        limits[profile.gpu.resource] = str(profile.gpu.count)
        if profile.gpu.product:
            selector.setdefault(GPU_PRODUCT_LABEL, profile.gpu.product)
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if profile.tpu is not None:
        limits[TPU_RESOURCE] = str(profile.tpu.chips_per_host)
        selector.setdefault(TPU_ACCELERATOR_LABEL, profile.tpu.accelerator)
        selector.setdefault(TPU_TOPOLOGY_LABEL, profile.tpu.topology)
        tolerations.append({"key": TPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    for name, value in limits.items():
        if "/" in name:  # extended resources: requests equal limits
            requests[name] = value
    return {
        "requests": requests,
        "limits": limits,
        "node_selector": selector,
        "tolerations": tolerations,
    }


def _describe(error: ValidationError, data: Any) -> str:
    """One line per problem, naming the profile slug where there is one."""
    lines = []
    for problem in error.errors():
        location = list(problem["loc"])
        if len(location) >= 2 and location[0] == "profiles" and isinstance(location[1], int):
            try:
                slug = data["profiles"][location[1]].get("slug") or f"#{location[1]}"
            except (KeyError, IndexError, TypeError, AttributeError):
                slug = f"#{location[1]}"
            location[:2] = [f"profiles[{slug}]"]
        where = ".".join(str(part) for part in location) or "catalog"
        lines.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


def parse_catalog(data: Any, source: str = "catalog") -> Catalog:
    """A :class:`Catalog` from parsed YAML; :class:`CatalogError` names what is wrong."""
    try:
        return Catalog.model_validate(data)
    except ValidationError as e:
        raise CatalogError(f"{source}: {_describe(e, data)}") from None


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate the catalog file at ``path``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise CatalogError(f"{path}: cannot read the catalog: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not valid YAML: {e}") from None
    return parse_catalog(data, str(path))

"""The job spec: one typed model used by the REST API, the CLI, the magics and the store.

Policy fields use the Databricks names (``timeout_seconds``, ``max_retries``,
``min_retry_interval_millis``, ``retry_on_timeout``, ``idempotency_token``) and, unlike
jupyter-scheduler, every one of them is enforced by the job service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import Enum
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aicloud.inference.options import InferenceOptions, check_for_kind

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|K|M|G|T)?$")
MEMORY_UNITS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
MAX_MEMORY_BYTES = 64 * 2**40
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
#: Environment variables whose values API output shows as ``MASK``: shell-style patterns,
#: matched against the upper-cased name. ``*KEY*`` also hides e.g. ``KEYBOARD`` and
#: ``MONKEY``; hiding a harmless value costs little, showing a key costs much. Names the rule
#: misses can be listed in a spec's ``secret_env``. Documented in docs/users/jobs.md.
SECRET_ENV_PATTERNS = (
    "PASS",
    "PASS_*",
    "*_PASS",
    "*_PASS_*",
    "*PASSWORD*",
    "*PASSWD*",
    "*PASSPHRASE*",
    "*_PWD",
    "PAT",
    "*_PAT",
    "*TOKEN*",
    "*SECRET*",
    "*KEY*",
    "*CREDENTIAL*",
    "*AUTH",
    "*AUTH_*",
    "*AUTHORIZATION*",
)
#: What API output shows in place of a secret value.
MASK = "***"


def _no_nul(value: str) -> str:
    """Refuse NUL, which no argv, path or environment value can hold."""
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Argument = Annotated[str, Field(max_length=16_384), AfterValidator(_no_nul)]
EnvValue = Annotated[str, Field(max_length=32_768), AfterValidator(_no_nul)]


class JobKind(str, Enum):
    """What a job does; each kind has a launcher that turns the spec into processes."""

    train = "train"
    infer = "infer"
    notebook = "notebook"
    serve = "serve"
    command = "command"


class Framework(str, Enum):
    """The engine a job's workers use."""

    torch = "torch"
    tensorflow = "tensorflow"
    none = "none"


class JobStatus(str, Enum):
    """``queued → starting → running → succeeded | failed | cancelled``."""

    queued = "queued"
    starting = "starting"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether a job in this status will never change again."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
ACTIVE_STATUSES = frozenset({JobStatus.queued, JobStatus.starting, JobStatus.running})


class ReasonCode(str, Enum):
    """Why a job or attempt ended; tells infrastructure failures from user-code errors."""

    succeeded = "succeeded"
    user_error = "user_error"
    timeout = "timeout"
    cancelled = "cancelled"
    infrastructure = "infrastructure"
    skipped = "skipped"


class StrictModel(BaseModel):
    """A model that refuses unknown fields and silent coercion of obvious mistakes."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class Resources(StrictModel):
    """What a job asks for: nodes, processes per node, accelerators, CPU and memory."""

    nodes: int = Field(1, ge=1, le=1024, description="Number of nodes (pods on Kubernetes).")
    min_nodes: int | None = Field(
        None, ge=1, le=1024, description="Elastic jobs: fewest nodes to run on (nodes is the most)."
    )
    procs_per_node: int = Field(1, ge=1, le=256, description="Worker processes per node.")
    accelerator: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-]+$",
        description="Extended resource: nvidia.com/gpu, google.com/tpu, nvidia.com/mig-1g.10gb.",
    )
    accelerator_count: int = Field(0, ge=0, le=64, description="Accelerators per node.")
    cpu: float | None = Field(None, gt=0, le=1024, description="CPU cores per node.")
    memory: str | None = Field(None, description="Memory per node, e.g. 16Gi.")
    profile: str | None = Field(
        None,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        description="Hardware profile slug.",
    )

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = MEMORY.match(value)
        if not match:
            raise ValueError("must be a quantity like 512Mi, 16Gi or 2G")
        size = float(match["number"]) * MEMORY_UNITS[match["unit"]]
        if size <= 0 or size > MAX_MEMORY_BYTES:
            raise ValueError("must be more than 0 and at most 64Ti")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Resources:
        if self.accelerator_count and not self.accelerator:
            raise ValueError("accelerator_count needs accelerator (e.g. nvidia.com/gpu)")
        if self.min_nodes is not None and self.min_nodes > self.nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) must not exceed nodes ({self.nodes})")
        return self

    @property
    def world_size(self) -> int:
        """Total worker processes."""
        return self.nodes * self.procs_per_node


class Origin(StrictModel):
    """Where a job was launched from: a notebook (its path as its kernel knows it) and its cell.

    The magics fill it in, so that ``%aicloud jobs --here`` and ``attach`` work after a restart.
    """

    notebook: Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_no_nul)]
    cell_id: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")


class JobSpec(StrictModel):
    """Everything needed to run a job, on this machine or on a cluster.

    Exactly one of ``command``, ``script``, ``module``, ``source`` or ``notebook`` says what runs.
    """

    name: ShortText | None = None
    kind: JobKind = JobKind.command
    framework: Framework = Framework.none

    command: list[Argument] | None = Field(
        None, min_length=1, max_length=4096, description="An argv to run as is."
    )
    script: Argument | None = Field(None, description="A Python script path, relative to cwd.")
    module: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", max_length=200, description="A module to run."
    )
    source: str | None = Field(None, max_length=1_000_000, description="Inline Python source.")
    notebook: Argument | None = Field(None, description="A notebook path, relative to cwd.")
    args: list[Argument] = Field(default_factory=list, max_length=4096)
    parameters: dict[str, Any] = Field(default_factory=dict, description="Notebook parameters.")
    kernel: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Notebook jobs: the kernel to run in (default: the notebook's own).",
    )

    cwd: Argument | None = Field(
        None, description="Working directory, relative to the server's root directory."
    )
    env: dict[str, EnvValue] = Field(default_factory=dict)
    secret_env: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=256,
        description="Names in env whose values are secret although the naming rule misses them.",
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        default_factory=list, max_length=32
    )
    resources: Resources = Field(default_factory=Resources)

    backend: str = Field("local", pattern=r"^[a-z][a-z0-9_-]*$", max_length=40)
    image: Argument | None = Field(None, description="Container image, for cluster backends.")

    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS)
    max_retries: int = Field(0, ge=0, le=100)
    min_retry_interval_millis: int = Field(0, ge=0, le=24 * 3600 * 1000)
    retry_on_timeout: bool = False
    max_restarts: int = Field(0, ge=0, le=100, description="Elastic restarts within an attempt.")
    idempotency_token: str | None = Field(None, min_length=1, max_length=64)
    origin: Origin | None = Field(None, description="The notebook and cell that launched it.")
    inference: InferenceOptions | None = Field(
        None, description="infer and serve jobs: the model, data and batching (their entry point)."
    )

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 256:
            raise ValueError("at most 256 variables")
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
            if name.startswith("AICLOUD_"):
                raise ValueError(f"{name} is set by aicloud and cannot be overridden")
        return value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: list[str], info: ValidationInfo) -> list[str]:
        env = info.data.get("env")
        if env is None:  # env itself was refused; that error says enough
            return value
        missing = [name for name in value if name not in env]
        if missing:
            raise ValueError(f"{', '.join(map(repr, missing))} not in env")
        return value

    @model_validator(mode="after")
    def _one_entrypoint(self) -> JobSpec:
        given = [f for f in ENTRYPOINT_FIELDS if getattr(self, f) is not None]
        if len(given) != 1:
            names = ", ".join(ENTRYPOINT_FIELDS)
            raise ValueError(f"exactly one of {names} is required (got {len(given)})")
        if self.kind is JobKind.notebook and self.notebook is None:
            raise ValueError("kind 'notebook' needs notebook")
        if self.notebook is not None and self.kind is not JobKind.notebook:
            raise ValueError("notebook is only for kind 'notebook'")
        if self.parameters and self.notebook is None:
            raise ValueError("parameters are only for notebook jobs")
        if self.kernel and self.notebook is None:
            raise ValueError("kernel is only for notebook jobs")
        if self.command is not None and self.args:
            raise ValueError("args go inside command when command is used")
        if self.kind in (JobKind.infer, JobKind.serve):
            if self.inference is None:
                raise ValueError(
                    f"kind: no launcher for kind {self.kind.value!r} without inference"
                    " (the model to load, and its options)"
                )
            check_for_kind(self.inference, self.kind.value)
        elif self.inference is not None:
            raise ValueError("inference is only for kinds 'infer' and 'serve'")
        return self

    @property
    def entrypoint(self) -> str:
        """The name of the field that says what runs."""
        return next(f for f in ENTRYPOINT_FIELDS if getattr(self, f) is not None)


ENTRYPOINT_FIELDS = ("command", "script", "module", "source", "notebook", "inference")


def is_secret_env(name: str, secret_env: Iterable[str] = ()) -> bool:
    """Whether API output hides the value of ``name``: the naming rule, or listed as secret."""
    upper = name.upper()
    return name in secret_env or any(fnmatchcase(upper, p) for p in SECRET_ENV_PATTERNS)


def redacted_env(env: dict[str, str], secret_env: Iterable[str] = ()) -> dict[str, str]:
    """Return ``env`` with the values of secret variables replaced with :data:`MASK`."""
    listed = set(secret_env)
    return {name: MASK if is_secret_env(name, listed) else v for name, v in env.items()}


def redacted_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored job spec (its JSON form) as API output shows it: secret values masked."""
    spec = dict(spec)
    if spec.get("env"):
        spec["env"] = redacted_env(spec["env"], spec.get("secret_env", ()))
    return spec


def unmasked_env(env: dict[str, Any], original: dict[str, str]) -> dict[str, Any]:
    """``env`` sent back from API output: a :data:`MASK` value keeps ``original``'s value."""
    return {
        name: original[name] if value == MASK and name in original else value
        for name, value in env.items()
    }


def rerun_spec(stored: dict[str, Any], overrides: dict[str, Any] | None = None) -> JobSpec:
    """The spec of a rerun: the stored (unmasked) spec with ``overrides`` on top.

    ``overrides`` replace top-level fields. In an overriding ``env``, a value of :data:`MASK`
    for a variable the original has keeps the original value, so a spec read back from the API
    can be sent back as is. The idempotency token is not carried over. Raises pydantic's
    ``ValidationError`` (strict, as for a submission).
    """
    spec = {k: v for k, v in stored.items() if k != "idempotency_token"}
    overrides = dict(overrides or {})
    env = overrides.get("env")
    if isinstance(env, dict):
        overrides["env"] = unmasked_env(env, stored.get("env") or {})
    spec.update(overrides)
    return JobSpec.model_validate_json(json.dumps(spec), strict=True)


class Overlap(str, Enum):
    """What a schedule does when a tick comes while ``max_concurrent_runs`` runs are active."""

    queue = "queue"
    skip = "skip"


class CatchUp(str, Enum):
    """Which ticks missed while the service was down fire when it is back."""

    none = "none"
    latest = "latest"
    all = "all"


WebhookURL = Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s/$.?#].[^\s]*$")]


class ScheduleSpec(StrictModel):
    """A job template and when to fire it: cron in an IANA time zone, with policies."""

    name: ShortText | None = None
    job: JobSpec
    cron: str = Field(max_length=200, description="Five cron fields, in the time zone.")
    timezone: str = Field("UTC", max_length=64)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    paused: bool = False
    max_concurrent_runs: int = Field(1, ge=1, le=100)
    overlap: Overlap = Overlap.queue
    catch_up: CatchUp = CatchUp.latest
    keep_last: int | None = Field(None, ge=1, le=100_000)
    webhook_url: WebhookURL | None = None
    snapshot: bool = Field(False, description="Run the notebook as it was when scheduled.")

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from aicloud.cron import check_timezone

        check_timezone(value)
        return value

    @model_validator(mode="after")
    def _check_window(self) -> ScheduleSpec:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        if self.snapshot and self.job.notebook is None:
            raise ValueError("snapshot is for notebook jobs")
        return self


class ScheduleUpdate(StrictModel):
    """A partial change to a schedule (PATCH)."""

    name: ShortText | None = None
    job: JobSpec | None = None
    cron: str | None = Field(None, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    paused: bool | None = None
    max_concurrent_runs: int | None = Field(None, ge=1, le=100)
    overlap: Overlap | None = None
    catch_up: CatchUp | None = None
    keep_last: int | None = Field(None, ge=1, le=100_000)
    webhook_url: WebhookURL | None = None

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        from aicloud.cron import check_timezone

        if value is not None:
            check_timezone(value)
        return value


class RunNow(StrictModel):
    """Fire a schedule now, with parameter overrides for a notebook job."""

    parameters: dict[str, Any] = Field(default_factory=dict)

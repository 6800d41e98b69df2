"""GPU leases on the local backend: no two running attempts get the same GPU."""

from __future__ import annotations

from dataclasses import dataclass, field

GPU = "nvidia.com/gpu"


@dataclass
class GPULeases:
    """Which of this machine's GPUs each running attempt holds (keyed by supervisor pid)."""

    devices: list[int]
    leases: dict[int, list[int]] = field(default_factory=dict)

    @property
    def free(self) -> list[int]:
        """GPUs no attempt holds, lowest first."""
        held = {gpu for gpus in self.leases.values() for gpu in gpus}
        return [gpu for gpu in self.devices if gpu not in held]

    def take(self, count: int) -> list[int] | None:
        """``count`` free GPUs, or None if there are not that many (nothing is reserved)."""
        free = self.free
        return free[:count] if len(free) >= count else None

    def hold(self, owner: int, gpus: list[int]) -> None:
        """Record that ``owner`` holds ``gpus`` (also after a restart of the service)."""
        if gpus:
            self.leases[owner] = list(gpus)

    def release(self, owner: int) -> None:
        """The attempt ended: its GPUs are free again."""
        self.leases.pop(owner, None)


def split(gpus: list[int], parts: int) -> list[list[int]]:
    """Divide ``gpus`` evenly among ``parts`` processes, in order."""
    if parts <= 0:
        return []
    share = len(gpus) // parts if len(gpus) >= parts else 0
    if share == 0:
        return [list(gpus) for _ in range(parts)] if gpus else [[] for _ in range(parts)]
    return [gpus[i * share : (i + 1) * share] for i in range(parts)]

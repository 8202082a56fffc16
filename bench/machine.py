"""The machine a benchmark ran on: CPU model and cores, SIMD, memory, library versions, load, GPU."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from verify_cli.cpu import SHOWN as SIMD_FLAGS  # the instruction-set features faceverify's choices depend on


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def usable_cores() -> int:
    """CPUs this process may run on (its affinity), which is what thread counts should follow."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine makes every figure noisier."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds used so far: by the whole machine (/proc/stat, since boot), and by this process and its
    finished children (os.times); None off Linux. Their differences over a run give what other work used."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    except (OSError, ValueError, IndexError):
        return None
    own = os.times()
    machine = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return machine, own.user + own.system + own.children_user + own.children_system


def others_cores(before: tuple[float, float] | None, after: tuple[float, float] | None,
                 seconds: float) -> float | None:
    """Cores that other processes kept busy on average between two `busy_cpu_seconds` readings."""
    if before is None or after is None or seconds <= 0:
        return None
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / seconds


@dataclass(frozen=True)
class Machine:
    """What a reader needs to compare our figures with theirs."""

    cpu: str
    cores: int
    logical: int
    simd: str
    memory_gib: float | None
    system: str
    python: str
    versions: dict[str, str]
    gpu: str | None

    def rows(self) -> list[tuple[str, str]]:
        """The machine as label/value rows for the report header."""
        memory = f"{self.memory_gib:.0f} GiB" if self.memory_gib else "unknown"
        rows = [
            ("CPU", self.cpu),
            ("cores", f"{self.cores} usable by this process ({self.logical} logical CPUs on the machine)"),
            ("SIMD", self.simd or "none of " + ", ".join(SIMD_FLAGS)),
            ("memory", memory),
            ("system", self.system),
            ("Python", self.python),
            ("versions", ", ".join(f"{k} {v}" for k, v in self.versions.items())),
            ("GPU", self.gpu or "none (torch.cuda.is_available() is False)"),
        ]
        return rows


def describe() -> Machine:
    """Read the machine: /proc/cpuinfo, the process's CPU affinity, installed versions, torch's CUDA device."""
    import onnxruntime as ort
    import torch

    info = _cpuinfo()
    cpu = info.get("model name") or platform.processor() or platform.machine()
    if info.get("cpu family") and info.get("model"):
        cpu += f" (family {info['cpu family']}, model {info['model']}, {info.get('cpu MHz', '?')} MHz)"
    flags = set(info.get("flags", "").split())
    versions = {
        "onnxruntime": f"{ort.__version__} ({_dist_name()})",
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
    }
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Machine(
        cpu=cpu,
        cores=usable_cores(),
        logical=os.cpu_count() or 1,
        simd=" ".join(f for f in SIMD_FLAGS if f in flags),
        memory_gib=_memory_gib(),
        system=f"{platform.system()} {platform.release()}",
        python=sys.version.split()[0],
        versions=versions,
        gpu=gpu,
    )


def _dist_name() -> str:
    """Which ONNX Runtime distribution is installed (the GPU build also carries the CPU provider)."""
    for name in ("onnxruntime-gpu", "onnxruntime"):
        if _version(name) != "not installed":
            return name
    return "unknown build"

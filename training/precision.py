"""Which number format a device computes fastest in, decided from what torch reports about it.

bf16 halves memory traffic and, on CPUs with AMX or AVX512-BF16, runs matrix
multiplies natively; elsewhere (AVX2-only CPUs such as AMD Zen 3) torch emulates
it and a training step is about eleven times slower than in fp32 (training/README.md).
"""

import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU's model name, for result files and weights cards."""
    try:  # Linux names the model here; platform.processor() is often empty there
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_runs_bf16_natively() -> bool:
    """True where torch reports AMX tiles or AVX512-BF16 on this CPU."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)  # private probes: absent in some torch releases
        if check is not None and check():
            return True
    return False


def autocast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays on ``device``: CUDA, and CPUs that run bf16 natively."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_runs_bf16_natively()


def describe_device(device: torch.device) -> str:
    """The device in words, for configs and weights cards."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {cpu_name()} ({torch.get_num_threads()} threads)"

"""The GPU as NVML sees it, for /health: the integration turns it into GPU sensors.

nvidia-ml-py is optional: without it, or without an NVIDIA driver, there is no GPU to report and
/health leaves ``gpu`` out. Each field that the driver will not give (power on some boards) is
null rather than failing the whole reading.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import threading
from typing import Any

_LOGGER = logging.getLogger(__name__)


class GpuReader:
    """Read GPU index's name, load, memory, temperature and power through NVML."""

    def __init__(self, index: int = 0) -> None:
        """Initialise NVML once; when that fails the reader reports no GPU for good."""
        self._index = index
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml  # noqa: PLC0415 - optional: nvidia-ml-py

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception as err:  # noqa: BLE001 - no module, no driver or no GPU: all mean none
            _LOGGER.info("No GPU reported in /health (NVML: %s)", err)

    @property
    def available(self) -> bool:
        """Return whether there is a GPU to report."""
        return self._nvml is not None

    def read(self) -> dict[str, Any] | None:
        """Return the GPU's state in the protocol's shape, or None without a GPU."""
        nvml = self._nvml
        if nvml is None:
            return None

        def attempt(call: Callable[..., Any], *args: Any) -> Any:
            try:
                return call(self._handle, *args)
            except Exception:  # noqa: BLE001 - a field the board does not support is null
                return None

        with self._lock:
            name = attempt(nvml.nvmlDeviceGetName)
            rates = attempt(nvml.nvmlDeviceGetUtilizationRates)
            memory = attempt(nvml.nvmlDeviceGetMemoryInfo)
            temperature = attempt(nvml.nvmlDeviceGetTemperature, 0)  # NVML_TEMPERATURE_GPU
            power = attempt(nvml.nvmlDeviceGetPowerUsage)  # milliwatts
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        return {
            "index": self._index,
            "name": name if isinstance(name, str) else None,
            "utilization": getattr(rates, "gpu", None),
            "memory_used_mb": _scaled(getattr(memory, "used", None), 1 / 2**20),
            "memory_total_mb": _scaled(getattr(memory, "total", None), 1 / 2**20),
            "temperature_c": temperature if isinstance(temperature, int | float) else None,
            "power_w": _scaled(power, 1 / 1000),
        }


def _scaled(value: object, factor: float) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * factor, 1)
    return None

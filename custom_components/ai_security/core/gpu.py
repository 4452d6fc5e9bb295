"""GPU readings for the hub's diagnostic sensors: NVML on this host, or the detector's report.

Users run the model servers on a GPU box; when that box is the Home Assistant host, NVML (the
`pynvml` module of nvidia-ml-py) reads the card directly. Otherwise the reference detector server
reports its GPU in GET /health, and that is used. Neither present: no GPU sensors at all.
"""

from collections.abc import Mapping
from dataclasses import dataclass
import importlib
import logging
import math
from typing import Any, Literal

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuReading:
    """One look at a GPU; a figure the source could not give is None."""

    source: Literal["nvml", "detector"]
    name: str | None
    utilization: float | None
    """Percent of the time a kernel ran over the driver's last sample period."""
    memory_used_mb: float | None
    memory_total_mb: float | None
    temperature_c: float | None
    power_w: float | None


def _number(value: object) -> float | None:
    """Return value as a finite float, or None (bools and text are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def gpu_from_report(report: Mapping[str, object]) -> GpuReading | None:
    """Return the GPU a detector's /health answer describes, or None when it names none.

    The reference server reports `gpu` as an object (name, utilization, memory_used_mb,
    memory_total_mb, temperature_c, power_w); a list of them is accepted too (the first is used).
    """
    gpu = report.get("gpu")
    if isinstance(gpu, list):
        gpu = gpu[0] if gpu else None
    if not isinstance(gpu, Mapping):
        return None
    reading = GpuReading(
        source="detector",
        name=str(gpu["name"]) if isinstance(gpu.get("name"), str) else None,
        utilization=_number(gpu.get("utilization")),
        memory_used_mb=_number(gpu.get("memory_used_mb")),
        memory_total_mb=_number(gpu.get("memory_total_mb")),
        temperature_c=_number(gpu.get("temperature_c")),
        power_w=_number(gpu.get("power_w")),
    )
    figures = (
        reading.utilization,
        reading.memory_used_mb,
        reading.memory_total_mb,
        reading.temperature_c,
        reading.power_w,
    )
    return reading if any(value is not None for value in figures) else None


class NvmlReader:
    """Reads the host's first NVIDIA GPU through NVML. Blocking: call it in the executor.

    open() says whether NVML is there at all (no module, no driver or no GPU: False, logged at
    debug, since most Home Assistant hosts have none). Each read() failure yields None for that
    figure, never an exception, as a sensor that cannot read goes unavailable by itself.
    """

    def __init__(self) -> None:
        """Nothing is loaded before open()."""
        self._nvml: Any = None
        self._handle: Any = None

    def open(self) -> bool:
        """Initialise NVML and pick GPU 0; return whether a GPU can be read."""
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            _LOGGER.debug("pynvml is not installed: no GPU readings from this host")
            return False
        try:
            nvml.nvmlInit()
        except Exception as err:  # noqa: BLE001 - NVMLError and anything a broken driver raises
            _LOGGER.debug("NVML is not available on this host: %s", err)
            return False
        try:
            if nvml.nvmlDeviceGetCount() < 1:
                nvml.nvmlShutdown()
                return False
            self._handle = nvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as err:  # noqa: BLE001
            _LOGGER.debug("NVML found no usable GPU: %s", err)
            nvml.nvmlShutdown()
            return False
        self._nvml = nvml
        return True

    def read(self) -> GpuReading | None:
        """Return GPU 0's figures now, or None when NVML is not open."""
        nvml, handle = self._nvml, self._handle
        if nvml is None:
            return None

        def attempt(fn: Any, *args: Any) -> Any:
            try:
                return fn(handle, *args)
            except Exception:  # noqa: BLE001 - one figure missing is not an error
                return None

        name = attempt(nvml.nvmlDeviceGetName)
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        rates = attempt(nvml.nvmlDeviceGetUtilizationRates)
        memory = attempt(nvml.nvmlDeviceGetMemoryInfo)
        temperature = attempt(nvml.nvmlDeviceGetTemperature, 0)  # NVML_TEMPERATURE_GPU
        power = attempt(nvml.nvmlDeviceGetPowerUsage)  # milliwatts
        return GpuReading(
            source="nvml",
            name=name if isinstance(name, str) else None,
            utilization=_number(getattr(rates, "gpu", None)),
            memory_used_mb=_scaled(getattr(memory, "used", None), 1 / 2**20),
            memory_total_mb=_scaled(getattr(memory, "total", None), 1 / 2**20),
            temperature_c=_number(temperature),
            power_w=_scaled(power, 1 / 1000),
        )

    def close(self) -> None:
        """Shut NVML down."""
        nvml, self._nvml, self._handle = self._nvml, None, None
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception:
                _LOGGER.debug("NVML shutdown failed", exc_info=True)


def _scaled(value: object, factor: float) -> float | None:
    number = _number(value)
    return None if number is None else round(number * factor, 1)

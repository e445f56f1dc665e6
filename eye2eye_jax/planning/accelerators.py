"""Published figures of the accelerators a run can be planned for, and their pod topologies.

One entry per chip (one JAX device): dense peak FLOP/s, HBM capacity and bandwidth, and the
bandwidth one device has for collectives inside its slice or host and between hosts. Every
figure is the vendor's, from the page in ``source``; figures derived from them say how.

``float32`` is the rate XLA runs float32 convolutions and matmuls at by default: JAX leans
toward speed, computing them as one bfloat16 pass on TPU and with TF32 tensor cores on recent
NVIDIA GPUs (https://docs.jax.dev/en/latest/201/precision.html). Sparsity figures are not used.

Topology names: ``v4-N`` and ``v5p-N`` count TensorCores (2 per chip, one JAX device per chip),
``v5e-N`` (or ``v5litepod-N``) counts chips, ``NxH100``, ``NxH200`` and ``NxA100-80GB`` count
GPUs (8 per host).
"""

from __future__ import annotations

import dataclasses
import math
import re

_GB, _GIB = 1e9, 2**30
_JAX_PRECISION = 'https://docs.jax.dev/en/latest/201/precision.html'


@dataclasses.dataclass(frozen=True)
class Chip:
  """One accelerator chip (one JAX device). Rates in FLOP/s and bytes/s."""
  name: str
  peak_flops_bf16: float
  peak_flops_fp32: float  # float32 as XLA runs it by default (see the module docstring)
  hbm_bytes: float
  hbm_bandwidth: float
  slice_bandwidth: float  # per chip, for collectives inside a slice (TPU ICI) or host (NVLink)
  host_bandwidth: float | None  # per chip between hosts (GPU: InfiniBand); None: ICI spans it
  devices_per_host: int
  cores_per_device: int  # TPU v4/v5p names count TensorCores, 2 per chip
  source: str
  notes: str = ''

  def peak_flops(self, dtype: str) -> float:
    """Peak FLOP/s for ``model.dtype`` ('bfloat16' or 'float32')."""
    if dtype not in ('bfloat16', 'float32'):
      raise ValueError(f"model.dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    return self.peak_flops_bf16 if dtype == 'bfloat16' else self.peak_flops_fp32


CHIPS = {
    # 275 TFLOP/s (bf16), 32 GiB HBM2 at 1200 GB/s. The page gives no per-chip ICI figure;
    # its all-reduce bandwidth per pod (1.1 PB/s over 4096 chips) is used per chip.
    'v4': Chip('TPU v4', 275e12, 275e12, 32 * _GIB, 1200 * _GB, 1.1e15 / 4096, None, 4, 2,
               'https://cloud.google.com/tpu/docs/v4',
               f'float32 as one bf16 pass ({_JAX_PRECISION})'),
    # 197 TFLOP/s (bf16), 16 GB HBM2 at 819 GB/s, ICI 1600 Gbps per chip; 8 chips a host.
    'v5e': Chip('TPU v5e', 197e12, 197e12, 16 * _GB, 819 * _GB, 1600e9 / 8, None, 8, 1,
                'https://cloud.google.com/tpu/docs/v5e',
                f'float32 as one bf16 pass ({_JAX_PRECISION})'),
    # 459 TFLOP/s (bf16), 95 GiB HBM2e at 2765 GB/s, ICI 4800 Gbps per chip; 4 chips a host.
    'v5p': Chip('TPU v5p', 459e12, 459e12, 95 * _GIB, 2765 * _GB, 4800e9 / 8, None, 4, 2,
                'https://cloud.google.com/tpu/docs/v5p',
                f'float32 as one bf16 pass ({_JAX_PRECISION})'),
    # H100 SXM: 1979 TFLOP/s bf16 and 989 TF32 with sparsity (half without), 80 GB HBM3 at
    # 3.35 TB/s, NVLink 900 GB/s. Between hosts: a DGX H100 has 8 ConnectX-7 400 Gb/s
    # InfiniBand ports, one per GPU (https://www.nvidia.com/en-us/data-center/dgx-h100/).
    'H100': Chip('NVIDIA H100 SXM 80GB', 989.5e12, 494.5e12, 80 * _GB, 3350 * _GB, 900 * _GB,
                 400e9 / 8, 8, 1, 'https://www.nvidia.com/en-us/data-center/h100/',
                 f'float32 as TF32 ({_JAX_PRECISION})'),
    # H200 SXM: the H100's compute with 141 GB HBM3e at 4.8 TB/s, NVLink 900 GB/s; hosts
    # networked like a DGX H100.
    'H200': Chip('NVIDIA H200 SXM 141GB', 989.5e12, 494.5e12, 141 * _GB, 4800 * _GB,
                 900 * _GB, 400e9 / 8, 8, 1, 'https://www.nvidia.com/en-us/data-center/h200/',
                 f'float32 as TF32 ({_JAX_PRECISION})'),
    # A100 SXM 80GB: 312 TFLOP/s bf16, 156 TF32 (dense), 80 GB HBM2e at 2039 GB/s, NVLink
    # 600 GB/s. Between hosts: a DGX A100 has 8 ConnectX-6 200 Gb/s HDR InfiniBand ports
    # (https://www.nvidia.com/en-us/data-center/dgx-a100/).
    'A100-80GB': Chip('NVIDIA A100 SXM 80GB', 312e12, 156e12, 80 * _GB, 2039 * _GB, 600 * _GB,
                      200e9 / 8, 8, 1, 'https://www.nvidia.com/en-us/data-center/a100/',
                      f'float32 as TF32 ({_JAX_PRECISION})'),
}

_TPU_NAMES = {'v4': 'v4', 'v5p': 'v5p', 'v5e': 'v5e', 'v5litepod': 'v5e'}
KNOWN = ('v4-N, v5p-N (N TensorCores, 2 per chip), v5e-N or v5litepod-N (N chips), '
         + ', '.join(f'Nx{name}' for name in CHIPS if not name.startswith('v')) + ' (N GPUs)')


@dataclasses.dataclass(frozen=True)
class Topology:
  """A pod slice or GPU cluster: ``num_devices`` chips of one kind."""
  name: str
  chip: Chip
  num_devices: int

  @property
  def num_hosts(self) -> int:
    return math.ceil(self.num_devices / self.chip.devices_per_host)

  @property
  def collective_bandwidth(self) -> float:
    """Bytes/s per device for collectives over all devices: the slowest link they cross."""
    if self.chip.host_bandwidth is not None and self.num_hosts > 1:
      return self.chip.host_bandwidth
    return self.chip.slice_bandwidth


# JAX's device_kind of each chip (as its runtime names it) -> the CHIPS entry.
_DEVICE_KINDS = (('H200', 'H200'), ('H100', 'H100'), ('A100', 'A100-80GB'), ('TPU v4', 'v4'),
                 ('TPU v5 lite', 'v5e'), ('TPU v5e', 'v5e'), ('TPU v5p', 'v5p'),
                 ('TPU v5', 'v5p'))


def chip_of(device_kind: str) -> Chip | None:
  """The chip a JAX device's ``device_kind`` names (e.g. 'NVIDIA H200', 'TPU v5p'), or None
  for one the planner does not know (a CPU)."""
  for marker, key in _DEVICE_KINDS:
    if marker.lower() in device_kind.lower():
      return CHIPS[key]
  return None


def parse_topology(name: str) -> Topology:
  """The topology a name like ``v5p-64`` or ``8xH100`` stands for; ValueError otherwise."""
  tpu = re.fullmatch(r'(v4|v5p|v5e|v5litepod)-(\d+)', name.strip())
  gpu = re.fullmatch(r'(\d+)x(.+)', name.strip())
  if tpu:
    chip, count = CHIPS[_TPU_NAMES[tpu.group(1)]], int(tpu.group(2))
    if count < chip.cores_per_device or count % chip.cores_per_device:
      raise ValueError(f'topology {name!r}: {tpu.group(1)}-N counts TensorCores, '
                       f'{chip.cores_per_device} per chip, so N must be a multiple of '
                       f'{chip.cores_per_device}')
    return Topology(name, chip, count // chip.cores_per_device)
  if gpu:
    key = {k.lower(): k for k in CHIPS}.get(gpu.group(2).lower())
    count = int(gpu.group(1))
    if key is not None and not key.startswith('v'):
      chip = CHIPS[key]
      if count < 1 or (count > chip.devices_per_host and count % chip.devices_per_host):
        raise ValueError(f'topology {name!r}: {count} GPUs neither fit one host nor fill '
                         f'hosts of {chip.devices_per_host}')
      return Topology(name, chip, count)
  raise ValueError(f'unknown topology {name!r}; known: {KNOWN}')

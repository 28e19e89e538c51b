"""Which devices a ranker trains on: one place that picks the ``tf.distribute`` strategy.

* GPUs visible → ``MirroredStrategy`` over all of them, with ``mixed_float16`` layers (half the
  memory traffic, tensor cores; variables and the loss stay float32, and the training step
  scales the loss so small float16 gradients do not underflow);
* ``cpu_devices=N`` → ``MirroredStrategy`` over N logical CPU devices: the same multi-replica
  code path on a machine without accelerators (CI exercises it this way);
* otherwise → the default strategy (one device, float32).

Logical CPU devices must be configured before TensorFlow initialises its devices, i.e. before
the first op of the process; :func:`pick_strategy` raises a clear error when that is too late,
so tests of the multi-device path run in a fresh subprocess.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shoprec.tf_runtime import tensorflow

MIXED = "mixed_float16"


@dataclass
class DevicePlan:
    """The chosen strategy and how layers compute.

    Attributes:
        strategy: The ``tf.distribute.Strategy`` to build, compile and fit under.
        mixed_precision: Whether layers built under :meth:`building` use ``mixed_float16``.
        devices: Device names the replicas run on.
        kind: ``gpu``, ``cpu-mirrored`` or ``default``.
    """

    strategy: Any
    mixed_precision: bool
    devices: list[str] = field(default_factory=list)
    kind: str = "default"

    @property
    def replicas(self) -> int:
        """Replicas in sync (the global batch is split across them)."""
        return int(self.strategy.num_replicas_in_sync)

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Scope for building and compiling: the strategy, and the dtype policy if mixed.

        Layers capture the global policy when constructed, so it is restored afterwards and
        does not leak into models built later in the same process (e.g. the exported
        serving graph of another model).
        """
        tf = tensorflow()
        previous = tf.keras.mixed_precision.global_policy().name
        try:
            if self.mixed_precision:
                tf.keras.mixed_precision.set_global_policy(MIXED)
            with self.strategy.scope():
                yield
        finally:
            tf.keras.mixed_precision.set_global_policy(previous)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for manifests and benchmark output."""
        return {"kind": self.kind, "replicas": self.replicas, "devices": self.devices,
                "mixed_precision": self.mixed_precision}


def configure_cpu_devices(n: int) -> list[str]:
    """Split the physical CPU into ``n`` logical devices; return their names.

    Raises:
        ValueError: if ``n < 1``.
        RuntimeError: if TensorFlow already initialised its devices with another count (the
            configuration is fixed for the life of the process: run in a new process).
    """
    if n < 1:
        raise ValueError(f"cpu_devices must be >= 1, got {n}")
    tf = tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not current or len(current) != n:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        except RuntimeError as err:
            have = len(tf.config.list_logical_devices("CPU"))
            raise RuntimeError(
                f"cannot split the CPU into {n} logical devices: TensorFlow already "
                f"initialised {have} in this process. Pick the strategy before any other "
                "TensorFlow work, or run the multi-device job in a fresh process") from err
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def pick_strategy(cpu_devices: int | None = None, *, mixed_precision: bool | None = None,
                  use_gpus: bool = True) -> DevicePlan:
    """Choose the strategy for this process (see the module docstring).

    Args:
        cpu_devices: Train on this many logical CPU devices with ``MirroredStrategy`` (ignored
            when GPUs are used). ``None`` or 1 with no GPU gives the default strategy.
        mixed_precision: Force ``mixed_float16`` on or off; default: on exactly with GPUs.
        use_gpus: Set False to ignore visible GPUs (e.g. to reproduce a CPU run).

    Returns:
        The :class:`DevicePlan`.
    """
    tf = tensorflow()
    # Physical devices only: listing logical ones would initialise TF and fix the CPU split.
    gpus = tf.config.list_physical_devices("GPU") if use_gpus else []
    if gpus:
        strategy = tf.distribute.MirroredStrategy()  # every visible GPU
        mixed = True if mixed_precision is None else mixed_precision
        return DevicePlan(strategy, mixed, list(strategy.extended.worker_devices), "gpu")
    mixed = bool(mixed_precision)
    if cpu_devices and cpu_devices > 1:
        names = configure_cpu_devices(cpu_devices)[:cpu_devices]
        # Reduction through one host device: NCCL all-reduce is for GPUs only.
        strategy = tf.distribute.MirroredStrategy(
            devices=names, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return DevicePlan(strategy, mixed, names, "cpu-mirrored")
    strategy = tf.distribute.get_strategy()
    return DevicePlan(strategy, mixed, [d.name for d in tf.config.list_logical_devices("CPU")[:1]],
                      "default")

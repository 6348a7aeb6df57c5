"""Data-parallel training of the Pyro backend: one process per device, through Lightning
Fabric's DDP strategy (its launcher, process group and collectives).

Every process holds the whole model and guide and computes one interleaved shard of each
minibatch (:meth:`~pyrocrl.inference.svi.Trainer._sharded_backward`, shard = global rank),
with the random stream of ``(seed, step, shard)``; the gradients are summed over processes
with one all-reduce per step, so each process takes the same Adam step. The run is the one
that a single :class:`~pyrocrl.inference.svi.Trainer` with ``shards`` equal to the number of
processes computes, to float tolerance, and its checkpoints are that trainer's: a run of
``D`` devices resumes on ``D`` devices, or in one process with ``shards=D``.

One node: :class:`DistributedTrainer` starts its processes itself (``"ddp_spawn"``), so it
works from the CLI, a script or a notebook. Several nodes: run the same command on every
node with Lightning's environment variables (``MASTER_ADDR``, ``MASTER_PORT``,
``NODE_RANK``); each node starts its processes, the first node goes on with the trained
model and the others end once training is done (``SystemExit``); see ``docs/scale.md``.
"""

__all__ = ["ACCELERATORS", "NODE_VARIABLES", "DistributedTrainer", "node_rank"]

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pyrocrl.errors import TrainingError
from pyrocrl.inference.svi import Trainer, TrainingLoop, TrainingResult, pairs_tensor, run_length
from pyrocrl.io import load_checkpoint
from pyrocrl.observations import paired_rows

NODE_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")
"""What every node of a run of several nodes reads (Lightning's environment)."""
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
"""What ``accelerator`` may name (Lightning's words; ``"cuda"`` is ``"gpu"``)."""


def _fabric(accelerator: str, devices: int, num_nodes: int) -> Any:
    """Lightning Fabric with the DDP strategy whose launcher spawns ``devices`` processes
    on this node (gloo on CPUs, NCCL on GPUs)."""
    try:
        from lightning.fabric import Fabric
    except ImportError as error:
        raise ImportError(
            "training on several devices needs Lightning: pip install 'pyrocrl[scale]'"
        ) from error
    from lightning.fabric.plugins.environments import LightningEnvironment

    if num_nodes > 1:
        missing = [v for v in NODE_VARIABLES if v not in os.environ]
        if missing:
            raise ValueError(
                f"num_nodes={num_nodes}: set {', '.join(missing)} on every node (the first "
                "node's address and a free port, and each node's rank from 0); see "
                "docs/scale.md"
            )
    return Fabric(
        accelerator="gpu" if accelerator == "cuda" else accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp_spawn",
        # the environment variables above, whatever scheduler started the command
        plugins=[LightningEnvironment()],
    )


def node_rank() -> int:
    """This node's rank in a run of several nodes (``NODE_RANK``; 0 on one node)."""
    return int(os.environ.get("NODE_RANK", 0))


class DistributedTrainer(Trainer):
    """A :class:`~pyrocrl.inference.svi.Trainer` whose steps run on ``devices × num_nodes``
    processes.

    :param devices: processes on each node (GPUs, or CPU processes with
        ``accelerator="cpu"``), at least 2 in all.
    :param num_nodes: nodes (machines).
    :param accelerator: ``"cpu"`` (gloo), ``"gpu"``/``"cuda"`` (NCCL) or ``"auto"``.
    :param options: the :class:`~pyrocrl.inference.svi.Trainer`'s (not ``validation``,
        ``device`` or ``shards``: the processes are the shards, each on its own device).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        guide: torch.nn.Module,
        objective: Any,
        recipe: Any = "fast",
        *,
        devices: int = 2,
        num_nodes: int = 1,
        accelerator: str = "cpu",
        **options: Any,
    ) -> None:
        if accelerator not in ACCELERATORS:
            raise ValueError(f"accelerator {accelerator!r}: use one of {ACCELERATORS}")
        if devices < 1 or num_nodes < 1 or devices * num_nodes < 2:
            raise ValueError(
                f"devices={devices}, num_nodes={num_nodes}: data-parallel training needs at "
                "least two processes in all (one device trains with Trainer)"
            )
        for name in ("validation", "device", "shards"):
            if options.get(name) is not None:
                raise ValueError(
                    f"{name!r} is not an option of a distributed trainer: validate after "
                    "training, and choose devices with 'devices' and 'accelerator'"
                )
        options.pop("shards", None)
        super().__init__(model, guide, objective, recipe, shards=devices * num_nodes, **options)
        self.devices, self.num_nodes, self.accelerator = devices, num_nodes, accelerator
        self._fabric: Any = None
        """Set in each process of the run (``None`` in the process that starts them)."""

    def fit(
        self, pairs: Any, *, resume: bool = True, until_epoch: float | None = None
    ) -> TrainingResult:
        """Train as :meth:`Trainer.fit <pyrocrl.inference.svi.TrainingLoop.fit>` does, on
        all processes; the modules, optimizer and history are those of the run when it
        returns. The result's ``wall_time`` is the first process's time in the training
        loop (starting the processes not included).

        :raises TrainingError: as one process would (a non-finite term or gradient on any
            shard stops every process), or if a process fails.
        """
        if self._fabric is not None:  # a process of the run
            return TrainingLoop.fit(self, pairs, resume=resume, until_epoch=until_epoch)
        data = pairs_tensor(pairs, getattr(self.model, "dim_x", None))
        paired = paired_rows(data)
        run_length(int(paired.sum()), self.recipe, until_epoch, int((~paired).sum()))
        if self._progress is None and resume and self.checkpoint is not None:
            if self.checkpoint.exists():
                self._progress = self._restore(load_checkpoint(self.checkpoint))
        fabric = _fabric(self.accelerator, self.devices, self.num_nodes)
        with tempfile.TemporaryDirectory(prefix="pyrocrl-ddp-") as handoff:
            final = Path(handoff) / "final.pt"
            try:
                blob = io.BytesIO()  # each process's own copy: shared tensors would be
                torch.save(self, blob)  # stepped by every process
                failure = fabric.launch(
                    _run,
                    blob.getvalue(),
                    data,
                    resume,
                    until_epoch,
                    final,
                    torch.get_default_dtype(),
                )
            except Exception as error:  # a process died without reporting
                raise TrainingError(f"a training process failed: {error}") from error
            if failure:
                raise TrainingError(failure)
            if self.num_nodes > 1 and node_rank() > 0:
                print(f"node {node_rank()}: its processes are done; node 0 has the run")
                raise SystemExit(0)
            state, result = torch.load(final, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self._progress = (int(state["step"]), list(state["history"]))
        self.model.eval()
        self.guide.eval()
        return result

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fabric": None}

    # -- inside a process ----------------------------------------------------------------------
    def _own_shards(self) -> range:
        rank = self._fabric.global_rank
        return range(rank, rank + 1)

    def _combine(
        self, reports: list[dict[str, float]], failure: str
    ) -> tuple[dict[str, float], str]:
        """Sum the gradients over processes (a parameter without gradient on every process
        keeps none), and average the reports; a failure on any process is every
        process's."""
        grads = [p.grad for p in self.params]
        flat = torch.cat(
            [
                torch.zeros(p.numel() + 1, device=self.device)
                if g is None
                else torch.cat([g.reshape(-1), torch.ones(1, device=self.device)])
                for p, g in zip(self.params, grads, strict=True)
            ]
            + [torch.tensor([float(bool(failure))], device=self.device)]
        )
        flat = self._fabric.all_reduce(flat, reduce_op="sum")
        if flat[-1] > 0:
            return {}, next(m for m in _gather(failure) if m)
        offset = 0
        for p in self.params:
            size = p.numel()
            if flat[offset + size] > 0:
                p.grad = flat[offset : offset + size].view_as(p).clone()
            offset += size + 1
        keys = sorted(reports[0])
        values = torch.tensor([reports[0][k] for k in keys], dtype=torch.float64)
        values = self._fabric.all_reduce(values.to(self.device), reduce_op="mean")
        return dict(zip(keys, values.tolist(), strict=True)), ""


def _gather(failure: str) -> list[str]:
    """Every process's failure message (empty where it had none)."""
    messages: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(messages, failure)
    return messages


def _run(
    fabric: Any,
    blob: bytes,
    data: torch.Tensor,
    resume: bool,
    until_epoch: float | None,
    final: Path,
    dtype: torch.dtype,
) -> str | None:
    """One process of a distributed run: train its shard of the trainer saved in ``blob``
    (the data are shared, read only). The first process writes the final state and result
    to ``final`` (a return value passes through a pipe that the launcher reads only after
    every process has ended), or returns the failure's message."""
    torch.set_default_dtype(dtype)  # as in the process that started the run
    trainer: DistributedTrainer = torch.load(io.BytesIO(blob), weights_only=False)
    trainer._fabric, trainer.device = fabric, fabric.device
    if fabric.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // trainer.devices))
    first = fabric.global_rank == 0
    if not first:
        trainer.checkpoint, trainer.progress = None, False
    try:
        result = TrainingLoop.fit(trainer, data, resume=resume, until_epoch=until_epoch)
    except TrainingError as error:
        return str(error) if first else None
    if not first:
        return None
    step, history = trainer._progress
    result.checkpoint = Path(trainer.checkpoint) if trainer.checkpoint else None
    torch.save((trainer.state(step, history), result), final)
    return None

"""Where the book's training runs go: this machine's kernels, or Slurm jobs through submitit.

    local   the book driver (``egolib.book``) executes each training page with papermill; the kernel trains
    slurm   ``run_slurm_job``: the variant is trained as one Slurm job through submitit, which writes a log per
            job, sets up multi-node torchrun-style environments and requeues preempted or timed-out jobs; the
            driver waits for the job, then executes the training page, which finds the run complete and renders it

A Slurm job (``TrainJob``) trains in its own process, every task of it (several GPUs or nodes: one process per GPU,
PyTorch DDP through the environment ``submitit.helpers.TorchDistributedEnvironment`` exports). When Slurm preempts
the job or its time runs out, submitit sends a signal and calls ``TrainJob.checkpoint``, submitit's checkpointing
protocol: the same call is resubmitted and, requeued, resumes from the run folder's ``checkpoint.pt`` (written
after every epoch). The driver's dependency order (GSM + EgoACO after the GSM run of its backbone) decides when a
job is submitted.

submitit is an optional dependency (extra ``cluster``); only the Slurm path needs it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LAUNCHERS = ("local", "slurm")
Params = dict[str, Any]  # one variant's notebook parameters (RunConfig fields)


# --------------------------------------------------------------------------------------------------
# slurm: submitit jobs


@dataclass
class SlurmOptions:
    """How each variant is submitted.

    Attributes:
        folder: submitit's folder: per job its pickled call, ``<job id>_log.out`` and ``.err``.
        partition: Slurm partition (None: the cluster's default).
        gpus_per_run: GPUs per node for one variant, one process (task) each; 0 runs on CPUs in one task.
        nodes_per_run: nodes for one variant (DDP across them).
        time: wall-clock limit per job, ``HH:MM:SS`` (or ``D-HH:MM:SS``); a job that reaches it is requeued and
            resumes from its checkpoint.
        cluster: ``slurm``; ``local`` runs the same jobs on this machine through submitit's local executor (tests).
        on_submit: called with each submitted job (as a one-item list), e.g. to watch or signal it.
    """

    folder: Path = Path("runs") / "slurm"
    partition: str | None = None
    gpus_per_run: int = 1
    nodes_per_run: int = 1
    time: str = "72:00:00"
    cluster: str = "slurm"
    on_submit: Callable[[list[Any]], None] | None = None

    def __post_init__(self) -> None:
        if self.gpus_per_run < 0 or self.nodes_per_run < 1:
            raise ValueError(f"gpus_per_run must be >= 0 and nodes_per_run >= 1, got {self.gpus_per_run}, "
                             f"{self.nodes_per_run}")
        if self.cluster == "local" and self.nodes_per_run != 1:
            raise ValueError("submitit's local executor runs one node: nodes_per_run must be 1")
        time_minutes(self.time)  # fails early on a malformed limit

    def parameters(self) -> dict[str, Any]:
        """submitit ``AutoExecutor.update_parameters`` arguments."""
        tasks = max(self.gpus_per_run, 1)
        params = {"name": "egobook", "timeout_min": time_minutes(self.time), "nodes": self.nodes_per_run,
                  "tasks_per_node": tasks, "gpus_per_node": self.gpus_per_run}
        if self.partition is not None:
            params["slurm_partition"] = self.partition
        return params


_TIME = re.compile(r"(?:(\d+)-)?(\d+):(\d{2}):(\d{2})")


def time_minutes(text: str) -> int:
    """``HH:MM:SS`` or ``D-HH:MM:SS`` (Slurm's ``--time``) in whole minutes, rounded up."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"time limit {text!r} is not HH:MM:SS or D-HH:MM:SS (e.g. 48:00:00)")
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    total_s = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total_s <= 0:
        raise ValueError(f"time limit {text!r} must be positive")
    return -(-total_s // 60)


try:
    from submitit.helpers import Checkpointable
except ImportError:  # the extra ``cluster`` is not installed: the local launcher needs none of it
    Checkpointable = object


class TrainJob(Checkpointable):
    """One variant as a Slurm job: train in this process (DDP across the job's tasks), then, optionally, render.

    Args:
        workdir: the repository root: run, data and pretraining folders are relative to it.
        render: called with the parameters on rank 0 once the run is complete (e.g. to execute its notebook in
            the job); None: the driver renders it.

    Calling it with a variant's parameters returns the run folder. ``checkpoint`` (submitit's protocol, inherited
    from ``submitit.helpers.Checkpointable``) resubmits the same call; the run resumes from its ``checkpoint.pt``.
    """

    def __init__(self, workdir: str | Path, render: Callable[[Params], Any] | None) -> None:
        self.workdir, self.render = str(workdir), render

    def __call__(self, params: Params) -> str:
        import submitit
        import torch.distributed as torch_dist

        from egolib import train
        from egolib.config import RunConfig

        os.chdir(self.workdir)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:  # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT for torch.distributed
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        cfg = RunConfig.from_params(params)
        log.info("job %s task %d/%d: %s", env.job_id, env.global_rank, env.num_tasks, cfg.run_path)
        try:
            train.run(cfg, progress=False)  # resumes from checkpoint.pt after a requeue
        finally:
            if torch_dist.is_initialized():
                torch_dist.destroy_process_group()
        if env.global_rank == 0 and self.render is not None:
            self.render(params)  # the run is complete: the notebook reads it back and plots
        return str(cfg.run_path)


def run_slurm_job(params: Params, options: SlurmOptions, *, workdir: str | Path) -> str:
    """Train one variant as a Slurm job and wait for it.

    Args:
        params: the variant's parameters (``RunConfig`` fields).
        options: partition, GPUs and nodes per run, time limit, submitit folder and cluster.
        workdir: the repository root the job runs in.

    Returns:
        The run folder.

    Raises:
        ImportError: submitit is not installed.
        submitit.core.utils.FailedJobError: the job failed (the message holds the end of its log).
    """
    try:
        import submitit
    except ImportError:
        raise ImportError("--launcher slurm needs submitit: pip install -e '.[cluster]'") from None

    executor = submitit.AutoExecutor(folder=options.folder, cluster=options.cluster)
    executor.update_parameters(**options.parameters())
    job = executor.submit(TrainJob(workdir, render=None), params)
    log.info("submitted job %s for %s (log: %s)", job.job_id, params, job.paths.stdout)
    if options.on_submit is not None:
        options.on_submit([job])
    return job.result()  # waits; raises when the job failed

"""`trainer fit`: the training loop, on one CPU or many GPUs through accelerate.

Run directory::

    RUN/config.json            resolved configuration and code version
    RUN/metrics.jsonl          one line per logged step (loss terms, lr, throughput, data skips)
    RUN/deviation.jsonl        the stereo deviation strength s of every training sample, per step
    RUN/validation.jsonl       held-out denoising loss at fixed draws (``run.validation_shards``)
    RUN/tensorboard/           the same scalars plus preview images
    RUN/previews/step_N.png    x1~ | x2 | denoised estimate | x1 for held-out samples
    RUN/checkpoints/step_N/    trainable weights, optimizer, scheduler, RNG, step
    RUN/components/            random components (``tiny`` and ``micro`` presets only)

Multi-GPU / multi-node: ``accelerate launch --num_processes 8 -m trainer.cli fit ...`` or
``torchrun --nproc_per_node 8 -m trainer.cli fit ...``; each rank reads different shards.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed

from dvg.progress import Progress
from trainer import __version__
from trainer.checkpoint import latest_checkpoint, load_training_state, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataCounters, make_loader
from trainer.deviation import DeviationLog
from trainer.objective import encode_batch, training_loss
from trainer.preview import write_preview
from trainer.schedule import lr_factor
from trainer.stages import build_model, configure_stage
from trainer.validation import ValidationLog, validation_loss, validation_set


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite losses: the run stops instead of wasting GPU days."""


@dataclass
class FitResult:
    run_dir: Path
    step: int
    losses: list[float]
    skipped_steps: int


def _batches(config: TrainConfig, rank: int, world: int, seed: int) -> Iterator[dict]:
    """An endless stream of batches (a finite loader restarts, seeded per pass)."""
    epoch = 0
    while True:
        data = replace(config.data, seed=seed + epoch)
        count = 0
        loader = make_loader(data, rank=rank, world_size=world)
        # Starting a DataLoader iterator draws its base seed from the global torch RNG; keeping
        # that draw out of the training stream is what makes --resume exact.
        with torch.random.fork_rng(devices=[]):
            iterator = iter(loader)
        for batch in iterator:
            count += 1
            yield batch
        if count == 0:
            raise ValueError(f"no training sample could be read from {config.data.shards}")
        epoch += 1


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _check_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Check the run directory against ``resume`` (a checkpoint and the same configuration)."""
    checkpoint = latest_checkpoint(run_dir)
    config_file = run_dir / "config.json"
    if resume:
        if checkpoint is None:
            raise ValueError(f"--resume: {run_dir} has no checkpoint to resume from")
        saved = json.loads(config_file.read_text())
        saved.pop("code_version", None)
        current = config.to_dict()
        # The step budget may grow on resume; anything else would change the run silently.
        saved["run"].pop("steps", None)
        current["run"].pop("steps", None)
        if saved != current:
            changed = sorted(
                f"{section}.{key}"
                for section in current
                if isinstance(current[section], dict)
                for key in current[section]
                if saved.get(section, {}).get(key) != current[section][key]
            )
            raise ValueError(
                f"--resume: the configuration differs from the one {run_dir} was started with "
                f"({', '.join(changed) or 'top-level fields'})"
            )
    elif checkpoint is not None:
        raise ValueError(
            f"{run_dir} already holds checkpoints: pass --resume to continue or choose a new "
            "--run-dir"
        )


def fit(config: TrainConfig, run_dir: str | Path, *, resume: bool = False) -> FitResult:
    """Train ``config.stage`` on ``config.data.shards``, writing everything under ``run_dir``."""
    run_dir = Path(run_dir)
    run = config.run
    accelerator = Accelerator(
        # Without CUDA, accelerate only forms a (gloo) process group when told it runs on CPU.
        cpu=not torch.cuda.is_available(),
        mixed_precision=run.mixed_precision,
        gradient_accumulation_steps=run.grad_accum,
        log_with="tensorboard",
        project_dir=str(run_dir),
        # RefinerNet's last attention outputs are written to the bank, never read back.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_run_dir(run_dir, config, resume)
        if not resume:
            (run_dir / "config.json").write_text(
                json.dumps({**config.to_dict(), "code_version": __version__}, indent=1)
            )
    accelerator.wait_for_everyone()
    checkpoint = latest_checkpoint(run_dir) if resume else None
    set_seed(run.seed)

    with accelerator.main_process_first():  # the tiny preset writes its components once
        model = build_model(config, run_dir)
    parameters = configure_stage(model, config.stage, til=config.model.til)
    if run.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        model.refiner.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(
        parameters, lr=config.optim.lr, betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
    )  # fmt: skip
    optim = config.optim
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, optim.schedule, optim.warmup_steps, run.steps)
    )
    ema = None
    if run.ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(parameters, decay=run.ema_decay)

    start_step, streak, skipped, consumed = 0, 0, 0, 0
    if checkpoint is not None:
        state = load_training_state(checkpoint, model, optimizer, scheduler, ema)
        start_step, skipped, consumed = state["step"], state["skipped_steps"], state["batches"]

    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    core = accelerator.unwrap_model(model)
    core.vae.to(accelerator.device)
    core.image_encoder.to(accelerator.device)

    replay = checkpoint is not None and run.resume_data == "replay"
    seed = config.data.seed if checkpoint is None or replay else config.data.seed + start_step
    batches = _batches(config, accelerator.process_index, accelerator.num_processes, seed)
    if replay:
        for _ in range(consumed):  # exact continuation: the same stream as an unbroken run
            next(batches)
    else:
        consumed = 0 if checkpoint is None else consumed

    deviations = DeviationLog(run_dir)
    validations = ValidationLog(run_dir)
    if accelerator.is_main_process:
        accelerator.init_trackers("tensorboard", config={"stage": config.stage})
        deviations.truncate(start_step)  # a resumed run redoes the steps after its checkpoint
        validations.truncate(start_step)
    validate = run.validation_shards is not None and accelerator.is_main_process
    held_out = None
    if validate:  # a DataLoader draws its seed from the global RNG: keep it out of training's
        with torch.random.fork_rng(devices=[]):
            held_out = validation_set(core, config)

    def record_validation(at: int) -> None:
        # Fixed draws from its own generators: validating cannot change the training stream.
        with torch.random.fork_rng(devices=[]), accelerator.autocast():
            values = validation_loss(core, held_out, config)
        validations.append(at, values)
        logged = {
            f"validation/{k}": v for k, v in values.items() if k != "samples" and v is not None
        }
        accelerator.log(logged, step=at)

    if validate and start_step == 0:
        record_validation(0)
    metrics = run_dir / "metrics.jsonl"
    losses: list[float] = []
    counters = DataCounters()  # skips reported by the data workers, summed over this run
    tick, samples = time.perf_counter(), 0
    logged_deviation: list[float] = []  # s of the samples since the last log line
    # Step, loss, steps/s and ETA on stderr from the first step: a bar on a terminal, a plain
    # line every 30 s in a job's log.
    progress = Progress(
        "trainer fit", run.steps, unit="steps", start=start_step,
        enabled=accelerator.is_main_process,
    )  # fmt: skip
    step = start_step
    while step < run.steps:
        terms = None
        step_deviation: list[torch.Tensor] = []
        for _ in range(run.grad_accum):
            batch = _to_device(next(batches), accelerator.device)
            counters.update(batch).check_skipped(config.data.max_skipped_fraction)
            consumed += 1
            samples += batch["target"].shape[0] * accelerator.num_processes
            if run.log_keys:
                with open(run_dir / f"keys.rank{accelerator.process_index}.jsonl", "a") as f:
                    f.write(json.dumps({"step": step + 1, "keys": list(batch["key"])}) + "\n")
            with accelerator.accumulate(model):
                cond = encode_batch(core, batch, config.loss)
                with accelerator.autocast():
                    terms = training_loss(model, cond, config.loss)
                step_deviation.append(accelerator.gather(terms.deviation.float()))
                finite = torch.isfinite(terms.total.detach()).float()
                if accelerator.reduce(finite, reduction="sum").item() < accelerator.num_processes:
                    optimizer.zero_grad(set_to_none=True)
                    break
                accelerator.backward(terms.total)
                if accelerator.sync_gradients and config.optim.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(parameters, config.optim.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        step += 1
        loss = terms.total.detach().float().item()
        if not math.isfinite(loss):
            streak += 1
            skipped += 1
            if streak >= run.max_nonfinite:
                progress.close()
                raise NonFiniteLossError(
                    f"{streak} consecutive non-finite losses at step {step}; lower the learning "
                    f"rate or check the data (run: {run_dir})"
                )
            progress.update(step, nonfinite_steps=skipped)
            continue
        streak = 0
        if ema is not None:
            ema.step(parameters)
        losses.append(loss)
        progress.update(
            step, loss=loss, nonfinite_steps=skipped,
            skipped_samples=counters.skipped_samples, skipped_shards=counters.skipped_shards,
        )  # fmt: skip
        if accelerator.is_main_process:
            values = torch.cat(step_deviation).cpu().tolist()
            deviations.append(step, values)
            logged_deviation.extend(values)

        if step % run.log_every == 0 or step == run.steps:
            elapsed = time.perf_counter() - tick
            record = {
                "step": step,
                "loss": loss,
                "loss_denoise": terms.denoise.float().item(),
                "loss_stereo": terms.stereo.float().item(),
                "sigma_mean": terms.sigma.float().mean().item(),
                "deviation_mean": sum(logged_deviation) / max(len(logged_deviation), 1),
                "lr": scheduler.get_last_lr()[0],
                "samples_per_second": samples / max(elapsed, 1e-9),
                "skipped_steps": skipped,
                "data_samples_seen": counters.samples_seen,
                "data_skipped_samples": counters.skipped_samples,
                "data_skipped_shards": counters.skipped_shards,
            }
            tick, samples = time.perf_counter(), 0
            accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)
            if accelerator.is_main_process:
                with open(metrics, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                if logged_deviation:
                    writer = accelerator.get_tracker("tensorboard", unwrap=True)
                    writer.add_histogram("train/deviation", torch.tensor(logged_deviation), step)
            logged_deviation = []
        if step % run.checkpoint_every == 0 or step == run.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                state = {"skipped_steps": skipped, "batches": consumed}
                save_checkpoint(
                    run_dir, step, core, optimizer, scheduler, state, ema, run.keep_checkpoints
                )
        if run.preview_every and step % run.preview_every == 0 and accelerator.is_main_process:
            write_preview(core, config, run_dir, step, accelerator)
        if validate and (
            step == run.steps or (run.validation_every and step % run.validation_every == 0)
        ):
            record_validation(step)
    if step == 0 and checkpoint is None:
        # `--steps 0`: the initial weights as a checkpoint, so `trainer export` exports the
        # untrained model (the baseline row of an evaluation).
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"skipped_steps": 0, "batches": 0}
            save_checkpoint(
                run_dir, 0, core, optimizer, scheduler, state, ema, run.keep_checkpoints
            )
    progress.close()
    accelerator.end_training()
    return FitResult(run_dir, step, losses, skipped)

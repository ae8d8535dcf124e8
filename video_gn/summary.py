"""Model summary: per-stage output shapes, parameters, forward GFLOPs per clip, and on CUDA the peak
memory of one training step at ``data.batch_size_per_device``; with ``multigrid=long|long_short`` the
schedule: every phase's shapes, clips per device, activation memory and cost against the base run.

    python -m video_gn.summary model=i3d_r50 norm=gn data.frames_per_clip=64 [summary.format=json]
    python -m video_gn.summary model=small data=synthetic multigrid=long_short
"""

from __future__ import annotations

import json

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from video_gn.config.checks import check_config
from video_gn.config.classes import settle_num_classes
from video_gn.errors import ConfigError, one_line_errors
from video_gn.models import build_network
from video_gn.models.norm import instance_norm_warning, norm_layers
from video_gn.ops.saved_bytes import saved_bytes
from video_gn.plan import RunPlan, plan_run
from video_gn.training.multigrid import MultigridSchedule


def summarize(cfg: DictConfig, plan: RunPlan | None = None) -> dict:
    """Shapes and FLOPs from one forward of a single clip; peak memory from one fwd+bwd on CUDA;
    ``plan``'s multigrid schedule (``config.checks.check_config``'s), phase by phase."""
    plan = plan or plan_run(cfg)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["pretrained_2d"] = model_cfg["pretrained_3d"] = None  # shapes and costs ignore weights
    model = build_network(model_cfg, OmegaConf.to_container(cfg.norm, resolve=True),
                          cfg.data.num_classes).eval()
    d = cfg.data
    x = torch.zeros(1, 3, d.frames_per_clip, d.crop_size, d.crop_size)
    stages = []
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        for name, stage in model.stages():
            x = stage(x)
            stages.append({"name": name, "output_shape": list(x.shape[1:])})
        model.head(x)
    result = {
        "arch": cfg.model.arch,
        "norm": cfg.norm.kind,
        "input_shape": [3, d.frames_per_clip, d.crop_size, d.crop_size],
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": flops.get_total_flops() / 1e9,
        "stages": stages,
        # channels per group of every norm layer (GN family; BN normalises each channel over the batch)
        "norm_layers": [{"name": n.name, "kind": n.kind, "channels": n.channels, "groups": n.groups,
                         "channels_per_group": n.channels_per_group} for n in norm_layers(model)],
        "norm_warning": instance_norm_warning(norm_layers(model), cfg.norm.kind),
    }
    result["batch_size_per_device"] = d.batch_size_per_device
    result["saved_activations_mib"] = saved_activations_mib(model, d.batch_size_per_device,
                                                           result["input_shape"])
    if torch.cuda.is_available():
        result["peak_memory_gib"] = peak_training_memory_gib(model, d.batch_size_per_device,
                                                             result["input_shape"])
    if plan.schedule is not None:
        result["multigrid"] = multigrid_summary(model, plan.schedule, result["gflops"],
                                                result["saved_activations_mib"])
    return result


def multigrid_summary(model: torch.nn.Module, schedule: MultigridSchedule, base_gflops: float,
                      base_activations_mib: float) -> dict:
    """Per phase: each iteration's clips per device x frames x crop, its activations kept for backward
    (fp32) and its cost per clip, both relative to the base shape's; and the run's training compute
    (every training clip once per epoch) relative to the base schedule's."""
    per_clip = {}  # (frames, crop) -> (GFLOPs, saved activations MiB) of one clip
    phases, compute = [], 0.0
    for phase in schedule.phases:
        iterations = []
        for it in phase.iterations:
            if (it.frames, it.crop) not in per_clip:
                shape = [3, it.frames, it.crop, it.crop]
                with torch.no_grad(), FlopCounterMode(display=False) as flops:
                    model.eval()(torch.zeros(1, *shape))
                per_clip[it.frames, it.crop] = (flops.get_total_flops() / 1e9,
                                                saved_activations_mib(model, 1, shape))
            gflops, mib = per_clip[it.frames, it.crop]
            iterations.append({"clips": it.clips, "frames": it.frames, "stride": it.stride, "crop": it.crop,
                               "activations_mib": it.clips * mib,
                               "activations_vs_base": it.clips * mib / base_activations_mib,
                               "cost_per_clip_vs_base": gflops / base_gflops})
        # an epoch reads every clip once; its clips are split over the iterations in proportion to size
        clips = sum(i["clips"] for i in iterations)
        epoch_cost = sum(i["clips"] * i["cost_per_clip_vs_base"] for i in iterations) / clips
        compute += (phase.end_epoch - phase.start_epoch) * epoch_cost
        phases.append({"epochs": [phase.start_epoch, phase.end_epoch], "stage": phase.stage,
                       "finetune": phase.finetune, "lr_factor": phase.batch_factor,
                       "epoch_cost_vs_base": epoch_cost, "iterations": iterations})
    return {"kind": schedule.kind, "epochs": schedule.epochs, "base_epochs": schedule.base_epochs,
            "phases": phases, "compute_vs_base_schedule": compute / schedule.base_epochs}


def saved_activations_mib(model: torch.nn.Module, batch_size: int, clip_shape: list[int]) -> float:
    """What autograd keeps for backward in one training forward at ``batch_size`` clips (fp32, any
    device): the memory that grows with clips x frames. Measured on one clip and scaled, since every
    saved activation is per clip."""
    model.train()
    saved = saved_bytes(model, torch.zeros(1, *clip_shape))
    model.eval()
    return batch_size * saved / 2**20


def peak_training_memory_gib(model: torch.nn.Module, batch_size: int, clip_shape: list[int]) -> float:
    """Peak CUDA memory of one bf16-autocast SGD step (weights, activations, grads, momentum)."""
    model = model.cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, *clip_shape, device="cuda")
    y = torch.zeros(batch_size, dtype=torch.long, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def format_table(s: dict) -> str:
    rows = [f"{s['arch']} / norm={s['norm']}   input C×T×H×W = {'×'.join(map(str, s['input_shape']))}",
            f"{'stage':<8} {'output C×T×H×W':>22}"]
    rows += [f"{st['name']:<8} {'×'.join(map(str, st['output_shape'])):>22}" for st in s["stages"]]
    rows.append(f"params: {s['params'] / 1e6:.2f}M   forward: {s['gflops']:.1f} GFLOPs per clip")
    rows.append(f"{'norm layer':<24} {'kind':>12} {'channels':>9} {'groups':>7} {'channels/group':>15}")
    for n in s["norm_layers"]:
        grouped = n["groups"] is not None
        rows.append(f"{n['name']:<24} {n['kind']:>12} {n['channels']:>9} "
                    f"{n['groups'] if grouped else '-':>7} "
                    f"{n['channels_per_group'] if grouped else '- (per channel)':>15}")
    if s["norm_warning"]:
        rows.append(s["norm_warning"])
    rows.append(f"activations kept for backward at {s['batch_size_per_device']} clips/device (fp32): "
                f"{s['saved_activations_mib']:.0f} MiB")
    if "peak_memory_gib" in s:
        rows.append(f"peak training memory at {s['batch_size_per_device']} clips/device "
                    f"(bf16 autocast, SGD): {s['peak_memory_gib']:.2f} GiB")
    if "multigrid" in s:
        rows += format_multigrid(s["multigrid"])
    return "\n".join(rows)


def format_multigrid(m: dict) -> list[str]:
    rows = [f"multigrid={m['kind']}: {m['epochs']} epochs for the base schedule's {m['base_epochs']}",
            f"{'epochs':>9} {'stage':>6} {'LR x':>5} {'clips x frames x crop² (stride)':>34} "
            f"{'activations MiB':>16} {'vs base':>8} {'cost/clip':>10} {'epoch cost':>11}"]
    for p in m["phases"]:
        stage = "ft" if p["finetune"] else str(p["stage"])
        for k, it in enumerate(p["iterations"]):
            head = (f"{p['epochs'][0]:>4}-{p['epochs'][1]:<4} {stage:>6} {p['lr_factor']:>5}" if k == 0
                    else " " * 22)
            tail = f" {p['epoch_cost_vs_base']:>11.2f}" if k == 0 else ""
            shape = f"{it['clips']}x{it['frames']}x{it['crop']}² ({it['stride']})"
            rows.append(f"{head} {shape:>34} {it['activations_mib']:>16.0f} "
                        f"{it['activations_vs_base']:>8.2f} {it['cost_per_clip_vs_base']:>10.3f}{tail}")
    rows.append(f"training compute vs the base schedule: {m['compute_vs_base_schedule']:.2f} "
                "(forward FLOPs over every epoch's clips)")
    return rows


@hydra.main(version_base="1.3", config_path="pkg://video_gn.conf", config_name="summary")
def main(cfg: DictConfig) -> None:
    fmt = cfg.summary.format
    with one_line_errors():
        if fmt not in ("table", "json"):
            raise ConfigError(f"summary.format={fmt!r} is not one of table, json")
        settle_num_classes(cfg)  # data=folder: the class count of the prepared dataset
        plan = check_config(cfg)  # the values a training run would refuse, refused here too
    s = summarize(cfg, plan)
    print(json.dumps(s) if fmt == "json" else format_table(s))


if __name__ == "__main__":
    main()

"""The recipe search of issue 21: fit's step with one lever changed, a fixed number of steps.

    python benchmarks/recipe_search.py NAME SEED [key=value ...]   # -> <out>/NAME_seed_SEED.json

Keys: steps, lr, warmup_frac, batch, sched (poly | cos | lin), power, ema (decays, e.g.
0.99,0.995: each EMA of the weights is scored too), start_size (progressive resizing: the side in
px of the first start_frac of the steps), start_frac, train_samples, dice_weight, amp (0 / 1),
threads (default 1), val_every, out (default runs/recipe_search). The searched runs went two at
a time on one thread each (``OMP_NUM_THREADS=1``), AVX512 kernels in fp32, so their times
compare with one another only; their results are ``results/recipe_search/`` (benchmarks/README).
This is the loop of :func:`deeplab_utils.training.fit` written out, so that a lever the package
does not have (a schedule, an EMA) can be tried without adding it there. Its defaults (Adam 5e-3,
a tenth of the steps as warm-up) are the recipe the searches started from, not the package's
defaults of today, so that a stored result's options keep their meaning.
"""

import json
import math
import sys
import time
from pathlib import Path

import torch

from deeplab_utils.config import RunConfig, settle
from deeplab_utils.evaluation import eval_loader, evaluate
from deeplab_utils.losses import DiceCELoss
from deeplab_utils.run import build_run
from deeplab_utils.runtime import autocast, seed_everything, to_layout
from deeplab_utils.training import _resized, build_optimizer, poly_lr_lambda, train_loader

name, seed = sys.argv[1], int(sys.argv[2])
opts = dict(a.split("=", 1) for a in sys.argv[3:])
f = lambda k, d: type(d)(opts.get(k, d)) if d is not None else opts.get(k)  # noqa: E731
threads = int(opts.get("threads", 1))
torch.set_num_threads(threads)
steps = f("steps", 760)
batch = f("batch", 16)
amp = bool(int(opts.get("amp", 0)))
lr_peak = f("lr", 5e-3)
warmup = int(f("warmup_frac", 0.1) * steps)
sched = opts.get("sched", "poly")
power = f("power", 0.9)
ema_decays = [float(d) for d in opts["ema"].split(",")] if "ema" in opts else []
start_size = int(opts["start_size"]) if "start_size" in opts else None
start_frac = f("start_frac", 0.5)
train_samples = int(opts.get("train_samples", 5000))
dice_weight = float(opts.get("dice_weight", 1.0))
val_every = int(opts.get("val_every", 0))

config = RunConfig(
    steps=steps,
    batch_size=batch,
    seed=seed,
    amp=amp,
    device="cpu",
    train_samples=train_samples,
    lr=lr_peak,
    warmup_steps=warmup,
)
run = build_run(config)
device = torch.device("cpu")
cfg = settle(config, device)
seed_everything(cfg.seed)
model = run.model
to_layout(model, device, channels_last=True)
loss_fn = DiceCELoss(dice_weight=dice_weight) if dice_weight != 1.0 else run.loss_fn
opt = build_optimizer(model, cfg)
emas = {
    d: torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(d), use_buffers=True
    )
    for d in ema_decays
}


def lr_at(step):
    """The peak rate times fit's poly_lr_lambda, or cosine or linear decay with its warm-up."""
    if sched == "poly":
        return lr_peak * poly_lr_lambda(step, steps, power, warmup)
    warm = (step + 1) / warmup if step < warmup else 1.0
    decay = 0.5 * (1 + math.cos(math.pi * step / steps)) if sched == "cos" else 1 - step / steps
    return lr_peak * decay * warm


batches = iter(train_loader(run.train_set, cfg))
val_loader = eval_loader(run.val_set, cfg)
model.train()
curve = []
t0 = time.perf_counter()
for step in range(steps):
    lr = lr_at(step)
    for g in opt.param_groups:
        g["lr"] = lr
    images, masks = next(batches)
    if start_size and step < start_frac * steps:  # fit's progressive resizing, to start_size px
        images, masks = _resized(images, masks, start_size / images.shape[-1])
    images = images.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp):
        loss = loss_fn(model(images), masks)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    for ema in emas.values():
        ema.update_parameters(model)
    if val_every and (step + 1) % val_every == 0 and step + 1 < steps:
        m = evaluate(model, val_loader, device=device, amp=amp)["miou"]
        curve.append([step + 1, time.perf_counter() - t0, m])
train_seconds = time.perf_counter() - t0
final = evaluate(model, val_loader, device=device, amp=amp)
result = {
    "name": name,
    "seed": seed,
    "opts": opts,
    "train_seconds": train_seconds,
    "miou": final["miou"],
    "iou": final["iou"],
    "curve": curve,
    "threads": threads,
    "kernels": torch.backends.cpu.get_cpu_capability(),
}
for d, ema in emas.items():
    e = evaluate(ema.module, val_loader, device=device, amp=amp)
    result[f"ema{d}_miou"], result[f"ema{d}_iou"] = e["miou"], e["iou"]
out = Path(opts.get("out", "runs/recipe_search"))
out.mkdir(parents=True, exist_ok=True)
(out / f"{name}_seed_{seed}.json").write_text(json.dumps(result))
print(
    name,
    seed,
    round(final["miou"], 4),
    {k: v for k, v in result.items() if k.endswith("_miou")},
    round(train_seconds),
)

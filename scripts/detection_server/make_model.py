"""Write an RT-DETRv2 with random weights to a folder, for tests and benchmarks (no download).

``python3 -m scripts.detection_server.make_model FOLDER [--size r18|r50] [--seed N]``

Random weights cost exactly the compute of trained ones, so a benchmark on them measures the
server; and tests need a real model of the real architecture without fetching one. The folder
holds what save_pretrained writes (config.json, model.safetensors) plus the image processor's
settings, like a checkpoint from the hub. id2label has COCO's 80 classes (the default config has
2), so class names look like the real model's.

- r18: the architecture of PekingU/rtdetr_v2_r18vd: ResNet-18 backbone (BasicBlocks, 64..512
  channels), hybrid encoder with expansion 0.5, 3 decoder layers; 20 M parameters, as the
  RT-DETRv2 paper's R18. A 640x640 pass takes about 0.8 s on two CPU cores in PyTorch.
- r50: the default RTDetrV2Config (ResNet-50-vd), the size of PekingU/rtdetr_v2_r50vd.

Random, but alive: transformers initialises convolutions with a small normal (std 0.02), which
shrinks the activations layer by layer until the encoder's features are about 1e-6 and every
query scores the same. Such a model answers with ties, so two correct runtimes pick different
boxes among equals, and int8 calibration measures nothing. So the convolutions get He (fan-in)
initialisation, and each batch norm's running statistics are set from a pass over generated
scenes, as training would leave them: activations keep their scale, and scores spread from
about 0.02 to 0.7.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any

COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""COCO's 80 detection classes in the order RT-DETR's checkpoints number them."""

CALIBRATION_SCENES = 8
"""Generated scenes whose activations set the batch norms' statistics."""


def write_random_model(folder: Path, *, size: str = "r18", seed: int = 0) -> Path:
    """Write a random-weight RT-DETRv2 of size ("r18" or "r50") and its processor to folder."""
    import torch  # noqa: PLC0415 - heavy; only this function needs it
    from transformers import (  # noqa: PLC0415
        RTDetrImageProcessor,
        RTDetrResNetConfig,
        RTDetrV2Config,
        RTDetrV2ForObjectDetection,
    )

    id2label = dict(enumerate(COCO_LABELS))
    labels = {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}
    if size == "r18":
        backbone = RTDetrResNetConfig(
            depths=[2, 2, 2, 2],
            hidden_sizes=[64, 128, 256, 512],
            layer_type="basic",
            out_features=["stage2", "stage3", "stage4"],
        )
        config = RTDetrV2Config(
            backbone_config=backbone,
            encoder_in_channels=[128, 256, 512],
            hidden_expansion=0.5,
            decoder_layers=3,
            **labels,
        )
    elif size == "r50":
        config = RTDetrV2Config(**labels)
    else:
        raise ValueError(f"size must be r18 or r50, not {size!r}")
    torch.manual_seed(seed)
    model = RTDetrV2ForObjectDetection(config)
    _bring_to_life(model, RTDetrImageProcessor(), seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    RTDetrImageProcessor().save_pretrained(folder)
    return folder


def _bring_to_life(model: Any, processor: Any, seed: int) -> None:
    """Give model's convolutions He initialisation and its batch norms statistics from scenes."""
    import torch  # noqa: PLC0415

    from .scenes import scene  # noqa: PLC0415

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration pass
    pictures = [scene(seed * 1000 + index) for index in range(CALIBRATION_SCENES)]
    pixels = processor(images=pictures, return_tensors="pt")["pixel_values"]
    model.train()
    with torch.no_grad():
        model(pixel_values=pixels)
    model.eval()


def main(argv: list[str] | None = None) -> int:
    """Write the model the command line asks for."""
    parser = argparse.ArgumentParser(prog="python3 -m scripts.detection_server.make_model")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", choices=("r18", "r50"), default="r18")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_random_model(args.folder, size=args.size, seed=args.seed)
    sys.stdout.write(f"{args.folder}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

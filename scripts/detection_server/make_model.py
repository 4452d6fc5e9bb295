"""Write an RT-DETRv2 with random weights to a folder, for tests and benchmarks (no download).

``python3 -m scripts.detection_server.make_model FOLDER [--size r18|r50] [--seed N]``

Random weights cost exactly the compute of trained ones, so a benchmark on them measures the
server; and tests need a real model of the real architecture without fetching one. The folder
holds what save_pretrained writes (config.json, model.safetensors) plus the image processor's
settings, like a checkpoint from the hub. id2label has COCO's 80 classes (the default config has
2), so class names look like the real model's.

- r18: ResNet-18-sized backbone (BasicBlocks, 64..512 channels), 3 decoder layers; about 26 M
  parameters, a 640x640 pass takes about 1.3 s on one CPU core here.
- r50: the default RTDetrV2Config (ResNet-50-vd), the size of PekingU/rtdetr_v2_r50vd.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

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
            decoder_layers=3,
            **labels,
        )
    elif size == "r50":
        config = RTDetrV2Config(**labels)
    else:
        raise ValueError(f"size must be r18 or r50, not {size!r}")
    torch.manual_seed(seed)
    model = RTDetrV2ForObjectDetection(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    RTDetrImageProcessor().save_pretrained(folder)
    return folder


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

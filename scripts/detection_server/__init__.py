"""The reference detection server that the ai_security integration is tested against.

It speaks the integration's detector protocol over HTTP (aiohttp):

- ``POST /detect`` with one image in the multipart field ``file`` answers
  ``{"detections": [{"class", "confidence", "bbox": [x, y, w, h]}], "inference_time_ms",
  "image_size": [w, h]}``; boxes are in pixels of the image as sent, after its EXIF orientation.
- ``POST /detect/batch`` takes several images (every part named ``file``) and answers one such
  result per image, in order: fewer HTTP round trips for bulk work.
- ``GET /health`` reports ``status`` (``loading``, ``ok`` or ``error``), the model, device,
  backend and, when NVML sees one, the GPU.
- ``GET /metrics`` is the Prometheus text format: requests, latencies, batch sizes, queue depth.

Two backends: ``rtdetr`` (Hugging Face transformers' RT-DETRv2, CUDA with fp16 when there is a
GPU, concurrent requests grouped into one forward pass) and ``hog`` (OpenCV's built-in HOG people
detector: nothing to download, CPU only, low accuracy; for demos and machines without a GPU).

It lives apart from the integration (its own requirements file) because it runs on the GPU box,
not inside Home Assistant. Run it with ``python3 -m scripts.detection_server --help``.
"""

from __future__ import annotations

__version__ = "1.0.0"

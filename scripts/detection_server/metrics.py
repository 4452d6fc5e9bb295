"""The server's Prometheus metrics, kept and written by prometheus_client.

Why the library: its text and OpenMetrics writers are what Prometheus itself is tested against
(escaping, +Inf buckets, content negotiation), so a scraper that asks for OpenMetrics gets it.
Each server (each app, in tests several per process) has its own registry rather than the
library's global one, and the `_created` series the library adds by default are turned off:
they double every counter and histogram, and nothing here reads them.

Names and labels are the server's contract with dashboards: detector_requests_total
{endpoint, status}, detector_request_duration_seconds {endpoint},
detector_inference_duration_seconds, detector_batch_size, detector_images_total {outcome},
detector_detections_total {class}, and the gauges detector_queue_depth,
detector_images_in_progress and detector_model_loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: from a GPU's few milliseconds to a CPU's seconds per image."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

disable_created_metrics()  # type: ignore[no-untyped-call]


class ServerMetrics:
    """One server's metrics: counters and histograms it updates, gauges read at scrape time."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], float],
        in_progress: Callable[[], float],
        model_loaded: Callable[[], float],
    ) -> None:
        """Register every metric in a registry of this server's own."""
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "detector_requests",
            "HTTP requests answered, by route and status code.",
            ("endpoint", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "detector_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference = Histogram(
            "detector_inference_duration_seconds",
            "Time of one backend call (one forward pass over a batch).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_sizes = Histogram(
            "detector_batch_size",
            "Images per backend call (dynamic batching).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.images = Counter(
            "detector_images", "Images received, by outcome.", ("outcome",), registry=registry
        )
        self.detections = Counter(
            "detector_detections", "Detections returned, by class.", ("class",), registry=registry
        )
        gauges = (
            ("detector_queue_depth", "Images waiting for the model.", queue_depth),
            ("detector_images_in_progress", "Images inside a backend call now.", in_progress),
            (
                "detector_model_loaded",
                "1 once the model answers, 0 while loading or after it failed to load.",
                model_loaded,
            ),
        )
        for name, help_text, read in gauges:
            Gauge(name, help_text, registry=registry).set_function(read)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Return the metrics in the format the Accept header asks for, and its content type.

        Prometheus's text format 0.0.4 unless the scraper asks for OpenMetrics.
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

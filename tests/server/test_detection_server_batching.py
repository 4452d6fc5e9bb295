"""The detection server's dynamic batcher and metrics, in this process with a recording backend.

The batcher's rules decide the server's throughput on a GPU and its latency for a lone camera;
they are checked here directly, where the test controls exactly when images arrive.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
import threading

from prometheus_client.parser import text_string_to_metric_families
import pytest

from scripts.detection_server.backends import Detection, Prepared
from scripts.detection_server.batching import DynamicBatcher, QueueFullError
from scripts.detection_server.metrics import ServerMetrics


class RecordingBackend:
    """A backend that returns one detection per image (confidence from the image's data)."""

    name = "recording"
    model = "none"
    device = "cpu"
    dtype = "float32"
    max_batch = 8

    def __init__(self) -> None:
        """Record nothing yet; release() lets a blocked call go on."""
        self.batches: list[list[object]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def load(self) -> None:
        """Nothing to load."""

    def prepare(self, image: object) -> Prepared:
        """Unused here: tests submit Prepared inputs directly."""
        raise NotImplementedError

    def detect(self, inputs: list[Prepared], threshold: float) -> list[list[Detection]]:
        """Record the batch, wait for the gate, then answer (or raise fail)."""
        self.batches.append([item.data for item in inputs])
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        return [
            [
                Detection(label="person", confidence=confidence, box=(0.0, 0.0, 1.0, 1.0))
                for confidence in (0.3, 0.6, 0.9)
                if confidence >= threshold
            ]
            for _item in inputs
        ]


MakeBatcher = Callable[..., DynamicBatcher]


def item(name: str) -> Prepared:
    """Return a prepared input named name."""
    return Prepared(data=name, size=(10, 10))


@pytest.fixture
async def backend() -> RecordingBackend:
    """Return the recording backend."""
    return RecordingBackend()


@pytest.fixture
async def make_batcher(backend: RecordingBackend) -> AsyncIterator[MakeBatcher]:
    """Return a factory of started batchers over backend; stop them all afterwards."""
    made: list[DynamicBatcher] = []

    def make(**options: object) -> DynamicBatcher:
        batcher = DynamicBatcher(backend, **options)  # type: ignore[arg-type] - options vary
        batcher.start()
        made.append(batcher)
        return batcher

    yield make
    backend.gate.set()
    for batcher in made:
        await batcher.stop()


async def test_images_that_arrive_together_share_a_pass(
    backend: RecordingBackend, make_batcher: MakeBatcher
) -> None:
    """Five images submitted at once, with more announced, go through one backend call."""
    incoming = {"count": 0}
    batcher = make_batcher(max_batch=8, max_wait=5.0, incoming=lambda: incoming["count"])
    incoming["count"] = 4
    first = asyncio.ensure_future(batcher.submit(item("a"), 0.5))
    await asyncio.sleep(0.05)
    assert backend.batches == [], "the worker waits for the announced images"
    rest = [asyncio.ensure_future(batcher.submit(item(name), 0.5)) for name in "bcde"]
    incoming["count"] = 0
    results = await asyncio.gather(first, *rest)
    assert backend.batches == [["a", "b", "c", "d", "e"]]
    assert all(len(found) == 2 for found, _ms in results)


async def test_a_lone_image_does_not_wait(
    backend: RecordingBackend, make_batcher: MakeBatcher
) -> None:
    """With nothing announced, an image goes at once even though max_wait is long."""
    batcher = make_batcher(max_batch=8, max_wait=30.0, incoming=lambda: 0)
    found, elapsed_ms = await asyncio.wait_for(batcher.submit(item("a"), 0.0), 5)
    assert [d.confidence for d in found] == [0.3, 0.6, 0.9]
    assert elapsed_ms >= 0
    assert backend.batches == [["a"]]


async def test_batches_are_cut_at_max_batch_and_thresholds_are_per_image(
    backend: RecordingBackend, make_batcher: MakeBatcher
) -> None:
    """Seven queued images with max_batch 3 make passes of 3, 3 and 1; each keeps its threshold."""
    backend.gate.clear()
    batcher = make_batcher(max_batch=3, max_wait=0.0)
    blocker = asyncio.ensure_future(batcher.submit(item("blocker"), 0.0))
    await asyncio.sleep(0.05)
    futures = [
        asyncio.ensure_future(batcher.submit(item(str(n)), threshold))
        for n, threshold in enumerate((0.0, 0.5, 0.7, 0.95, 0.0, 0.5, 0.7))
    ]
    await asyncio.sleep(0.05)
    assert batcher.depth == 7
    backend.gate.set()
    results = await asyncio.gather(*futures)
    await blocker
    assert backend.batches == [["blocker"], ["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert [len(found) for found, _ms in results] == [3, 2, 1, 0, 3, 2, 1]


async def test_a_full_queue_refuses_at_once(
    backend: RecordingBackend, make_batcher: MakeBatcher
) -> None:
    """Past max_queue waiting images, submit raises QueueFullError instead of queueing."""
    backend.gate.clear()
    batcher = make_batcher(max_batch=1, max_wait=0.0, max_queue=2)
    running = asyncio.ensure_future(batcher.submit(item("running"), 0.0))
    await asyncio.sleep(0.05)
    waiting = [asyncio.ensure_future(batcher.submit(item(n), 0.0)) for n in "ab"]
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError):
        await batcher.submit(item("c"), 0.0)
    backend.gate.set()
    await asyncio.gather(running, *waiting)


async def test_a_failing_pass_fails_each_of_its_images_and_the_next_pass_works(
    backend: RecordingBackend, make_batcher: MakeBatcher
) -> None:
    """An exception in the backend reaches every request of that batch; the worker goes on."""
    backend.fail = RuntimeError("CUDA out of memory")
    batcher = make_batcher(max_batch=4, max_wait=0.0)
    outcomes = await asyncio.gather(
        *(batcher.submit(item(n), 0.0) for n in "ab"), return_exceptions=True
    )
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    backend.fail = None
    found, _ms = await batcher.submit(item("c"), 0.0)
    assert len(found) == 3


async def test_stopping_fails_what_still_waits(backend: RecordingBackend) -> None:
    """stop() answers queued requests with an error instead of leaving them hanging."""
    backend.gate.clear()
    batcher = DynamicBatcher(backend, max_batch=1, max_wait=0.0)
    batcher.start()
    running = asyncio.ensure_future(batcher.submit(item("running"), 0.0))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(batcher.submit(item("queued"), 0.0))
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(batcher.stop())
    await asyncio.sleep(0.05)
    backend.gate.set()
    await stopping
    with pytest.raises(QueueFullError):
        await running
    with pytest.raises(QueueFullError):
        await queued


def test_metrics_render_the_text_format() -> None:
    """The server's metrics in Prometheus text: escaped labels, buckets, gauges, no _created."""
    depth = [3.0]
    metrics = ServerMetrics(
        queue_depth=lambda: depth[0], in_progress=lambda: 1.0, model_loaded=lambda: 1.0
    )
    metrics.requests.labels('/a"b\\', "200").inc()
    metrics.requests.labels('/a"b\\', "200").inc(2)
    for value in (0.004, 0.01, 0.5, 70.0):
        metrics.latency.labels("/detect").observe(value)
    depth[0] = 5.0
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert 'detector_requests_total{endpoint="/a\\"b\\\\",status="200"} 3.0\n' in text
    assert "_created" not in text
    lines = text.splitlines()
    assert lines[lines.index("# TYPE detector_queue_depth gauge") + 1] == "detector_queue_depth 5.0"
    families = {family.name: family for family in text_string_to_metric_families(text)}
    buckets = [
        (sample.labels["le"], sample.value)
        for sample in families["detector_request_duration_seconds"].samples
        if sample.name.endswith("_bucket")
    ]
    assert buckets[0] == ("0.005", 1.0)
    assert buckets[1] == ("0.01", 2.0)
    assert buckets[-2:] == [("10.0", 3.0), ("+Inf", 4.0)]
    assert {sample.value for sample in families["detector_model_loaded"].samples} == {1.0}

    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")

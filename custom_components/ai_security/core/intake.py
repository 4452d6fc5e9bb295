"""The intake stage: an upload's path in, a media row and its detect job out.

upload path (from the watcher, the start-up scan, or an action) -> classify (a camera's folder,
a picture or a clip) -> inspect in the executor (inside the root, media checks, upright size,
SHA-256) -> dedupe (the same bytes moments ago) -> register: the camera (new folder, new
camera), the media row unless its content is known, and the detect job, in one transaction ->
the detect worker takes the job, straight from here when it has room.

Registration is written once, for new uploads and for an upload queued again on request. The
bytes read by the inspection are kept (up to a bound) for the detector, so an image is read
from disk once.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
import logging
import posixpath
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from .context import BackgroundTasks, StageContext
from .dedupe import RecentHashes
from .errors import AiSecurityError
from .jobs import JobKind, JobWorker
from .media import Intake, RejectedMediaError, classify, inspect_upload
from .registration import Registered, register_upload
from .storage import MediaRow, is_transient
from .uploads import OutsideRootError, shown
from .watcher import scan_uploads

_LOGGER = logging.getLogger(__name__)

REGISTER_RETRY_FIRST: Final = 0.5
"""Seconds before an upload the database could not take is offered to it again (doubling)."""
REGISTER_RETRY_MAX: Final = 30.0
"""The longest wait between two attempts to register an upload."""

CONTENT_CACHE_BYTES: Final = 8 * 1024 * 1024
"""Image bytes kept between intake and detection; beyond this, detection reads the file."""


class ReprocessError(AiSecurityError):
    """A file cannot be queued again; the translation key and placeholders name the reason."""


class IntakeStage:
    """Takes uploads in and registers them with their detect jobs."""

    def __init__(self, ctx: StageContext, detect_worker: Callable[[], JobWorker | None]) -> None:
        """Use the shared context; detect_worker returns the running detect worker, if any."""
        self._ctx = ctx
        self._detect_worker = detect_worker
        self._recent = RecentHashes(ctx.config.dedupe_ttl)
        self._slots = asyncio.Semaphore(ctx.config.intake_concurrency)
        self.tasks = BackgroundTasks()
        # Images read by intake, kept (up to a bound) until their detection job sends them.
        self._contents: OrderedDict[int, bytes] = OrderedDict()
        self._contents_size = 0

    # --- uploads in -----------------------------------------------------------------------------

    def submit(self, path: str) -> None:
        """Take in an upload path (called by the watcher once the file has settled)."""
        if not self._ctx.running:
            return
        self.tasks.spawn(self._intake(path), "ai_security intake")

    async def wait(self) -> None:
        """Return once every submitted upload has been taken in (for tests and benchmarks)."""
        await self.tasks.wait()

    async def stop(self) -> None:
        """Cancel the uploads being taken in; the start-up scan finds them again."""
        await self.tasks.cancel()

    async def queue_backlog(self) -> None:
        """Queue uploads that arrived while the pipeline was not running (not older history)."""
        unprocessed = await self._unprocessed_uploads()
        before = self._ctx.config.history_before
        cutoff = before.timestamp() if before is not None else None
        backlog = [path for mtime, path in unprocessed if cutoff is None or mtime >= cutoff]
        if old := len(unprocessed) - len(backlog):
            _LOGGER.info(
                "Leaving %s upload(s) alone that were there before this hub was set up; the "
                "process_old_uploads action takes them in on purpose",
                old,
            )
        if backlog:
            _LOGGER.info("Queuing %s upload(s) that arrived while stopped", len(backlog))
        for path in backlog:
            self.submit(path)

    async def process_old_uploads(
        self, *, camera_id: str | None = None, since: datetime | None = None
    ) -> int:
        """Queue the uploads not processed yet (history included); return how many.

        For a user who wants the snapshots that were in the folder before the hub was set up
        judged after all: they are detected and judged like new uploads, so their events are
        announced too. camera_id limits it to one camera's folder (it must exist), since to
        files changed at or after that time.
        """
        folder: str | None = None
        if camera_id is not None:
            camera = self._ctx.cameras.get(camera_id)
            if camera is None:
                raise ReprocessError("unknown_camera", camera=camera_id)
            folder = camera.folder
        root = self._ctx.config.camera_root
        cutoff = since.timestamp() if since is not None else None

        def wanted(mtime: float, path: str) -> bool:
            if cutoff is not None and mtime < cutoff:
                return False
            found = classify(root, path)
            return found is not None and (folder is None or found[0] == folder)

        chosen = [path for mtime, path in await self._unprocessed_uploads() if wanted(mtime, path)]
        _LOGGER.info("Queuing %s earlier upload(s) on request", len(chosen))
        for path in chosen:
            self.submit(path)
        return len(chosen)

    async def reprocess(self, path: str) -> int:
        """Queue an upload for detection again, even if its content was processed; return the job.

        Raises ReprocessError (with a translation key) for a path that is not an upload under the
        camera root or that cannot be read.
        """
        root = self._ctx.config.camera_root
        # Pure string work (no file system): the path as given, relative to the root or not.
        full = posixpath.normpath(posixpath.join(root, path))
        classified = classify(root, full)
        if classified is None:
            raise ReprocessError("not_an_upload", path=path)
        folder, _media_type = classified
        try:
            intake: Intake = await self._ctx.run_blocking(inspect_upload, root, full)
        except FileNotFoundError as err:
            raise ReprocessError("file_not_found", path=path) from err
        except (RejectedMediaError, OSError) as err:
            raise ReprocessError("file_unusable", path=path, error=str(err)) from err
        registered = await self._register(folder, full, intake, again=True)
        self._registered(registered, intake.content)
        _LOGGER.info("Queued %s for detection again (job %s)", shown(full), registered.job_id)
        return registered.job_id or 0

    # --- the bytes kept for the detector --------------------------------------------------------

    def take_content(self, media_id: int) -> bytes | None:
        """Return (and forget) an image's bytes read at intake, if still kept."""
        content = self._contents.pop(media_id, None)
        if content is not None:
            self._contents_size -= len(content)
        return content

    def _keep_content(self, media_id: int, content: bytes) -> None:
        """Remember an image's bytes for its detection, forgetting the oldest beyond the bound."""
        self._contents[media_id] = content
        self._contents_size += len(content)
        while self._contents_size > CONTENT_CACHE_BYTES and self._contents:
            _media_id, dropped = self._contents.popitem(last=False)
            self._contents_size -= len(dropped)

    # --- the steps ------------------------------------------------------------------------------

    async def _unprocessed_uploads(self) -> list[tuple[float, str]]:
        """Return (modification time, path) of the uploads not in the database, oldest first."""
        known: set[str] = set(
            await self._ctx.db.run(lambda s: list(s.scalars(select(MediaRow.path)).all()))
        )
        found = await self._ctx.run_blocking(scan_uploads, self._ctx.config.camera_root)
        return [(mtime, path) for mtime, path in found if path not in known]

    async def _intake(self, path: str) -> None:
        classified = classify(self._ctx.config.camera_root, path)
        if classified is None:
            return
        folder, _media_type = classified
        # The slot is held through each registration attempt: when the database falls behind,
        # intake waits instead of queueing unbounded work in front of the detection jobs.
        async with self._slots:
            intake = await self._inspect(path)
            if intake is None:
                return
            if self._recent.seen(intake.sha256):
                _LOGGER.debug("Skipping %s: the same content arrived moments ago", shown(path))
                return
        registering = self._register_until_stored(folder, path, intake)
        del intake  # the coroutine owns the upload's bytes now; it drops them if it must wait
        stored = await registering
        if stored is None:
            return
        registered, content = stored
        self._registered(registered, content)
        if registered.media_id is None:
            _LOGGER.debug("Skipping %s: its content was processed before", path)

    def _registered(self, registered: Registered, content: bytes | None) -> None:
        """Know the upload's camera, keep its bytes and wake the detect worker."""
        if self._ctx.cameras.add(registered.camera, new=registered.new_camera):
            camera = registered.camera
            _LOGGER.info("New camera %s (%s)", camera.name, camera.camera_id)
        if registered.media_id is None:
            return
        if content is not None:
            self._keep_content(registered.media_id, content)
        if registered.job is None:
            self._ctx.queue.notify(JobKind.DETECT)

    async def _inspect(self, path: str) -> Intake | None:
        """Check and hash an upload in the executor; None (logged) when it cannot be used."""
        try:
            intake: Intake = await self._ctx.run_blocking(
                inspect_upload, self._ctx.config.camera_root, path
            )
        except FileNotFoundError:
            _LOGGER.debug("%s disappeared before it could be read", shown(path))
            return None
        except RejectedMediaError as err:
            _LOGGER.warning("Ignoring %s: %s", shown(path), err)
            return None
        except OutsideRootError as err:
            _LOGGER.warning("Not reading %s: %s", shown(path), err)
            return None
        except OSError as err:
            _LOGGER.warning("Cannot read %s: %s", shown(path), err)
            return None
        return intake

    async def _register_until_stored(
        self, folder: str, path: str, intake: Intake
    ) -> tuple[Registered, bytes | None] | None:
        """Register an upload, retrying with backoff while the database is busy or gone.

        A SQLite file locked by another program or a PostgreSQL server restarting passes by
        itself: the upload waits here (its intake slot given back between attempts, so other
        uploads are not held behind it, and its bytes dropped, so an outage costs no memory
        per waiting upload: detection reads the file again) and is stored once the database
        answers. Only an error that cannot pass (a bug) gives up, logged; the start-up scan then
        finds the file again. Returns what was stored with the bytes still held; None when not
        stored.
        """
        delay = REGISTER_RETRY_FIRST
        attempts = 0
        while True:
            try:
                async with self._slots:
                    return await self._register(folder, path, intake), intake.content
            except Exception as err:
                if not (self._ctx.running and is_transient(err)):
                    self._recent.forget(intake.sha256)
                    _LOGGER.exception(
                        "Could not register %s; it is picked up again at the next start",
                        shown(path),
                    )
                    return None
                attempts += 1
                if attempts == 1:
                    _LOGGER.warning(
                        "The database is busy or unreachable (%s); %s is stored as soon as it "
                        "answers",
                        err,
                        shown(path),
                    )
                else:
                    _LOGGER.debug("Still cannot register %s (attempt %s)", shown(path), attempts)
                intake = replace(intake, content=None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REGISTER_RETRY_MAX)

    async def _register(
        self, folder: str, path: str, intake: Intake, *, again: bool = False
    ) -> Registered:
        """Store the upload and its detect job in one transaction; raise when that failed.

        again: queue it even when its content is known (the reprocess action).
        """
        now = self._ctx.clock()
        known = self._ctx.cameras.in_folder(folder)
        # A detect worker with room takes a new upload's job straight from here, unclaimed (see
        # JobWorker.try_reserve); otherwise the job is queued and claimed later.
        worker = None if again else self._detect_worker()
        handed = worker is not None and worker.try_reserve()

        def register(session: Session) -> Registered:
            return register_upload(
                session, folder, path, intake, known=known, now=now, again=again, running=handed
            )

        try:
            registered: Registered = await self._ctx.db.run(register)
        except BaseException:
            if handed and worker is not None:
                worker.unreserve()
            raise
        if handed and worker is not None:
            if registered.job is None:
                worker.unreserve()
            else:
                worker.hand(registered.job)
        return registered

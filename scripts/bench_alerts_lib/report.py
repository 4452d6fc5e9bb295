"""The alert benchmark's tables (stdout): latency percentiles, and each visit's counts."""

import os
import platform

from homeassistant.const import __version__ as ha_version

from scripts.bench_lib.report import percentile

from .latency import CONFIDENCE, LatencyRun
from .visits import DEMO_CAMERAS, DEMO_GONE, DEMO_VISIT, INTERVAL, STANDING, VisitsRun

TARGET_P50_MS = 50.0
TARGET_P99_MS = 150.0


def environment() -> str:
    """Return one line on where the benchmark ran."""
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"Python {platform.python_version()}, Home Assistant {ha_version}, {os.cpu_count()} CPUs,"
        f" load average at the start {load}"
    )


def _row(label: str, values: list[float], expected: int) -> str:
    if not values:
        return f"  {label:<40} {'-':>8} {'-':>8} {'-':>8} {0:>5}/{expected}"
    return (
        f"  {label:<40} {percentile(values, 0.5) or 0:8.1f} {percentile(values, 0.99) or 0:8.1f}"
        f" {max(values):8.1f} {len(values):>5}/{expected}"
    )


def latency(runs: list[LatencyRun]) -> str:
    """Return the latency table, with the targets on the phone's notification."""
    first = runs[0]
    lines = [
        "Alerts, latency: file closed -> phone notified by the notify blueprint (its stage 1),",
        f"for a fast-path person ({CONFIDENCE}); {first.files} camera JPEGs of about 300 KB over"
        f" {first.cameras} cameras at {first.rate:g}/s,",
        f"each its own incident (idle timeout {first.idle:g} s, a camera's uploads"
        f" {first.cameras / first.rate:g} s apart); folder_watcher on the same folder",
        "",
        f"  {'close -> ..., ms':<40} {'p50':>8} {'p99':>8} {'max':>8} {'seen':>11}",
    ]
    verdicts: list[str] = []
    for run in runs:
        lines.append(f"LLM: {run.llm}")
        lines.append(_row("folder_watcher's closed event", run.watcher_ms, run.files))
        lines.append(_row("detections stored", run.detected_ms, run.files))
        lines.append(_row("ai_security_event (picture drawn)", run.event_ms, run.files))
        lines.append(_row("phone notified (with sound)", run.notify_ms, run.files))
        lines.append(
            f"  incidents {run.incidents} for {run.files} uploads; notifications with sound"
            f" {run.sound}, silent replacements {run.silent}; LLM verdicts by then"
            f" {run.llm_verdicts}"
        )
        slow = sum(1 for value in run.notify_ms if value >= TARGET_P99_MS)
        lines.append(
            f"  notified {TARGET_P99_MS:g} ms or more after the close: {slow}; event loop lag"
            f" p99 {percentile(run.lag_ms, 0.99) or 0:.1f} ms, max"
            f" {max(run.lag_ms, default=0):.1f} ms"
        )
        llm = f", llama-server {run.llm_cores:.2f}" if run.llm_cores is not None else ""
        lines.append(
            f"  CPU over the run, in cores: Home Assistant {run.process_cores:.2f}{llm}, the whole"
            f" machine {run.machine_cores:.2f} of {os.cpu_count()}"
        )
        worst = sorted(zip(run.notify_ms, run.notify_after_go, strict=True), reverse=True)[:3]
        lines.append(
            "  slowest: "
            + ", ".join(f"{ms:.0f} ms (closed {at:.1f} s after the start)" for ms, at in worst)
        )
        lines.extend(f"  note: {note}" for note in run.notes)
        p50 = percentile(run.notify_ms, 0.5)
        p99 = percentile(run.notify_ms, 0.99)
        verdicts.append(
            f"  {run.llm}: p50 < {TARGET_P50_MS:g} ms {_pass(p50, TARGET_P50_MS)},"
            f" p99 < {TARGET_P99_MS:g} ms {_pass(p99, TARGET_P99_MS)}"
        )
    lines.append("targets (phone notified):")
    lines.extend(verdicts)
    return "\n".join(lines)


def _pass(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return f"{'PASS' if value < limit else 'FAIL'} ({value:.1f} ms)"


def visits(run: VisitsRun) -> str:
    """Return one scenario's table: per visit, incidents, notifications, own pictures."""
    speed = run.speed
    if run.scenario == "demo":
        title = (
            f"Alerts, demo replay: {DEMO_CAMERAS} cameras, a person in view for"
            f" {DEMO_VISIT / 60:g} min (an upload every {INTERVAL:g} s, +-15 %), then gone"
            f" {DEMO_GONE / 60:g} min (no uploads)"
        )
    else:
        title = (
            f"Alerts, standing: a person standing still in view for {STANDING / 60:g} min, an"
            f" upload every {INTERVAL:g} s, one camera per longest-incident option"
        )
    options = "; ".join(
        f"{name}: idle {o['idle']:g} s, window {o['window']:g} s, longest {o['cap'] * 60:g} s"
        for name, o in run.options.items()
    )
    lines = [
        title,
        f"--speed {speed:g}: every time divided by {speed:g} ({run.seconds:g} s of uploads and"
        f" quiet; {options}); LLM: {run.llm}",
        "",
        f"  {'visit':<22} {'uploads':>7} {'incidents':>9} {'goal':>4} {'sound':>5} {'goal':>4}"
        f" {'silent':>6} {'verdicts':>8} {'own picture':>13} {'first alert':>11}",
    ]
    for visit in run.visits:
        share = (
            f"{visit.pictures_ok}/{visit.pictures} {visit.pictures_ok / visit.pictures:.0%}"
            if visit.pictures
            else "-"
        )
        first = f"{visit.first_alert_ms:.0f} ms" if visit.first_alert_ms is not None else "-"
        goal_sound = visit.expected
        lines.append(
            f"  {f'{visit.entry} {visit.folder}':<22} {visit.uploads:>7} {visit.incidents:>9}"
            f" {visit.expected:>4} {visit.sound:>5} {goal_sound:>4} {visit.silent:>6}"
            f" {visit.verdicts:>8} {share:>13} {first:>11}"
        )
        lines.extend(f"    note: {note}" for note in visit.notes)
    lines.extend(f"note: {note}" for note in run.notes)
    lines.append(
        "sound: notifications with sound (stage 1); silent: replaced in place (stage 2);"
        " verdicts: ai_security_event_updated with a new verdict; own picture: the picture"
        " loaded from the notification's URL is its incident's, from the upload that opened it"
    )
    return "\n".join(lines)

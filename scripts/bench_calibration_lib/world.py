"""The synthetic weeks: what each camera sees, what the LLM says of it, and what it really was.

Generated offline from a seed, so a run is repeatable. Garden (640x480): a statue that the
detector takes for a person every night, at one spot, with a little jitter; a cat on some
nights, anywhere; an intruder at night, at other places, twice a week; once, an intruder
standing right next to the statue. Front Door: daytime deliveries. The scripted LLM is fooled
the way real ones are: it calls the statue a person loitering at night (high) and the cat an
animal prowling near the house (high); it judges intruders high or critical and deliveries low
or medium. The truth says which are threats.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
import random
from typing import Any, Final
from zoneinfo import ZoneInfo

TZ: Final = ZoneInfo("Europe/Amsterdam")
FRAME: Final = (640, 480)
STATUE: Final = (400.0, 120.0, 100.0, 240.0)
"""The statue's box (left, top, width, height in pixels)."""
BESIDE_STATUE: Final = (478.0, 112.0, 104.0, 250.0)
"""The intruder standing right next to the statue: the boxes touch (IoU about 0.1)."""
FIRST_DAY: Final = date(2026, 11, 2)
"""A Monday."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One object the detector reports."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]

    def as_detection(self) -> dict[str, Any]:
        """Return it as the detector's protocol writes it."""
        return {
            "class": self.label,
            "confidence": round(self.confidence, 3),
            "bbox": [round(value, 1) for value in self.box],
        }


@dataclass(frozen=True, slots=True)
class Visit:
    """One upload: a camera's picture of a scene at a time."""

    at: datetime
    camera: str
    scene: str
    """statue, cat, intruder, intruder beside the statue, delivery."""
    seen: tuple[Seen, ...]
    score: int
    """What the scripted LLM says (its level follows from the score)."""
    threat: bool
    """The truth: a real threat the household must hear of."""

    @property
    def week(self) -> int:
        """Return the week of the run it falls in (1, 2, ...), by the day its night began."""
        day = (self.at.astimezone(TZ) - timedelta(hours=12)).date()
        return (day - FIRST_DAY).days // 7 + 1


def _at(day: date, hour: float) -> datetime:
    """Return the local time hour (may pass 24: after midnight) of day."""
    return datetime.combine(day, time(0), TZ) + timedelta(hours=hour)


def _jitter(rng: random.Random, box: tuple[float, float, float, float], pixels: float) -> Any:
    return tuple(value + rng.uniform(-pixels, pixels) for value in box)


def _statue(rng: random.Random) -> Seen:
    return Seen("person", rng.uniform(0.72, 0.88), _jitter(rng, STATUE, 5))


def weeks(count: int, seed: int) -> list[Visit]:
    """Return count weeks of visits, in time order."""
    rng = random.Random(seed)  # noqa: S311 - made-up weeks, not secrets
    visits: list[Visit] = []
    beside_night = 9  # the second week's Wednesday night
    for number in range(count * 7):
        day = FIRST_DAY + timedelta(days=number)
        # The statue: up to three times a night, whenever the night-vision light catches it.
        visits.extend(
            Visit(
                _at(day, hour + rng.uniform(0, 1)),
                "Garden",
                "statue",
                (_statue(rng),),
                rng.randint(66, 80),
                threat=False,
            )
            for hour in (22.5, 25.5, 28.5)
            if rng.random() < 0.8
        )
        if rng.random() < 0.5:
            left, top = rng.uniform(20, 560), rng.uniform(260, 420)
            visits.append(
                Visit(
                    _at(day, rng.uniform(22, 29)),
                    "Garden",
                    "cat",
                    (Seen("cat", rng.uniform(0.7, 0.9), (left, top, 60.0, 40.0)),),
                    rng.randint(60, 68),
                    threat=False,
                )
            )
        # Intruders, twice a week, well away from the statue.
        if number % 7 in (1, 4):
            box = (rng.uniform(20, 240), rng.uniform(100, 200), 95.0, 230.0)
            visits.append(
                Visit(
                    _at(day, rng.uniform(24.5, 27.5)),
                    "Garden",
                    "intruder",
                    (Seen("person", rng.uniform(0.88, 0.97), box),),
                    rng.randint(78, 94),
                    threat=True,
                )
            )
        if number == beside_night and count >= 2:
            visits.append(
                Visit(
                    _at(day, 26.0),
                    "Garden",
                    "intruder beside the statue",
                    (_statue(rng), Seen("person", 0.93, BESIDE_STATUE)),
                    86,
                    threat=True,
                )
            )
        visits.extend(
            Visit(
                _at(day, rng.uniform(10, 17)),
                "Front Door",
                "delivery",
                (Seen("person", rng.uniform(0.9, 0.97), (250.0, 90.0, 110.0, 330.0)),),
                rng.randint(22, 40),
                threat=False,
            )
            for _ in range(rng.choice((1, 1, 2)))
        )
    visits.sort(key=lambda visit: visit.at)
    return visits

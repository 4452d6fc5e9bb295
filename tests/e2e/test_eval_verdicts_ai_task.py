"""scripts/eval_verdicts judging through a Home Assistant AI Task entity, in a real Home Assistant.

Home Assistant runs as its own process (tests/live_hass.py) with a small custom integration
whose ai_task entity stands in for OpenAI's or Ollama's: it records what each task brought (the
attachments, whether they are JPEGs, the instructions' list of pictures, the structure's
fields) and answers every task with one fixed verdict run through the task's structure, as
those entities do. The evaluation runs as a user runs it, with the owner's token: its table must
show that verdict, checked, for all seven scenes and the agreement; the entity must have been
given each scene's pictures; and the uploads must be gone from the media folder afterwards.
"""

import asyncio
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from scripts.demo import hass_api
from scripts.eval_verdicts_lib.__main__ import CASES, LEVELS
from tests.live_hass import REPO, LiveHomeAssistant

pytestmark = pytest.mark.slow

USERNAME, PASSWORD = "owner", "owner-password-1"
JUDGE_DOMAIN = "fake_judge"
RECORD = "fake_judge_tasks.jsonl"
"""The entity's record of its tasks, one JSON line each, in Home Assistant's config folder."""
ANSWER: dict[str, Any] = {
    "observations": "Someone stands by the house and looks around.",
    "objects": ["person", "parcel"],
    "reasoning": "A visitor close to the house.",
    "risk_score": 72.6,  # a number selector's answer is a decimal: the script rounds it
    "risk_level": "high",
    "confidence": 70.0,
    "title": "Someone waits at the house",
    "summary": "Someone waits at the house.",
    "other_concerns": [],
}
PICTURES = 3
"""Pictures per verdict (the script's default): a scene of fewer frames gets all of them."""

MANIFEST = {
    "domain": JUDGE_DOMAIN,
    "name": "Fake judge",
    "version": "1.0.0",
    "config_flow": True,
    "dependencies": ["ai_task"],
    "documentation": "https://example.invalid/fake_judge",
    "codeowners": [],
    "iot_class": "local_push",
}
INIT = '''\
"""A judge for the evaluation's test: one AI Task entity, set up by a config entry."""

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    await hass.config_entries.async_forward_entry_setups(entry, [Platform.AI_TASK])
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    return await hass.config_entries.async_unload_platforms(entry, [Platform.AI_TASK])
'''
CONFIG_FLOW = f'''\
"""The judge's entry, made at once: there is nothing to ask."""

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult


class FakeJudgeFlow(ConfigFlow, domain="{JUDGE_DOMAIN}"):
    VERSION = 1

    async def async_step_user(self, user_input=None) -> ConfigFlowResult:
        return self.async_create_entry(title="Fake judge", data={{}})
'''
AI_TASK = f'''\
"""The judge: records each task, answers every one with the same verdict."""

import json
from pathlib import Path

from homeassistant.components import ai_task
from homeassistant.components.conversation import ChatLog
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

ANSWER = {ANSWER!r}


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry, add_entities) -> None:
    add_entities([FakeJudge()])


def _record(path: Path, task: ai_task.GenDataTask) -> None:
    record = {{
        "attachments": [
            {{"mime_type": item.mime_type, "jpeg": item.path.read_bytes()[:2] == b"\\xff\\xd8"}}
            for item in task.attachments or []
        ],
        "pictures_listed": "Pictures attached, in order:" in task.instructions,
        "fields": sorted(str(key) for key in task.structure.schema),
    }}
    with path.open("a") as file:
        file.write(json.dumps(record) + "\\n")


class FakeJudge(ai_task.AITaskEntity):
    _attr_name = "Fake judge"
    _attr_unique_id = "fake_judge"
    _attr_supported_features = (
        ai_task.AITaskEntityFeature.GENERATE_DATA
        | ai_task.AITaskEntityFeature.SUPPORT_ATTACHMENTS
    )

    async def _async_generate_data(
        self, task: ai_task.GenDataTask, chat_log: ChatLog
    ) -> ai_task.GenDataTaskResult:
        if task.structure is None:
            raise HomeAssistantError("a verdict needs a structure")
        path = Path(self.hass.config.path("{RECORD}"))
        await self.hass.async_add_executor_job(_record, path, task)
        return ai_task.GenDataTaskResult(
            conversation_id=chat_log.conversation_id, data=task.structure(ANSWER)
        )
'''


@dataclass
class JudgedHomeAssistant(LiveHomeAssistant):
    """A live Home Assistant with the fake judge installed and its own media folder.

    The media folder is named (Home Assistant's default depends on whether it runs in a
    container), so the test can see that the uploads went.
    """

    @property
    def media(self) -> Path:
        """Return the folder of media-source://media_source/local/."""
        return self.config_dir / "media"

    def _prepare(self) -> None:
        super()._prepare()
        config = self.config_dir / "configuration.yaml"
        text = config.read_text()
        media = f"homeassistant:\n  media_dirs:\n    local: {self.media}\n"
        config.write_text(text.replace("homeassistant:\n", media, 1))
        self.media.mkdir(parents=True, exist_ok=True)
        custom = self.config_dir / "custom_components"
        # The process has the repository on its path, whose custom_components is a package
        # (with __init__.py): this folder must be one too, or Home Assistant finds only that.
        (custom / "__init__.py").write_text("")
        package = custom / JUDGE_DOMAIN
        package.mkdir(parents=True, exist_ok=True)
        (package / "manifest.json").write_text(json.dumps(MANIFEST))
        (package / "__init__.py").write_text(INIT)
        (package / "config_flow.py").write_text(CONFIG_FLOW)
        (package / "ai_task.py").write_text(AI_TASK)


async def add_judge(
    http: aiohttp.ClientSession, session: hass_api.Session, home: LiveHomeAssistant
) -> str:
    """Add the judge's entry through the config flow API; return its entity's id."""
    async with http.post(
        f"{session.base_url}/api/config/config_entries/flow",
        json={"handler": JUDGE_DOMAIN, "show_advanced_options": False},
        headers=session.headers,
    ) as response:
        assert response.status == 200, f"{await response.text()}\n{home.log_tail()}"
        result = await response.json()
    assert result["type"] == "create_entry", result
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        async with http.get(f"{session.base_url}/api/states", headers=session.headers) as response:
            states = await response.json()
        found = [
            state["entity_id"] for state in states if state["entity_id"].startswith("ai_task.")
        ]
        if found:
            (entity_id,) = found
            return str(entity_id)
        assert loop.time() < deadline, f"the judge's entity did not appear\n{home.log_tail()}"
        await asyncio.sleep(0.2)


def run_eval(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the evaluation as its wrapper does (blocking); return its result."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.eval_verdicts_lib", *arguments],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


async def test_eval_verdicts_judges_through_an_ai_task_entity(
    tmp_path: Path, socket_enabled: None
) -> None:
    """Seven verdicts from the entity, checked, in the table; it got the pictures; none stay."""
    home = JudgedHomeAssistant(config_dir=tmp_path / "config", cameras=tmp_path / "cameras")
    loop = asyncio.get_running_loop()
    await home.start()
    try:
        async with aiohttp.ClientSession() as http:
            session = await hass_api.onboard(
                http, home.url, name="Owner", username=USERNAME, password=PASSWORD
            )
            # The test's port comes from configuration.yaml's http: section; keep it.
            await hass_api.keep_http_config(http, session)
            entity_id = await add_judge(http, session, home)
        done = await loop.run_in_executor(
            None,
            run_eval,
            "--ha",
            home.url,
            "--token",
            session.access_token,
            "--entity",
            entity_id,
            "--runs",
            "1",
        )
        explained = f"{done.stdout}\n{done.stderr}\n{home.log_tail()}"
        assert done.returncode == 0, explained
        lines = done.stdout.splitlines()
        assert lines[0] == f"AI Task {entity_id} on {home.url} ({PICTURES} pictures of 768 px)"
        score = round(ANSWER["risk_score"])
        agree = 0
        for case in CASES:
            low, high = case.expected
            right = LEVELS.index(low) <= LEVELS.index("high") <= LEVELS.index(high)
            agree += right
            verdict = re.compile(
                rf"  {re.escape(case.name)} +{low}-{high} +high +{score}  "
                rf"{'ok  ' if right else 'MISS'} +\d+ ms  -"
            )
            (index,) = [at for at, line in enumerate(lines) if verdict.fullmatch(line)]
            # The title the entity gave, and what no detector of the scene saw.
            unverified = "parcel" if case.people else "person, parcel"
            assert lines[index + 1] == f'      "{ANSWER["title"]}"; unverified: {unverified}'
        assert agree == 3
        assert re.fullmatch(
            rf"  agreement {agree}/7 \(43 %\), latency p50 \d+ ms, tokens per verdict p50 -",
            lines[-1],
        ), done.stdout
        assert len(lines) == 1 + 2 * len(CASES) + 1, done.stdout

        # The entity was given each scene's pictures, as JPEGs, with the verdict's structure.
        records = [
            json.loads(line)
            for line in (home.config_dir / RECORD).read_text().splitlines()
            if line.strip()
        ]
        assert [len(record["attachments"]) for record in records] == [
            min(case.frames, PICTURES) for case in CASES
        ]
        assert all(
            item == {"mime_type": "image/jpeg", "jpeg": True}
            for record in records
            for item in record["attachments"]
        )
        assert all(record["pictures_listed"] for record in records)
        assert {tuple(record["fields"]) for record in records} == {tuple(sorted(ANSWER))}
        # Every upload was removed again.
        assert sorted(path.name for path in home.media.iterdir()) == [], explained
    finally:
        await home.stop()

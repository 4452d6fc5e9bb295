"""Home Assistant's AI Task as the judge, in a real Home Assistant with a recording ai_task entity.

The test integration's ai_task entity records what each task gave it (instructions, the
attachments' files as it reads them, the structure as the JSON schema its service would get)
and answers with a verdict the structure validates, as OpenAI's or Ollama's entities do.
"""

from collections.abc import AsyncIterator, Iterator
import io
import json
import os
from pathlib import Path
from typing import Any, override

from homeassistant.components import ai_task
from homeassistant.components.ai_task.services import (
    STRUCTURE_FIELD_SCHEMA,
    _validate_structure_fields,
)
from homeassistant.components.conversation import ChatLog
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigFlow
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.setup import async_setup_component
from PIL import Image
import probatio
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from custom_components.ai_security.ai_task_judge import (
    FRAMES_FOLDER,
    service_structure,
    structure_for,
)
from custom_components.ai_security.const import CONF_LLM_ENTITY, DOMAIN
from custom_components.ai_security.core.prompts import verdict_schema
from custom_components.ai_security.media_paths import media_root
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import Incidents, hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write

TEST_DOMAIN = "ai_task_test"
PERSON = detection("person", 0.92, [200, 120, 120, 300])
ANSWER: dict[str, Any] = {
    "observations": "A person in a hooded jacket stands at the door and looks around.",
    "objects": ["person", "parcel"],
    "reasoning": "Someone lingering at the door at night.",
    "risk_score": 73.6,  # numbers come back as decimals from a number selector
    "risk_level": "high",
    "confidence": 80.0,
    "title": "Person lingering at the door",
    "summary": "A person lingers at the front door.",
    "other_concerns": ["A parcel is on the step."],
}


class RecordingAiTask(ai_task.AITaskEntity):
    """An AI Task entity that records each task and answers with ANSWER (or fails)."""

    _attr_name = "Judge"
    _attr_unique_id = "judge"

    def __init__(self, *, attachments: bool = True) -> None:
        """Take attachments, or not (a text-only model)."""
        features = ai_task.AITaskEntityFeature.GENERATE_DATA
        if attachments:
            features |= ai_task.AITaskEntityFeature.SUPPORT_ATTACHMENTS
        self._attr_supported_features = features
        self.tasks: list[ai_task.GenDataTask] = []
        self.pictures: list[list[bytes]] = []
        self.schemas: list[dict[str, Any]] = []
        self.failing = False

    @override
    async def _async_generate_data(
        self, task: ai_task.GenDataTask, chat_log: ChatLog
    ) -> ai_task.GenDataTaskResult:
        self.tasks.append(task)
        self.pictures.append(
            [
                await self.hass.async_add_executor_job(attachment.path.read_bytes)
                for attachment in task.attachments or []
            ]
        )
        assert task.structure is not None
        self.schemas.append(
            probatio.to_openapi(task.structure, custom_serializer=llm.selector_serializer)
        )
        if self.failing:
            raise HomeAssistantError("the service is down")
        # As the service entities do: the answer is the structure's data.
        return ai_task.GenDataTaskResult(
            conversation_id=chat_log.conversation_id, data=task.structure(ANSWER)
        )


class JudgeFlow(ConfigFlow, domain=TEST_DOMAIN):
    """The test integration's flow: its entry is made by the test, never by a form."""

    VERSION = 1


@pytest.fixture(autouse=True)
def judge_flow() -> Iterator[None]:
    """Register the test integration's flow for as long as the test runs."""
    with mock_config_flow(TEST_DOMAIN, JudgeFlow):
        yield


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(PERSON)))
    await server.start()
    yield server
    await server.stop()


async def add_judge(hass: HomeAssistant, judge: RecordingAiTask) -> str:
    """Set up a test integration with the judge as its ai_task entity; return its entity id."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "ai_task", {})

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, [Platform.AI_TASK])
        return True

    async def setup_platform(
        hass: HomeAssistant, entry: ConfigEntry, add: AddConfigEntryEntitiesCallback
    ) -> None:
        add([judge])

    mock_integration(hass, MockModule(TEST_DOMAIN, async_setup_entry=setup_entry))
    mock_platform(hass, f"{TEST_DOMAIN}.ai_task", MockPlatform(async_setup_entry=setup_platform))
    mock_platform(hass, f"{TEST_DOMAIN}.config_flow")
    entry = MockConfigEntry(domain=TEST_DOMAIN)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert judge.entity_id is not None
    return judge.entity_id


async def hub_with_judge(
    hass: HomeAssistant, camera_root: Path, detector: DetectorServer, entity_id: str
) -> MockConfigEntry:
    """Return the hub set up with the AI Task entity as its only judge."""
    entry = hub_entry(hass, camera_root, detector.url, "")
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_LLM_ENTITY: entity_id})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_the_ai_task_entity_judges_with_the_pictures(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer
) -> None:
    """The instructions, the verdict's structure and the pictures reach the entity.

    Its answer becomes the checked verdict, and the pictures are gone once the task is done.
    """
    judge = RecordingAiTask()
    entity_id = await add_judge(hass, judge)
    entry = await hub_with_judge(hass, camera_root, detector_server, entity_id)
    incidents = Incidents(hass)
    await hass.async_add_executor_job(
        write, camera_root / "Front Door" / "a.jpg", jpeg(1, 640, 480)
    )
    await incidents.wait_ended(1)

    assert judge.tasks
    task = judge.tasks[-1]
    assert task.name == "AI Security verdict"
    assert "Camera: Front Door" in task.instructions
    assert "home security analyst" in task.instructions
    assert "Pictures attached, in order:\n1. Frame 1 of 1" in task.instructions
    # The structure is the verdict's schema, as the entity's service would get it.
    schema = judge.schemas[-1]
    expected = verdict_schema(summary_max=200, reasoning_max=1000)
    assert set(schema["properties"]) == set(expected["properties"])
    assert set(schema["required"]) == set(expected["required"])
    assert schema["properties"]["risk_level"]["enum"] == ["low", "medium", "high", "critical"]
    assert schema["properties"]["objects"]["type"] == "array"
    assert schema["properties"]["risk_score"]["maximum"] == 100
    # The picture, as the entity read it from the file the media source resolved.
    (picture,) = judge.pictures[-1]
    assert picture.startswith(b"\xff\xd8")
    with Image.open(io.BytesIO(picture)) as image:
        assert max(image.size) == 640  # the upload's own size: under the 768 px budget
    # The verdict: the entity's words, checked against the detections, and the audit record.
    ended = incidents.ended()[-1]
    assert ended["source"] == "llm"
    assert ended["risk_score"] == 74
    assert ended["title"] == "Person lingering at the door"
    assert ended["confidence"] == 0.8
    assert ended["other_concerns"] == ["A parcel is on the step."]
    assert ended["unverified_objects"] == ["parcel"]
    assert ended["contradiction"] == ""
    frames = Path(media_root(hass, entry.entry_id)) / FRAMES_FOLDER
    assert not await hass.async_add_executor_job(
        lambda: any(frames.iterdir()) if frames.exists() else False
    )
    response = await hass.services.async_call(
        DOMAIN,
        "search_events",
        {"config_entry_id": entry.entry_id},
        blocking=True,
        return_response=True,
    )
    (event,) = response["events"]  # type: ignore[index,call-overload]
    assert event["sent_to_llm"]["server"] == entity_id
    # The entity has a connectivity sensor like an LLM server's, fed by its own check.
    connectivity = [
        state
        for state in hass.states.async_all("binary_sensor")
        if state.attributes.get("url") == entity_id
    ]
    assert [state.state for state in connectivity] == ["on"]
    assert len(event["sent_to_llm"]["frames"]) == 1
    assert len(event["sent_to_llm"]["prompt_hash"]) == 64


async def test_a_text_only_entity_gets_no_attachments(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer
) -> None:
    """An entity that takes no attachments is asked with the text alone, and still judges."""
    judge = RecordingAiTask(attachments=False)
    entity_id = await add_judge(hass, judge)
    await hub_with_judge(hass, camera_root, detector_server, entity_id)
    incidents = Incidents(hass)
    await hass.async_add_executor_job(
        write, camera_root / "Front Door" / "a.jpg", jpeg(1, 640, 480)
    )
    await incidents.wait_ended(1)
    assert judge.tasks
    assert all(pictures == [] for pictures in judge.pictures)
    assert all("Pictures attached" not in task.instructions for task in judge.tasks)
    assert incidents.ended()[-1]["source"] == "llm"


async def test_a_failing_entity_leaves_the_heuristic_and_a_retry(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer
) -> None:
    """The entity's service fails: no event is lost, the incident is scored and kept queued."""
    judge = RecordingAiTask()
    judge.failing = True
    entity_id = await add_judge(hass, judge)
    entry = await hub_with_judge(hass, camera_root, detector_server, entity_id)
    incidents = Incidents(hass)
    await hass.async_add_executor_job(
        write, camera_root / "Front Door" / "a.jpg", jpeg(1, 640, 480)
    )
    await incidents.wait_opened(1)
    await wait_until(lambda: len(judge.tasks) >= 1, 20, "the entity to be asked")
    assert incidents.opened[0].data["source"] == "heuristic"
    # Its pictures were removed although the task failed.
    frames = Path(media_root(hass, entry.entry_id)) / FRAMES_FOLDER
    await wait_until(
        lambda: not (frames.exists() and any(frames.iterdir())), 10, "the pictures to go"
    )
    # Gone from Home Assistant: its check says so, and no verdict waits on it.
    hass.states.async_set(entity_id, "unavailable")
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    health = entry.runtime_data.coordinator.data.health
    (judge_health,) = [endpoint for endpoint in health.endpoints if endpoint.url == entity_id]
    assert judge_health.status.value == "unhealthy"
    assert judge_health.last_error == f"{entity_id} is missing or unavailable"
    judge.failing = False
    judge.async_write_ha_state()  # back
    await incidents.wait_ended(1, 60)
    assert incidents.ended()[-1]["source"] == "llm"


async def test_the_frames_media_ids_reach_nothing_else(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer
) -> None:
    """Only `<token>/<n>.jpg` files of the frames folder resolve; other names are refused."""
    from homeassistant.components.media_source import (  # noqa: PLC0415
        Unresolvable,
        async_resolve_media,
    )

    judge = RecordingAiTask()
    entity_id = await add_judge(hass, judge)
    entry = await hub_with_judge(hass, camera_root, detector_server, entity_id)
    root = Path(media_root(hass, entry.entry_id))
    token = "ab" * 16
    await hass.async_add_executor_job(
        lambda: (
            os.makedirs(root / FRAMES_FOLDER / token, exist_ok=True),
            (root / FRAMES_FOLDER / token / "1.jpg").write_bytes(b"\xff\xd8x"),
            (root / "secret.jpg").write_bytes(b"no"),
        )
    )
    base = f"media-source://{DOMAIN}/{entry.entry_id}/{FRAMES_FOLDER}"
    resolved = await async_resolve_media(hass, f"{base}/{token}/1.jpg", None)
    assert resolved.path == root / FRAMES_FOLDER / token / "1.jpg"
    assert resolved.mime_type == "image/jpeg"
    for bad in (f"{token}/2.jpg", f"{token}/..", "x/1.jpg", f"{token}/1.png", f"{token}/0.jpg"):
        with pytest.raises(Unresolvable):
            await async_resolve_media(hass, f"{base}/{bad}", None)
    with pytest.raises(Unresolvable):
        await async_resolve_media(hass, f"media-source://{DOMAIN}/{entry.entry_id}/..", None)


async def test_the_config_flow_takes_an_ai_task_entity(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer
) -> None:
    """Chosen in the form, checked (it must generate data), stored; a missing one is refused."""
    judge = RecordingAiTask()
    entity_id = await add_judge(hass, judge)
    form = {
        "name": "Home",
        "camera_root": str(camera_root),
        "detector_urls": [detector_server.url],
        "llm_urls": [],
        "llm_api": "openai",
    }
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_LLM_ENTITY: "ai_task.nobody"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_LLM_ENTITY: "ai_task_unusable"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_LLM_ENTITY: entity_id}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_LLM_ENTITY] == entity_id
    await hass.async_block_till_done()


def test_the_structure_validates_a_verdict_and_refuses_a_bad_one() -> None:
    """The structure built from the schema takes a good answer and refuses a wrong level."""
    structure = structure_for(verdict_schema())
    assert structure(ANSWER)["title"] == ANSWER["title"]
    with pytest.raises(probatio.Invalid):
        structure({**ANSWER, "risk_level": "apocalyptic"})
    with pytest.raises(probatio.Invalid):
        structure({key: value for key, value in ANSWER.items() if key != "summary"})


def test_the_structure_as_action_data_is_the_same_structure() -> None:
    """The structure as the generate_data action's data passes Home Assistant's own checks.

    What a script or the REST API sends (JSON, hence the round trip) becomes, in the action,
    the fields structure_for makes: the same names, required flags, descriptions and selectors,
    so an entity asked either way is given the same structure and takes the same answer.
    """
    schema = verdict_schema()
    data = json.loads(json.dumps(service_structure(schema)))
    validate = probatio.All(
        probatio.Schema({str: STRUCTURE_FIELD_SCHEMA}), _validate_structure_fields
    )
    from_action: probatio.Schema = validate(data)
    expected = structure_for(schema)

    def fields(structure: probatio.Schema) -> dict[tuple[str, str, str | None], Any]:
        return {
            (type(key).__name__, str(key), key.description): value
            for key, value in structure.schema.items()
        }

    assert fields(from_action) == fields(expected)
    assert set(data) == set(schema["properties"])
    assert all(field["required"] for field in data.values())
    assert data["risk_level"]["selector"]["select"]["options"] == [
        "low",
        "medium",
        "high",
        "critical",
    ]
    assert data["objects"]["selector"]["text"]["multiple"] is True
    assert data["risk_score"]["selector"]["number"]["step"] == 1
    assert from_action(ANSWER) == expected(ANSWER)
    with pytest.raises(probatio.Invalid):
        from_action({**ANSWER, "risk_level": "apocalyptic"})

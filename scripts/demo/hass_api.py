"""Set a running Home Assistant up through its own HTTP and websocket APIs, as the UI does.

Why not write .storage files: Home Assistant owns their formats and they change between
releases; its onboarding, auth, config-flow and Lovelace APIs are what its own frontend calls, so
a setup made through them is exactly what a person clicking through the UI gets, and a wrong
field fails loudly here instead of making a half-valid install.

Used by scripts/develop (the demo) and by the dashboard card's browser test.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

DOMAIN = "ai_security"


CARD_DASHBOARD: dict[str, Any] = {
    "views": [{"title": "Security", "cards": [{"type": "custom:ai-security-card", "events": 5}]}]
}
"""A dashboard holding the integration's card: the demo's, and the browser test's."""


class SetupError(Exception):
    """Home Assistant refused a setup step; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user of one Home Assistant."""

    base_url: str
    access_token: str
    refresh_token: str | None
    client_id: str

    @property
    def headers(self) -> dict[str, str]:
        """Return the Authorization header."""
        return {"Authorization": f"Bearer {self.access_token}"}


async def wait_until_up(http: aiohttp.ClientSession, base_url: str, seconds: float) -> None:
    """Wait until Home Assistant's HTTP server answers (any status), or raise SetupError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            async with http.get(f"{base_url}/api/onboarding") as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        if loop.time() > deadline:
            raise SetupError(f"Home Assistant did not answer on {base_url} within {seconds:g} s")
        await asyncio.sleep(0.5)


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    if response.status >= 300:
        raise SetupError(f"{what}: HTTP {response.status} {await response.text()}")
    return await response.json()


async def onboarding_done(http: aiohttp.ClientSession, base_url: str) -> bool:
    """Return whether the owner account exists already (onboarding's first step is done).

    Once every step is done Home Assistant removes the onboarding routes (HTTP 404).
    """
    async with http.get(f"{base_url}/api/onboarding") as response:
        if response.status == 404:
            return True
        steps = await _json(response, "GET /api/onboarding")
    return any(step["step"] == "user" and step["done"] for step in steps)


async def onboard(
    http: aiohttp.ClientSession,
    base_url: str,
    *,
    name: str,
    username: str,
    password: str,
    language: str = "en",
) -> Session:
    """Create the owner account and finish every onboarding step; return its session."""
    client_id = f"{base_url}/"
    async with http.post(
        f"{base_url}/api/onboarding/users",
        json={
            "client_id": client_id,
            "name": name,
            "username": username,
            "password": password,
            "language": language,
        },
    ) as response:
        code = (await _json(response, "creating the owner"))["auth_code"]
    session = await _token(http, base_url, client_id, code)
    for step, body in (
        ("core_config", {}),
        ("analytics", {}),
        ("integration", {"client_id": client_id, "redirect_uri": f"{base_url}/?auth_callback=1"}),
    ):
        async with http.post(
            f"{base_url}/api/onboarding/{step}", json=body, headers=session.headers
        ) as response:
            await _json(response, f"onboarding step {step}")
    return session


async def log_in(
    http: aiohttp.ClientSession, base_url: str, *, username: str, password: str
) -> Session:
    """Log in with the login flow the login page uses; return the session."""
    client_id = f"{base_url}/"
    async with http.post(
        f"{base_url}/auth/login_flow",
        json={
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{base_url}/?auth_callback=1",
        },
    ) as response:
        flow = await _json(response, "starting the login flow")
    async with http.post(
        f"{base_url}/auth/login_flow/{flow['flow_id']}",
        json={"client_id": client_id, "username": username, "password": password},
    ) as response:
        result = await _json(response, "logging in")
    if result.get("type") != "create_entry":
        raise SetupError(f"logging in as {username} failed: {result.get('errors')}")
    return await _token(http, base_url, client_id, result["result"])


async def _token(http: aiohttp.ClientSession, base_url: str, client_id: str, code: str) -> Session:
    async with http.post(
        f"{base_url}/auth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
    ) as response:
        tokens = await _json(response, "getting a token")
    return Session(
        base_url=base_url,
        access_token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        client_id=client_id,
    )


async def entries(
    http: aiohttp.ClientSession, session: Session, *, domain: str = DOMAIN
) -> list[dict[str, Any]]:
    """Return the config entries of domain (this integration's by default)."""
    async with http.get(
        f"{session.base_url}/api/config/config_entries/entry",
        params={"domain": domain},
        headers=session.headers,
    ) as response:
        found: list[dict[str, Any]] = await _json(response, "listing config entries")
    return [entry for entry in found if entry.get("domain") == domain]


async def add_entry(
    http: aiohttp.ClientSession, session: Session, user_input: dict[str, Any]
) -> dict[str, Any]:
    """Run the integration's config flow with user_input; return the created entry."""
    base = f"{session.base_url}/api/config/config_entries/flow"
    async with http.post(
        base, json={"handler": DOMAIN, "show_advanced_options": False}, headers=session.headers
    ) as response:
        form = await _json(response, "starting the config flow")
    async with http.post(
        f"{base}/{form['flow_id']}", json=user_input, headers=session.headers
    ) as response:
        result = await _json(response, "submitting the config flow")
    if result.get("type") != "create_entry":
        raise SetupError(f"the config flow did not create an entry: {result}")
    return dict(result["result"])


async def _flow_step(
    http: aiohttp.ClientSession, session: Session, url: str, body: dict[str, Any], what: str
) -> dict[str, Any]:
    async with http.post(url, json=body, headers=session.headers) as response:
        result: dict[str, Any] = await _json(response, what)
    return result


async def add_llama_agent(
    http: aiohttp.ClientSession, session: Session, base_url: str, apis: list[str]
) -> str:
    """Add Home Assistant's llama.cpp conversation agent on base_url, its APIs ticked.

    Its config flow makes the agent with Assist's API; its reconfigure flow (the agent's
    options in the UI) ticks apis. Returns the entry's id.
    """
    flows = f"{session.base_url}/api/config/config_entries/flow"
    form = await _flow_step(http, session, flows, {"handler": "llama_cpp"}, "starting llama.cpp")
    step = await _flow_step(
        http, session, f"{flows}/{form['flow_id']}", {"base_url": base_url}, "its server"
    )
    if step.get("type") != "form" or step.get("step_id") != "model":
        raise SetupError(f"the llama.cpp flow did not reach its model step: {step}")
    (model,) = [
        field["description"]["suggested_value"]
        for field in step["data_schema"]
        if field["name"] == "chat_model"
    ]
    created = await _flow_step(
        http, session, f"{flows}/{step['flow_id']}", {"chat_model": model}, "its model"
    )
    if created.get("type") != "create_entry":
        raise SetupError(f"the llama.cpp flow did not create an entry: {created}")
    entry_id = str(created["result"]["entry_id"])
    socket, connection = await websocket(http, session)
    try:
        (agent,) = await socket.command(
            {"type": "config_entries/subentries/list", "entry_id": entry_id}
        )
    finally:
        await connection.close()
    subentry_id = str(agent["subentry_id"])
    subentries = f"{session.base_url}/api/config/config_entries/subentries/flow"
    options = await _flow_step(
        http,
        session,
        subentries,
        {"handler": [entry_id, "conversation"], "subentry_id": subentry_id},
        "opening the agent's options",
    )
    values = {
        field["name"]: field.get("description", {}).get("suggested_value")
        for field in options["data_schema"]
    }
    done = await _flow_step(
        http,
        session,
        f"{subentries}/{options['flow_id']}",
        {**{k: v for k, v in values.items() if v is not None}, "llm_hass_api": apis},
        "saving the agent's options",
    )
    if done.get("type") != "abort" or done.get("reason") != "reconfigure_successful":
        raise SetupError(f"the agent's options were not saved: {done}")
    return entry_id


class Websocket:
    """A signed-in websocket connection that sends commands and returns their results."""

    def __init__(self, connection: aiohttp.ClientWebSocketResponse) -> None:
        """Wrap an authenticated connection."""
        self._connection = connection
        self._next_id = 1

    async def command(self, message: dict[str, Any]) -> Any:
        """Send message (without id) and return its result; raise SetupError on failure."""
        message_id = self._next_id
        self._next_id += 1
        await self._connection.send_json({"id": message_id, **message})
        while True:
            reply = await self._connection.receive_json(timeout=60)
            if reply.get("id") == message_id and reply.get("type") == "result":
                if not reply.get("success"):
                    raise SetupError(f"{message['type']}: {reply.get('error')}")
                return reply.get("result")


async def websocket(http: aiohttp.ClientSession, session: Session) -> tuple[Websocket, Any]:
    """Open and authenticate a websocket; return it and the raw connection (to close)."""
    url = session.base_url.replace("http", "ws", 1) + "/api/websocket"
    connection = await http.ws_connect(url)
    hello = await connection.receive_json()
    if hello.get("type") != "auth_required":
        raise SetupError(f"unexpected websocket greeting {hello}")
    await connection.send_json({"type": "auth", "access_token": session.access_token})
    answer = await connection.receive_json()
    if answer.get("type") != "auth_ok":
        raise SetupError(f"websocket authentication failed: {answer}")
    return Websocket(connection), connection


async def audit_log(
    http: aiohttp.ClientSession, session: Session, entry_id: str, *, page_size: int = 50
) -> dict[str, Any]:
    """Return the newest page of a hub's audit trail (the get_audit_log action; admins only)."""
    ws, connection = await websocket(http, session)
    try:
        result = await ws.command(
            {
                "type": "call_service",
                "domain": DOMAIN,
                "service": "get_audit_log",
                "service_data": {"config_entry_id": entry_id, "page_size": page_size},
                "return_response": True,
            }
        )
    finally:
        await connection.close()
    response: dict[str, Any] = result["response"]
    return response


async def keep_http_config(http: aiohttp.ClientSession, session: Session) -> bool:
    """Confirm a pending HTTP configuration (from configuration.yaml), as its dialog asks.

    Home Assistant 2026.10 moves the http: section of configuration.yaml into its storage as a
    pending trial, asks the user in a dialog to keep it, and reverts it after 5 minutes
    otherwise. Return whether there was one to keep.
    """
    ws, connection = await websocket(http, session)
    try:
        state = await ws.command({"type": "http/config"})
        if state.get("active_config_type") != "pending":
            return False
        await ws.command({"type": "http/config/promote"})
        return True
    finally:
        await connection.close()


async def ensure_dashboard(
    http: aiohttp.ClientSession,
    session: Session,
    *,
    url_path: str,
    title: str,
    config: dict[str, Any],
    icon: str = "mdi:cctv",
) -> None:
    """Create (or keep) a storage-mode dashboard at url_path and save config into it."""
    ws, connection = await websocket(http, session)
    try:
        existing = await ws.command({"type": "lovelace/dashboards/list"})
        if not any(item["url_path"] == url_path for item in existing):
            await ws.command(
                {
                    "type": "lovelace/dashboards/create",
                    "url_path": url_path,
                    "title": title,
                    "icon": icon,
                    "mode": "storage",
                    "show_in_sidebar": True,
                    "require_admin": False,
                }
            )
        await ws.command({"type": "lovelace/config/save", "url_path": url_path, "config": config})
    finally:
        await connection.close()

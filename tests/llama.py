"""A real llama.cpp llama-server on a tiny random-weight model that the tests write themselves.

Why: the integration's LLM client must be tested against the real server (its routes, its
JSON-schema grammars, its errors, its going away and coming back), not a stand-in that answers
what we think it answers; and no test may download a model. A llama with 2 blocks, 64-wide
embeddings and a byte-level SentencePiece vocabulary of 260 tokens is about 470 KB, is written in
a tenth of a second with the gguf package, loads in a twentieth and answers in tens of
milliseconds. Its tokens are bytes, so a prompt costs one token per character: the server gets
a context of 8192, 4096 per slot, and a prompt over about 3800 characters (with 256 to answer)
is refused with HTTP 400 exceed_context_size.

Its output is random, so tests rely only on what the server guarantees: a JSON-schema grammar
forces the shape of the answer. That gives a valid answer every time only with
grammar_friendly_params(), which bans the non-ASCII bytes, tab, newline, carriage return and
backslash: then every token is one character and blanks come one at a time, so a schema whose
strings are bounded (maxLength, or an ASCII pattern) bounds the answer (the verdict below: at
most about 170 tokens, under n_predict 256). Without the ban a random model writes non-ASCII
bytes, and the grammar lets invalid UTF-8 into strings, which the chat route's parser rejects
with HTTP 500; failure_params() makes that certain, for tests of the retry path.
"""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path
import random
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any

import aiohttp
import pytest

from .programs import missing, require_program

# The tokenizer: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then "▁" (a space).
UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = 0, 1, 2
BYTE_TOKEN_BASE = 3
SPACE_TOKEN = BYTE_TOKEN_BASE + 256
N_VOCAB = SPACE_TOKEN + 1

N_EMBD, N_FF, N_HEAD, N_BLOCKS = 64, 128, 4, 2
N_CTX, N_PARALLEL = 8192, 2
SLOT_CONTEXT = N_CTX // N_PARALLEL
"""Tokens a request may use, prompt and answer together (one token per byte of text)."""
MODEL_SEED = 20240607

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def byte_token(value: int) -> int:
    """Return the token id of the byte token <0xNN> for value."""
    return BYTE_TOKEN_BASE + value


BANNED_BYTES = (*range(0x80, 0x100), ord("\t"), ord("\n"), ord("\r"), ord("\\"))
"""Bytes whose tokens break or stretch a random model's JSON: non-ASCII (several tokens per
character, and invalid UTF-8 that the grammar admits), tab, newline and carriage return (JSON
whitespace, up to 22 of them wherever a blank may go) and the backslash that starts an escape."""

INVALID_UTF8_LEADS = range(0xF8, 0x100)
"""Bytes that never occur in UTF-8; llama.cpp's grammar takes them for the start of a 4-byte
character and lets them into JSON strings, and the chat route then rejects the answer."""

LLAMA_BAN_LOGIT_BIAS: dict[str, bool] = {str(byte_token(b)): False for b in sorted(BANNED_BYTES)}
"""logit_bias banning BANNED_BYTES' tokens: llama-server reads an object of token id (a string)
to bias, and false as minus infinity, on both /completion and /v1/chat/completions."""


def grammar_friendly_params() -> dict[str, Any]:
    """Return the request fields that make the random model's JSON-schema answers always valid.

    Add them to a /completion or /v1/chat/completions body whose schema bounds every string
    (maxLength <= 40, or an ASCII pattern).
    """
    return {"logit_bias": dict(LLAMA_BAN_LOGIT_BIAS)}


def failure_params() -> dict[str, Any]:
    """Return the request fields that make every JSON-schema answer of the random model fail.

    Blanks and backslashes are banned and INVALID_UTF8_LEADS favored by +100 (random logits are
    far below 1), so every string starts with invalid UTF-8: /v1/chat/completions answers
    HTTP 500 "The model produced output that does not match the expected peg-native format",
    /completion answers 200 with content that is not JSON (cut off at n_predict).
    """
    blanks = {str(byte_token(b)): False for b in BANNED_BYTES if b < 0x80}
    return {"logit_bias": blanks | {str(byte_token(b)): 100 for b in INVALID_UTF8_LEADS}}


def write_tiny_gguf(path: Path) -> Path:
    """Write the tiny random-weight llama (F32, seeded, so every run writes the same bytes)."""
    try:
        import gguf  # noqa: PLC0415 - Debian's python3-gguf: only tests that write a model need it
        import numpy as np  # noqa: PLC0415 - gguf's own dependency
    except ImportError as err:
        missing(f"the gguf Python package is not installed ({err})")

    rng = np.random.default_rng(MODEL_SEED)

    def weights(*shape: int) -> Any:
        # numpy shapes are ggml's reversed: (rows, columns) = (out features, in features).
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    def ones() -> Any:
        return np.ones(N_EMBD, dtype=np.float32)

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("ai_security tiny random llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_BLOCKS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(N_VOCAB)

    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), "▁"]
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        *([gguf.TokenType.BYTE] * 256),
        gguf.TokenType.NORMAL,
    ]
    assert len(tokens) == len(types) == N_VOCAB
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * N_VOCAB)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_TOKEN)
    writer.add_bos_token_id(BOS_TOKEN)
    writer.add_eos_token_id(EOS_TOKEN)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    writer.add_tensor("token_embd.weight", weights(N_VOCAB, N_EMBD))
    for block in range(N_BLOCKS):
        prefix = f"blk.{block}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", ones())
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", ones())
        writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_down.weight", weights(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", ones())
    writer.add_tensor("output.weight", weights(N_VOCAB, N_EMBD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "summary": {"type": "string", "maxLength": 40},
        "reasoning": {"type": "string", "maxLength": 40},
    },
    "required": ["risk_score", "risk_level", "summary", "reasoning"],
    "additionalProperties": False,
}
"""A verdict whose strings are bounded: the random model always completes it (with the ban)."""

UNBOUNDED_VERDICT_SCHEMA: dict[str, Any] = {
    **VERDICT_SCHEMA,
    "properties": {
        **VERDICT_SCHEMA["properties"],
        "summary": {"type": "string"},
        "reasoning": {"type": "string"},
    },
}
"""The verdict with unbounded strings: nothing bounds the answer's length any more."""

_SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "minItems",
        "maxItems",
    }
)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Return why value breaks schema (empty when it conforms).

    The lab has no jsonschema package, and the verdict needs only a small subset; a keyword
    outside it raises, so no schema is ever passed as valid without really being checked.
    """
    if unknown := set(schema) - _SCHEMA_KEYWORDS:
        raise ValueError(f"schema_errors does not implement {sorted(unknown)}")
    kind = schema.get("type")
    if kind is not None and (
        not isinstance(value, _JSON_TYPES[kind])
        or (isinstance(value, bool) and kind in {"number", "integer"})
    ):
        return [f"{where}: {value!r} is not of type {kind}"]
    errors = _bound_errors(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{where}[{index}]"))
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        errors.extend(
            f"{where}: {name!r} is required"
            for name in schema.get("required", ())
            if name not in value
        )
        for name, item in value.items():
            if name in properties:
                errors.extend(schema_errors(item, properties[name], f"{where}.{name}"))
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{where}: {name!r} is not allowed")
    return errors


def _bound_errors(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Return how value breaks the schema's bounds: enum, range, lengths, pattern, item count."""
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value!r} is below {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: {value!r} is above {schema['maximum']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{where}: {value!r} is shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{where}: {value!r} is longer than {schema['maxLength']}")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{where}: {len(value)} items, fewer than {schema['minItems']}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{where}: {len(value)} items, more than {schema['maxItems']}")
    return errors


HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_POLL = 0.02
_BIND_FAILED = "couldn't bind HTTP server socket"


@dataclass
class LlamaServer:
    """A llama-server subprocess on 127.0.0.1 serving one model, its output kept in a log file.

    start(), stop() and restart() block (for the session fixture and synchronous tests);
    async_start(), async_stop() and async_restart() poll with asyncio.sleep and check readiness
    with GET /health, for tests running in the event loop (where Home Assistant's loop
    protection forbids time.sleep, which Popen.wait(timeout) uses). A restart keeps the port, so
    an integration configured with url sees its server go away and come back.
    """

    program: str
    model: Path
    workdir: Path
    port: int = 0
    threads: int = 1
    mmproj: Path | None = None
    """A vision projector loaded beside the model (--mmproj): the server then takes pictures."""
    spawned: int = 0
    """How many processes were started: a test can tell a restart happened."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Return the base URL, the same for the server's whole life (after the first start)."""
        if not self.port:
            raise RuntimeError("llama-server was never started, so it has no port yet")
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the file every process of this server appends its output to."""
        return self.workdir / "llama-server.log"

    @property
    def running(self) -> bool:
        """Return whether the process is alive (not whether it is ready yet)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Return the running process's id, or None."""
        return self._process.pid if self._process is not None and self.running else None

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def command(self, port: int) -> list[str]:
        """Return the command line: two slots (as the README suggests), CPU only, one thread."""
        return [
            self.program,
            "--model",
            str(self.model),
            "--host",
            HOST,
            "--port",
            str(port),
            "--ctx-size",
            str(N_CTX),
            "--parallel",
            str(N_PARALLEL),
            "--threads",
            str(self.threads),
            *(["--mmproj", str(self.mmproj)] if self.mmproj is not None else []),
        ]

    def _spawn(self, port: int) -> int:
        """Start a process on port; return where its output starts in the log."""
        # LLAMA_ARG_* variables would silently change the command line's settings.
        env = {key: value for key, value in os.environ.items() if not key.startswith("LLAMA_")}
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self._process = subprocess.Popen(
                self.command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.spawned += 1
        return offset

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _wait_listening(self, port: int, offset: int) -> str:
        """Return 'listening', 'bind' (the port is taken) or 'failed', reading the log."""
        assert self._process is not None
        listening = f"listening on http://{HOST}:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            exited = self._process.poll() is not None
            output = self._log_since(offset)
            if listening in output and not exited:
                return "listening"
            if exited:
                return "bind" if _BIND_FAILED in output else "failed"
            time.sleep(_POLL)
        self.stop()
        return "failed"

    def start(self) -> None:
        """Start and wait until it listens (model loaded): a new random port the first time.

        The port is random in 20000-60000 and retried when taken: probing for a free one would
        need a Python socket, which the Home Assistant test harness blocks outside a test's
        socket_enabled scope (the session fixture starts the server outside any test).
        """
        if self.running:
            return
        fixed = self.port
        for _attempt in range(1 if fixed else 10):
            port = fixed or random.randint(20000, 60000)  # noqa: S311 - not cryptography
            outcome = self._wait_listening(port, self._spawn(port))
            if outcome == "listening":
                self.port = port
                return
            self.stop()
            if outcome != "bind":
                break
        pytest.fail(f"llama-server did not start on {HOST}:{port}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the process and reap it (killed after STOP_TIMEOUT): requests are refused."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when llama-server hangs
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    async def async_wait_healthy(self) -> None:
        """Wait until GET /health answers 200 {"status": "ok"} (needs socket_enabled)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        last = "no answer yet"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while loop.time() < deadline:
                if not self.running:
                    pytest.fail(f"llama-server exited ({last}):\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.url}/health") as response:
                        body = await response.text()
                        if response.status == 200 and json.loads(body).get("status") == "ok":
                            return
                        last = f"HTTP {response.status} {body}"
                except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                    last = repr(err)
                await asyncio.sleep(_POLL)
        pytest.fail(
            f"llama-server not healthy after {START_TIMEOUT} s ({last}):\n{self.log_tail()}"
        )

    async def async_start(self) -> None:
        """Start on the same port unless running, then wait until healthy."""
        if not self.running:
            if not self.port:
                raise RuntimeError("start() picks the port; async_start() only starts it again")
            self._spawn(self.port)
        await self.async_wait_healthy()

    async def async_stop(self) -> None:
        """Terminate the process and reap it without blocking the event loop."""
        process, self._process = self._process, None
        if process is None:
            return
        loop = asyncio.get_running_loop()
        if process.poll() is None:
            process.terminate()
        deadline = loop.time() + STOP_TIMEOUT
        while process.poll() is None:
            if loop.time() > deadline:  # pragma: no cover - only when llama-server hangs
                process.kill()
                deadline = math.inf
            await asyncio.sleep(_POLL)

    async def async_restart(self) -> None:
        """Stop, then start again on the same port and wait until healthy."""
        await self.async_stop()
        await self.async_start()


# The fixtures are named in the decorator, as Home Assistant's own tests do: a test module imports
# llama_server_fixture and llama_server_process_fixture (silencing F401, unused import) and its
# tests take llama_server; importing llama_server itself would make each such test an F811
# (redefinition of an unused import) for ruff.
@pytest.fixture(name="llama_server_process", scope="session")
def llama_server_process_fixture() -> Iterator[LlamaServer]:
    """Return a llama-server on the tiny model, started once for the test run.

    It listens, but tests should take llama_server instead, which also makes sure it is healthy
    (and running again if an earlier test stopped it).
    """
    program = require_program("llama-server")
    workdir = Path(tempfile.mkdtemp(prefix="ai_security_llama_"))
    server = LlamaServer(program=program, model=workdir / "tiny-random-llama.gguf", workdir=workdir)
    try:
        write_tiny_gguf(server.model)
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(name="llama_server")
async def llama_server_fixture(
    llama_server_process: LlamaServer, socket_enabled: None
) -> LlamaServer:
    """Return the run's llama-server, healthy, with loopback sockets allowed for the test."""
    await llama_server_process.async_start()
    return llama_server_process


# The same fixtures under their fixture names: importing these works too, but ruff then reports
# F811 on every test that takes llama_server (conftest.py may import them without that problem).
llama_server_process = llama_server_process_fixture
llama_server = llama_server_fixture

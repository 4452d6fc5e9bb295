"""A tiny random-weight vision projector (mmproj) for the tests' llama: llama-server sees images.

Why: vision verdicts must be tested against the real server's multimodal routes (its media
marker, its image tokens, its refusal when no projector is loaded), and no test may download a
model. This writes a LLaVA-1.5-style projector with the gguf package: a ViT of 2 blocks, 32
wide, over 32x32 images in 8x8 patches (16 patches, so 16 image tokens per picture), and a
two-layer MLP ("mlp" projector) whose output is the text model's embedding width. It is a few
tens of KB, loads with `--mmproj` beside tests/llama.py's text model in a tenth of a second,
and the server resizes any picture to 32x32 first.

A random model's answer barely depends on the image, so tests prove that an image arrived by
the server's own accounting (prompt tokens: 16 more per image), never by the answer's content.
"""

from collections.abc import Iterator
from pathlib import Path
import shutil
import tempfile
from typing import Any

import pytest

from .llama import MODEL_SEED, N_EMBD, LlamaServer, write_tiny_gguf
from .programs import missing, require_program

V_EMBD, V_FF, V_HEAD, V_BLOCKS = 32, 64, 4, 2
IMAGE_SIZE, PATCH_SIZE = 32, 8
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2
"""Patches per image: the image tokens each picture costs (the class token is dropped)."""
MM_HIDDEN = 64
"""Width of the MLP projector's hidden layer."""


def write_tiny_mmproj(path: Path) -> Path:
    """Write the tiny random-weight vision projector (F32, seeded: the same bytes every run)."""
    try:
        import gguf  # noqa: PLC0415 - Debian's python3-gguf: only tests that write a model need it
        import numpy as np  # noqa: PLC0415 - gguf's own dependency
    except ImportError as err:
        missing(f"the gguf Python package is not installed ({err})")

    rng = np.random.default_rng(MODEL_SEED + 1)

    def weights(*shape: int) -> Any:
        # numpy shapes are ggml's reversed: (rows, columns) = (out features, in features).
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    def zeros(size: int) -> Any:
        return np.zeros(size, dtype=np.float32)

    def ones(size: int) -> Any:
        return np.ones(size, dtype=np.float32)

    writer = gguf.GGUFWriter(path, "clip")
    writer.add_name("ai_security tiny random vision projector")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", V_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", V_FF)
    writer.add_uint32("clip.vision.projection_dim", N_EMBD)
    writer.add_uint32("clip.vision.attention.head_count", V_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.block_count", V_BLOCKS)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    writer.add_tensor("v.patch_embd.weight", weights(V_EMBD, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.class_embd", weights(V_EMBD))
    writer.add_tensor("v.position_embd.weight", weights(N_PATCHES + 1, V_EMBD))
    writer.add_tensor("v.pre_ln.weight", ones(V_EMBD))
    writer.add_tensor("v.pre_ln.bias", zeros(V_EMBD))
    for block in range(V_BLOCKS):
        prefix = f"v.blk.{block}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(V_EMBD, V_EMBD))
            writer.add_tensor(f"{prefix}.{name}.bias", zeros(V_EMBD))
        writer.add_tensor(f"{prefix}.ln1.weight", ones(V_EMBD))
        writer.add_tensor(f"{prefix}.ln1.bias", zeros(V_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(V_FF, V_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.bias", zeros(V_FF))
        writer.add_tensor(f"{prefix}.ffn_down.weight", weights(V_EMBD, V_FF))
        writer.add_tensor(f"{prefix}.ffn_down.bias", zeros(V_EMBD))
        writer.add_tensor(f"{prefix}.ln2.weight", ones(V_EMBD))
        writer.add_tensor(f"{prefix}.ln2.bias", zeros(V_EMBD))
    writer.add_tensor("mm.0.weight", weights(MM_HIDDEN, V_EMBD))
    writer.add_tensor("mm.0.bias", zeros(MM_HIDDEN))
    writer.add_tensor("mm.2.weight", weights(N_EMBD, MM_HIDDEN))
    writer.add_tensor("mm.2.bias", zeros(N_EMBD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(name="llama_vision_process", scope="session")
def llama_vision_process_fixture() -> Iterator[LlamaServer]:
    """Return a llama-server on the tiny model with the tiny projector, started once per run.

    Tests take llama_vision_server, which makes sure it is running and healthy.
    """
    program = require_program("llama-server")
    workdir = Path(tempfile.mkdtemp(prefix="ai_security_llava_"))
    server = LlamaServer(
        program=program,
        model=workdir / "tiny-random-llama.gguf",
        workdir=workdir,
        mmproj=workdir / "tiny-random-mmproj.gguf",
    )
    try:
        write_tiny_gguf(server.model)
        assert server.mmproj is not None
        write_tiny_mmproj(server.mmproj)
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(name="llama_vision_server")
async def llama_vision_server_fixture(
    llama_vision_process: LlamaServer, socket_enabled: None
) -> LlamaServer:
    """Return the run's vision llama-server, healthy, with loopback sockets allowed."""
    await llama_vision_process.async_start()
    return llama_vision_process

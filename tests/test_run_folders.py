"""Run folders under stress: two processes on one output, a full disk, folders that only look like distilkit's.

- A run in progress holds an OS lock on its partial folder: a second process is told which process is writing
  it, `--overwrite` never removes it, and the lock dies with the process (a killed run is not "live").
- A full disk (a small tmpfs, when the tests run as root) ends every command in one line naming the path, with
  the partial output removed and the user's files untouched.
- Ownership is proven by the marker's list of files only: no layout heuristic deletes a user's file, and no
  command writes into a folder it does not own.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, run_cli, topic_rows, write_csv
from test_reliability import final_error_line, leftovers, one_error_line

HOLD = """
import sys, time
from distilkit.runs import RunFolder
run = RunFolder(sys.argv[1], what=sys.argv[2] if len(sys.argv) > 2 else "run")
run.prepare()
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def live_run(tmp_path):
    """Start a process that prepares (and so locks) a run folder and stays alive; yields (start, process)."""
    procs = []

    def start(output: Path, what: str = "run") -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(output), what], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def finetune_args(tiny_model, data, out, *more):
    return ["finetune", "--model", tiny_model, "--data", data, "--output", out, "--epochs", "1", *FAST, *more]


# ---- two processes, one output -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [[], ["--overwrite"], ["--resume"]])
def test_a_live_run_is_never_touched_by_a_second_process(tiny_model, tmp_path, capsys, live_run, flag):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    out = tmp_path / "r"
    holder = live_run(out)
    code, _, err = run_cli(finetune_args(tiny_model, data, out, *flag), capsys)
    one_error_line(code, err, f"process {holder.pid} on ", "is writing this run right now", "--overwrite never")
    assert (tmp_path / ".r.partial" / ".distilkit").is_file()  # still there, still the first process's
    holder.kill()
    holder.wait()  # the lock died with it: now it is an interrupted run like any other
    code, _, err = run_cli(finetune_args(tiny_model, data, out, "--overwrite"), capsys)
    assert code == 0, err
    assert (out / "model").is_dir() and leftovers(tmp_path) == []


def test_two_real_finetunes_on_one_output_the_second_is_refused(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(120))
    out = tmp_path / "r"
    args = finetune_args(tiny_model, data, out)
    args[args.index("--epochs") + 1] = "40"
    env = {**os.environ, "DISTILKIT_TRACEBACK": "0"}
    first = subprocess.Popen(
        [sys.executable, "-m", "distilkit", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    deadline = time.time() + 60
    while not (tmp_path / ".r.partial" / "resume-options.json").exists() and first.poll() is None:
        assert time.time() < deadline, "the first run never started"
        time.sleep(0.2)
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    one_error_line(code, err, f"process {first.pid}", "is writing this run right now")
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    assert (out / "model" / "model.safetensors").is_file() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["export", "quantize"])
def test_export_and_quantize_clear_what_a_killed_run_left_instead_of_advising_resume(
    topic_run, topic_data, tmp_path, capsys, command
):
    from distilkit.runs import RunFolder

    out = tmp_path / "out"
    RunFolder(str(out)).prepare()  # as a killed command leaves it: marked, unlocked (the object is gone)
    args = [command, "--model", topic_run, "--output", out]
    if command == "quantize":
        args += ["--data", topic_data]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert f"removed {tmp_path / '.out.partial'}, left by an interrupted" in stdout and "--resume" not in err
    assert out.is_dir() and leftovers(tmp_path) == []


def test_the_lock_is_released_when_the_run_finishes(tiny_model, tmp_path, capsys):
    from distilkit.files import live_holder

    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    assert run_cli(finetune_args(tiny_model, data, tmp_path / "r"), capsys)[0] == 0
    assert live_holder(tmp_path / "r") is None
    assert run_cli(finetune_args(tiny_model, data, tmp_path / "r", "--overwrite"), capsys)[0] == 0


# ---- ownership: proof, not looks ---------------------------------------------------------------------------------


def test_a_folder_that_only_looks_like_a_run_is_never_deleted(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    looks = tmp_path / "looks"
    looks.mkdir()
    (looks / "config.yaml").write_text("lr: 1\n")
    (looks / "metrics.json").write_text("{}")
    (looks / "thesis.tex").write_text("\\section{years of work}")
    code, _, err = run_cli(finetune_args(tiny_model, data, looks, "--overwrite"), capsys)
    one_error_line(code, err, "was not written by distilkit (no .distilkit marker)")
    assert (looks / "thesis.tex").read_text() == "\\section{years of work}"


def test_a_users_file_inside_a_distilkit_run_is_never_deleted(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    out = tmp_path / "r"
    assert run_cli(finetune_args(tiny_model, data, out), capsys)[0] == 0
    files = json.loads((out / ".distilkit").read_text())["files"]
    assert "config.yaml" in files and "model/model.safetensors" in files
    (out / "notes.md").write_text("my notes on this run")
    code, _, err = run_cli(finetune_args(tiny_model, data, out, "--overwrite"), capsys)
    one_error_line(code, err, "holds files distilkit did not write (notes.md)", "move them away")
    assert (out / "notes.md").read_text() == "my notes on this run" and (out / "model").is_dir()


@pytest.fixture
def users_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    return folder


def test_evaluate_never_writes_into_a_users_folder(topic_run, topic_data, users_folder, capsys):
    code, _, err = run_cli(["evaluate", "--model", topic_run, "--data", topic_data, "--output", users_folder], capsys)
    one_error_line(code, err, "was not written by distilkit", f"e.g. {users_folder / 'eval'}")
    assert sorted(p.name for p in users_folder.iterdir()) == ["thesis.tex"]  # no marker claiming it either


def test_the_pipeline_never_writes_into_a_users_folder(topic_data, users_folder, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{data: {topic_data}}}\nteacher: {{model: x}}\n")
    code, _, err = run_cli(["run", recipe, "--output", users_folder], capsys)
    one_error_line(code, err, "was not written by distilkit")
    assert sorted(p.name for p in users_folder.iterdir()) == ["thesis.tex"]


def test_bench_never_replaces_a_file_without_overwrite(topic_run, tmp_path, capsys):
    mine = tmp_path / "results.json"
    mine.write_text('{"mine": true}')
    args = ["bench", topic_run, "--rounds", "1", "--warmup", "0", "--memory", "false", "--output", mine]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, "the file exists; pass --overwrite")
    assert json.loads(mine.read_text()) == {"mine": True}
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0 and "models" in json.loads(mine.read_text())


def test_files_follow_the_umask_so_another_account_can_read_them(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    old = os.umask(0o022)
    try:
        assert run_cli(finetune_args(tiny_model, data, tmp_path / "r"), capsys)[0] == 0
    finally:
        os.umask(old)
    for name in ("config.yaml", "metrics.json", ".distilkit", "model/config.json"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name


# ---- a full disk ---------------------------------------------------------------------------------------------


def tmpfs_or_skip(folder: Path, size: str = "4m") -> Path:
    """A small tmpfs at `folder` (root only): a disk that really runs full."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root (CI runs as root)")
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    disk = tmpfs_or_skip(tmp_path / "disk")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A user's file that takes all but `leave` bytes of the disk."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "users-data.bin"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def unchanged_except_filler(disk: Path) -> list[str]:
    return sorted(p.name for p in disk.iterdir())


@pytest.mark.parametrize("leave", [40_000, 200_000, 400_000, 600_000])  # 400 kB: torch's "iostream error"
def test_finetune_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_model, small_disk, tmp_path, capsys, leave):
    data = write_csv(tmp_path / "t.csv", topic_rows(60))
    filler = fill(small_disk, leave)
    size = filler.stat().st_size
    args = finetune_args(tiny_model, data, small_disk / "r", "--save-steps", "2")
    code, _, err = run_cli(args, capsys)
    if code == 0:  # it fitted: then it is whole
        assert (small_disk / "r" / "model" / "model.safetensors").is_file()
    else:
        line = final_error_line(code, err, "cannot write ", "No space left on device", "free there")
        assert str(small_disk) in line
        assert unchanged_except_filler(small_disk) == ["users-data.bin"]
    assert filler.stat().st_size == size and leftovers(small_disk) == []


def test_export_and_predict_on_a_full_disk_are_one_line(topic_run, small_disk, capsys):
    filler = fill(small_disk, 20_000)
    code, _, err = run_cli(["export", "--model", topic_run, "--output", small_disk / "onnx"], capsys)
    final_error_line(code, err, "No space left on device")
    assert unchanged_except_filler(small_disk) == ["users-data.bin"]
    texts = small_disk.parent / "texts.txt"
    texts.write_text("the band played a song today\n" * 500)
    args = ["predict", "--model", topic_run, "--file", texts, "--output", small_disk / "p.jsonl"]
    code, _, err = run_cli(args, capsys)
    final_error_line(code, err, "No space left on device", str(small_disk))
    assert unchanged_except_filler(small_disk) == ["users-data.bin"] and filler.exists()  # no temp file left

"""Fuzzing the run rules: whatever a user's loss returns, whichever command meets a live run, however full the disk,
the outcome is a result or one error line, never a traceback, a half-written folder or a lost user file.
(Hostile JSON at the server is fuzzed in test_serve_hostile.py.)"""

import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import FAST, run_cli, topic_rows, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability import leftovers
from test_run_folders import HOLD, fill, tmpfs_or_skip

from distilkit.errors import DistilkitError
from distilkit.losses import LossInputs
from distilkit.losses.registry import Loss, loss_value

# ---- a user's loss: any return value ---------------------------------------------------------------------------

SHAPES = st.lists(st.integers(0, 3), min_size=0, max_size=3)
SPECIALS = st.sampled_from([0.0, 1.0, -2.5, float("nan"), float("inf"), float("-inf")])
RETURNS = st.one_of(
    st.tuples(st.just("tensor"), SHAPES, SPECIALS, st.booleans()),  # (kind, shape, fill value, on the graph)
    st.tuples(
        st.just("python"), st.one_of(st.none(), st.integers(), SPECIALS, st.text(max_size=5), st.lists(SPECIALS))
    ),
    st.tuples(st.just("raises"), st.sampled_from([ValueError, RuntimeError, KeyError, ZeroDivisionError, TypeError])),
)


def make_term(spec):
    kind = spec[0]

    def term(batch):
        if kind == "raises":
            raise spec[1]("from the user's loss")
        if kind == "python":
            return spec[1]
        _, shape, value, on_graph = spec
        base = batch.student_logits.sum() * 0 if on_graph else torch.zeros(())
        return base + torch.full(shape, value)

    return term


@settings(max_examples=300, deadline=None)
@given(spec=RETURNS)
def test_any_return_value_of_a_loss_is_a_finite_scalar_or_one_line(spec):
    logits = torch.randn(4, 3, requires_grad=True)
    batch = LossInputs(mask=torch.ones(4, 2), student_logits=logits, teacher_logits=[torch.randn(4, 3)])
    loss = Loss("fuzzed", frozenset({"logits"}), make_term(spec))
    try:
        value = loss_value(loss, batch, "step 3")
    except DistilkitError as err:
        text = str(err)
        assert "\n" not in text and text.startswith("loss 'fuzzed' (test_fuzz_runs.py:"), text
        return
    assert value.shape == () and value.requires_grad and torch.isfinite(value)
    value.backward()  # and it trains


# ---- a live run, met by any command with any flag ------------------------------------------------------------


@pytest.fixture(scope="module")
def holder_script(tmp_path_factory):
    path = tmp_path_factory.mktemp("holder") / "hold.py"
    path.write_text(HOLD)
    return path


COMMANDS = {
    "finetune": lambda run, data, tiny, out: ["finetune", "--model", tiny, "--data", data, "--output", out, *FAST],
    "distill": lambda run, data, tiny, out: ["distill", "--teacher", run, "--data", data, "--output", out, *FAST],
    "export": lambda run, data, tiny, out: ["export", "--model", run, "--output", out],
    "quantize": lambda run, data, tiny, out: ["quantize", "--model", run, "--data", data, "--output", out],
    "prune": lambda run, data, tiny, out: ["prune", "--model", run, "--data", data, "--heads", "1", "--output", out],
}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(COMMANDS)), flag=st.sampled_from([[], ["--overwrite"], ["--resume"]]))
def test_fuzz_a_live_output_is_refused_by_every_command(
    topic_run, topic_data, tiny_model, holder_script, tmp_path_factory, capsys, command, flag
):
    folder = tmp_path_factory.mktemp("live")
    out = folder / "out"
    holder = subprocess.Popen([sys.executable, holder_script, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        args = COMMANDS[command](topic_run, topic_data, tiny_model, out)
        if flag == ["--resume"] and command not in ("finetune", "distill"):
            flag = []  # the other commands have no --resume
        code, _, err = run_cli([*args, *flag], capsys)
        assert code == 2 and f"process {holder.pid}" in err and "right now" in err, err
        assert (folder / ".out.partial" / ".distilkit").is_file() and not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


# ---- a disk that runs full anywhere ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    folder = tmpfs_or_skip(tmp_path_factory.mktemp("fuzzdisk") / "disk", size="4m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["finetune", "export", "predict"]), leave=st.integers(0, 700_000))
def test_fuzz_a_full_disk_is_a_result_or_one_line(
    topic_run, tiny_model, disk, tmp_path_factory, capsys, command, leave
):
    for item in disk.iterdir():  # each example starts on an empty disk
        subprocess.run(["rm", "-rf", str(item)], check=True)
    filler = fill(disk, leave)
    size = filler.stat().st_size
    folder = tmp_path_factory.mktemp("fuzzdata")
    data = write_csv(folder / "t.csv", topic_rows(40))
    texts = folder / "texts.txt"
    texts.write_text("the band played a song today\n" * 300)
    args = {
        "finetune": ["finetune", "--model", tiny_model, "--data", data, "--output", disk / "out", "--epochs", "1"],
        "export": ["export", "--model", topic_run, "--output", disk / "out"],
        "predict": ["predict", "--model", topic_run, "--file", texts, "--output", disk / "out"],
    }[command]
    code, _, err = run_cli([*args, *(FAST if command == "finetune" else [])], capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("distilkit: error: ")]
    assert code in (0, 2), err
    if code == 2:
        assert len(errors) == 1 and "No space left on device" in errors[0], err
        assert sorted(p.name for p in disk.iterdir()) == ["users-data.bin"]
    else:
        assert (disk / "out").exists() and not errors
    assert filler.stat().st_size == size and leftovers(disk) == []
    assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]


def test_the_disk_fixture_is_really_small(disk):
    assert os.statvfs(disk).f_blocks * os.statvfs(disk).f_frsize <= 4 * 2**20

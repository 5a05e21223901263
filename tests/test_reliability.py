"""Bad options, outputs that belong to someone else, resumes with other options, damaged model files.

Each case must end in one `distilkit: error:` line and exit 2 with nothing half-written, or be refused before
anything is touched; none may reach a traceback or lose a user's file.
"""

import json
import socket

import pytest
import yaml
from conftest import FAST, run_cli, topic_rows, write_csv

from distilkit import runs
from distilkit.cli import parse


def one_error_line(code, err, *needles):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("distilkit: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def final_error_line(code, err, *needles):
    """A failure during training or writing: the progress bars of the work done so far, then one error line of its
    own, the last."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and lines and lines[-1].startswith("distilkit: error: "), err
    assert sum(ln.startswith("distilkit: error: ") for ln in lines) == 1, err
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["finetune", "--batch-size", "0"], "--batch-size 0: must be an integer ≥ 1"),
        (["finetune", "--lr=-1e-3"], "--lr -0.001: must be a finite number > 0"),
        (["finetune", "--max-length", "0"], "--max-length 0"),
        (["finetune", "--max-length", "-5"], "--max-length -5"),
        (["finetune", "--epochs", "0"], "--epochs 0.0: must be a finite number > 0"),
        (["finetune", "--dropout", "1"], "--dropout 1.0: must be a finite number in [0, 1)"),
        (["finetune", "--seed", "-1"], "--seed -1"),
        (["distill", "--temperature", "0"], "--temperature 0.0: must be a finite number > 0"),
        (["distill", "--temperature", "-1"], "--temperature -1.0"),
        (["distill", "--alpha", "1.5"], "--alpha 1.5: must be a finite number in [0, 1]"),
        (["distill", "--augment-p", "2"], "--augment-p 2.0"),
        (["prune", "--ffn", "1.0"], "--ffn 1.0: must be a finite number in [0, 1)"),
        (["predict", "--batch-size", "0", "hello"], "--batch-size 0"),
        (["bench", "--rounds", "0"], "--rounds 0"),
        (["export", "--opset", "9"], "--opset 9: must be an integer ≥ 14"),
    ],
)
def test_out_of_range_options_are_one_line_before_anything_runs(tmp_path, capsys, args, needle):
    code, _, err = run_cli([*args, "--output", str(tmp_path / "out")] if args[0] != "bench" else args, capsys)
    one_error_line(code, err, needle)
    assert list(tmp_path.iterdir()) == []


def test_config_file_values_are_checked_like_the_command_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 1e-4\nbatch_size: 0\n")
    code, _, err = run_cli(["finetune", "--config", str(config)], capsys)
    one_error_line(code, err, "--batch-size 0")
    config.write_text("lr: 1e-4\n")  # YAML 1.1 reads 1e-4 as text; it is still a number for distilkit
    assert parse(["finetune", "--config", str(config)])[1].lr == pytest.approx(1e-4)


def test_recipe_sections_are_range_checked_before_any_stage(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "data": {"data": "x.csv", "max_length": 64},
                "teacher": {"model": "m", "lr": "1e-4"},
                "students": {"s": {"student": "1", "temperature": 0}},
            }
        )
    )
    code, _, err = run_cli(["run", str(recipe), "--output", str(tmp_path / "run")], capsys)
    one_error_line(code, err, f"{recipe}: students.s: --temperature 0: must be a finite number > 0")
    assert not (tmp_path / "run").exists()


def test_loss_weights_must_be_finite_and_not_all_zero(tmp_path, capsys, topic_run, topic_data):
    for losses, needle in [
        ("{kd: .nan}", "weight of 'kd' must be a finite number"),
        ("{kd: 0, ce: 0}", "every weight is 0"),
    ]:
        code, _, err = run_cli(
            [
                "distill",
                "--teacher",
                topic_run,
                "--data",
                topic_data,
                "--student",
                "1",
                "--losses",
                losses,
                "--output",
                tmp_path / "d",
            ],
            capsys,
        )
        one_error_line(code, err, needle)
    assert leftovers(tmp_path) == [] and not (tmp_path / "d").exists()


def test_max_length_beyond_the_models_positions_is_refused(tiny_model, topic_run, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    code, _, err = run_cli(
        ["finetune", "--model", tiny_model, "--data", data, "--max-length", "100000", "--output", tmp_path / "r"],
        capsys,
    )
    one_error_line(code, err, "--max-length 100000", "reads at most 128 tokens", "--max-length 128 or less")
    code, _, err = run_cli(["predict", "--model", topic_run, "--max-length", "129", "hello"], capsys)
    one_error_line(code, err, "reads at most 128 tokens")
    assert leftovers(tmp_path) == [] and not (tmp_path / "r").exists()


# ---- outputs: only distilkit's own are replaced -------------------------------------------------------------


def test_overwrite_refuses_a_folder_distilkit_did_not_write(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "important.txt").write_text("do not lose me")
    code, _, err = run_cli(
        ["finetune", "--model", tiny_model, "--data", data, "--output", mine, "--overwrite", "--epochs", "1", *FAST],
        capsys,
    )
    one_error_line(code, err, "was not written by distilkit", "move it away")
    assert (mine / "important.txt").read_text() == "do not lose me"
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_distilkits_own_run_and_marks_it(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", tmp_path / "r", "--epochs", "1", *FAST]
    assert run_cli(args, capsys)[0] == 0
    assert json.loads((tmp_path / "r" / runs.MARKER).read_text())["kind"] == "run"
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0
    assert (tmp_path / "r" / "model").is_dir()


def test_a_file_or_an_unwritable_place_as_output_is_one_line(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", topic_rows(30))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    for output, needle in [(blocker, "a file is there"), (blocker / "run", "cannot create")]:
        code, _, err = run_cli(
            ["finetune", "--model", tiny_model, "--data", data, "--output", output, "--epochs", "1", *FAST], capsys
        )
        one_error_line(code, err, needle)
    assert blocker.read_text() == "a file"


def test_an_output_that_cannot_be_created_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    from distilkit.errors import DistilkitError

    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(DistilkitError, match=r"cannot create .*\(Not a directory\)"):
        runs.RunFolder(str(blocker / "deep" / "run")).check()  # the file is two levels up
    runs.RunFolder(str(tmp_path / "new" / "deeper" / "run")).check()  # missing folders below a writable one: fine
    monkeypatch.setattr(runs.os, "access", lambda path, mode: False)  # as a user without write permission
    with pytest.raises(DistilkitError, match=r"cannot create .*\(Permission denied\); choose a folder you can"):
        runs.RunFolder(str(tmp_path / "new" / "run")).check()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"] and blocker.read_text() == "a file"


def test_evaluate_never_writes_over_a_runs_own_files(topic_run, topic_data, tmp_path, capsys):
    before = (topic_run / "metrics.json").read_text()
    code, _, err = run_cli(["evaluate", "--model", topic_run, "--data", topic_data, "--output", topic_run], capsys)
    one_error_line(code, err, "evaluate would replace its own files", f"--output {topic_run / 'eval'}")
    assert (topic_run / "metrics.json").read_text() == before
    out = tmp_path / "eval"
    assert run_cli(["evaluate", "--model", topic_run, "--data", topic_data, "--output", out], capsys)[0] == 0
    code, _, err = run_cli(["evaluate", "--model", topic_run, "--data", topic_data, "--output", out], capsys)
    one_error_line(code, err, "metrics.json", "--overwrite")
    assert (
        run_cli(["evaluate", "--model", topic_run, "--data", topic_data, "--output", out, "--overwrite"], capsys)[0]
        == 0
    )


def test_predict_refuses_to_replace_a_file_without_overwrite_and_never_its_input(topic_run, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("text\nthe band played a song\n")
    code, _, err = run_cli(["predict", "--model", topic_run, "--output", data, "hello"], capsys)
    one_error_line(code, err, "the file exists; pass --overwrite")
    assert data.read_text() == "text\nthe band played a song\n"
    texts = tmp_path / "texts.txt"
    texts.write_text("the band played a song\n")
    code, _, err = run_cli(["predict", "--model", topic_run, "--file", texts, "--output", texts, "--overwrite"], capsys)
    one_error_line(code, err, "that is the input file")
    assert run_cli(["predict", "--model", topic_run, "--output", data, "--overwrite", "hello"], capsys)[0] == 0
    assert json.loads(data.read_text().splitlines()[0])["text"] == "hello"


# ---- resume ------------------------------------------------------------------------------------------------------


def interrupted_run(args, output):
    """A partial run folder as a killed `finetune ARGS` leaves it (its options recorded, no checkpoint yet)."""
    _, _, resolved = parse(args)
    runs.RunFolder(str(output)).prepare(resolved)


def test_resume_refuses_other_data_or_changed_data_contents(tiny_model, tmp_path, capsys):
    big = write_csv(tmp_path / "big.csv", topic_rows(60, seed=1))
    good = write_csv(tmp_path / "good.csv", topic_rows(30, seed=2))
    out = tmp_path / "r"
    common = ["finetune", "--model", str(tiny_model), "--output", str(out), "--epochs", "1", *FAST]
    interrupted_run([*common, "--data", str(big)], out)
    code, _, err = run_cli([*common, "--data", good, "--resume"], capsys)
    one_error_line(code, err, f"--data was '{big}', now '{good}'", "--overwrite to start again")
    write_csv(big, topic_rows(61, seed=5))  # same name, other contents
    code, _, err = run_cli([*common, "--data", big, "--resume"], capsys)
    one_error_line(code, err, "the file of --data changed")
    assert not out.exists()


def test_resume_with_the_same_options_and_a_free_one_changed_continues(tiny_model, tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", topic_rows(60, seed=1))
    out = tmp_path / "r"
    common = ["finetune", "--model", str(tiny_model), "--output", str(out), "--epochs", "1", "--data", str(data), *FAST]
    interrupted_run(common, out)
    code, _, err = run_cli([*common, "--resume", "--threads", "1"], capsys)
    assert code == 0, err
    assert (out / "model").is_dir()


# ---- damaged or missing models ----------------------------------------------------------------------------------


@pytest.fixture
def truncated_run(topic_run, tmp_path):
    import shutil

    copy = tmp_path / "truncated"
    shutil.copytree(topic_run, copy)
    weights = copy / "model" / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    return copy


@pytest.mark.parametrize("command", ["predict", "export", "finetune", "serve-engine"])
def test_a_truncated_safetensors_is_one_line_naming_the_file(truncated_run, topic_data, tmp_path, capsys, command):
    weights = truncated_run / "model" / "model.safetensors"
    if command == "serve-engine":  # what `distilkit serve` loads before it binds the port
        from distilkit.errors import DistilkitError
        from distilkit.serving.engine import Engine

        with pytest.raises(DistilkitError, match="looks truncated or damaged"):
            Engine.load(str(truncated_run), None)
        return
    args = {
        "predict": ["predict", "--model", truncated_run, "hello"],
        "export": ["export", "--model", truncated_run, "--output", tmp_path / "onnx"],
        "finetune": [
            "finetune",
            "--model",
            truncated_run / "model",
            "--data",
            topic_data,
            "--output",
            tmp_path / "ft",
            "--epochs",
            "1",
            *FAST,
        ],
    }[command]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, f"{weights} looks truncated or damaged")
    assert leftovers(tmp_path) == [] and not (tmp_path / "onnx").exists() and not (tmp_path / "ft").exists()


def test_a_missing_local_path_is_not_found_at_once_without_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()

    def no_network(*args, **kwargs):
        raise AssertionError("a local path must not reach for the hub")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    for path in ["runs/x", "./m/nothere", "m/a/b"]:
        code, _, err = run_cli(["predict", "--model", path, "hi"], capsys)
        one_error_line(code, err, f"{path}: model folder not found")


def test_an_unreachable_hub_id_fails_fast_with_what_to_do(capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    code, _, err = run_cli(["predict", "--model", "some-org/some-model-not-cached", "hi"], capsys)
    one_error_line(code, err, "cannot be reached", "HF_HUB_OFFLINE=1")


def test_a_mistyped_student_size_is_named_not_sent_to_the_hub(topic_run, topic_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(AssertionError("no hub")))
    code, _, err = run_cli(
        ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "99L", "--output", tmp_path / "d"],
        capsys,
    )
    one_error_line(code, err, "--student '99L': not a size spec", "4L-312H-12A-1200F")
    assert leftovers(tmp_path) == [] and not (tmp_path / "d").exists()


def test_a_missing_model_with_the_hub_offline_says_not_found(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(["predict", "--model", "runs-nope/x", "hi"], capsys)
    one_error_line(code, err, "runs-nope/x: not found", "HF_HUB_OFFLINE=1")


def test_predict_input_that_is_not_utf8_is_one_line(topic_run, capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("ok\ncaf\xe9 au lait\n".encode("latin-1"))))
    code, _, err = run_cli(["predict", "--model", topic_run], capsys)
    one_error_line(code, err, "stdin:2: byte 0xe9 is not valid UTF-8")
    code, _, err = run_cli(["predict", "--model", topic_run, "caf\udce9"], capsys)  # what argv gives for latin-1
    one_error_line(code, err, "text 1: character 3 is not valid text")

"""Messages that name the option, the file and the fix, and work whose size the user decides, estimated first.

Each refusal here used to be right but unhelpful, silent, or a hang: a corpus error without its file and byte,
"not a distilkit run folder" for a path that does not exist, --alpha ignored beside --losses, a layer pair counted
twice, a named pipe read forever, --augment-p 0 refused without its name, static int8 checked on its own calibration
rows, a help line that said fp32, a suggestion of --eval_batch_size for --per-device-train-batch-size, a test file
called "the train.csv test split". Augmentation copies, transfer sets and corpora are estimated before any work and
refused with the estimate where they cannot fit.
"""

import os
import subprocess
import sys

import pytest
from conftest import FAST, run_cli, topic_rows, write_csv
from test_reliability import leftovers, one_error_line

QUICK = ["--epochs", "1", "--batch-size", "16", "--warmup", "0"]


# ---- general distillation: the corpus's file, line and byte --------------------------------------------------


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "the corpus has no text (its files are empty or blank)"),
        (b"\n  \n\n", "the corpus has no text"),
        (b"fine line\ncaf\xe9 au lait\n", "corpus.txt:2: byte 0xe9 is not valid UTF-8"),
        (b"fine\nmore\n\x00\x01\x02binary", "corpus.txt:3: a NUL byte"),
    ],
)
def test_a_corpus_that_cannot_be_read_names_its_file_line_and_byte(tiny_model, tmp_path, capsys, content, needle):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    args = ["distill", "--general", "--teacher", tiny_model, "--student", "1", "--data", corpus]
    code, _, err = run_cli([*args, "--output", tmp_path / "g", *QUICK], capsys)
    one_error_line(code, err, needle)
    assert leftovers(tmp_path) == [] and not (tmp_path / "g").exists()


@pytest.mark.parametrize("command", ["finetune", "general"])
def test_a_named_pipe_as_data_is_refused_at_once(tiny_model, tmp_path, command):
    pipe = tmp_path / "data.txt"
    os.mkfifo(pipe)  # nothing ever writes to it: reading it would wait forever
    args = {
        "finetune": ["finetune", "--model", tiny_model, "--data", pipe],
        "general": ["distill", "--general", "--teacher", tiny_model, "--student", "1", "--data", pipe],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "distilkit", *map(str, args), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DISTILKIT_TRACEBACK": "0"},
    )
    assert done.returncode == 2 and "not a regular file (a named pipe" in done.stderr, done.stderr


# ---- distill options -----------------------------------------------------------------------------------------


def distill_args(topic_run, topic_data, out, *more):
    return ["distill", "--teacher", topic_run, "--data", topic_data, "--output", out, *QUICK, *more]


def test_intermediate_from_a_missing_path_says_not_found(topic_run, topic_data, tmp_path, capsys):
    args = distill_args(topic_run, topic_data, tmp_path / "d", "--method", "tinybert", "--student", "1")
    code, _, err = run_cli([*args, "--intermediate-from", tmp_path / "no-such-run"], capsys)
    one_error_line(code, err, f"--intermediate-from {tmp_path / 'no-such-run'}: not found")


def test_alpha_beside_losses_is_refused_instead_of_ignored(topic_run, topic_data, tmp_path, capsys):
    args = distill_args(topic_run, topic_data, tmp_path / "d", "--losses", "{kd: 1, ce: 1}", "--alpha", "0.3")
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, "--alpha 0.3 has no effect with --losses", "ce: 0.3, kd: 0.7", "drop --alpha")


@pytest.mark.parametrize(
    "layer_map, needle",
    [("0:0,1:2,1:2", "student hidden state 1 is mapped twice;"), ("0:0,1:1,1:2", "twice (1:1 and 1:2)")],
)
def test_a_student_layer_mapped_twice_is_refused(topic_run, topic_data, tmp_path, capsys, layer_map, needle):
    args = distill_args(topic_run, topic_data, tmp_path / "d", "--student", "1", "--method", "tinybert")
    code, _, err = run_cli([*args, "--layer-map", layer_map], capsys)
    one_error_line(code, err, f"--layer-map '{layer_map}'", needle)


@pytest.mark.parametrize("args", [["distill", "--augment-p", "0"], ["augment", "--p", "0"]])
def test_a_zero_augmentation_probability_names_its_option(args, capsys):
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, f"{args[1]} 0.0: must be a finite number in (0, 1]")


def test_static_int8_is_not_checked_on_its_own_calibration_rows(topic_run, tmp_path, capsys):
    one = write_csv(tmp_path / "one.csv", topic_rows(1))
    args = ["quantize", "--model", topic_run, "--method", "static", "--data", one, "--output", tmp_path / "q"]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, "would run on 1 of the 1 rows static calibration uses", "--method dynamic")
    assert leftovers(tmp_path) == [] and not (tmp_path / "q").exists()


def test_the_precision_help_says_what_auto_does_on_a_cpu(capsys):
    with pytest.raises(SystemExit):
        from distilkit.cli import main

        main(["finetune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "AVX512-BF16 or AMX" in help_text and "fp32 on CPU" not in help_text


@pytest.mark.parametrize(
    "given, meant",
    [
        # Hugging Face's spellings are aliases now (test_hf_option_names.py): misspelt, they lead to the option
        ("--per-device-train-batchsize", "--batch-size"),
        ("--per-device-eval-batchsize", "--eval-batch-size"),
        ("--learning-rates", "--lr"),
        ("--num-train-epoch", "--epochs"),
        ("--output-dirs", "--output"),
        ("--max-seq-len", "--max-length"),
        ("--batchsize", "--batch-size"),
        ("--batch-sise", "--batch-size"),
    ],
)
def test_a_wrong_option_suggests_the_one_meant(capsys, given, meant):
    code, _, err = run_cli(["finetune", given, "8"], capsys)
    one_error_line(code, err, f"{given}: did you mean {meant}?")


def test_the_summary_names_a_test_file_as_itself(tiny_model, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", topic_rows(60, seed=1))
    test = write_csv(tmp_path / "held-out.csv", topic_rows(12, seed=2))
    args = ["finetune", "--model", tiny_model, "--train-file", train, "--test-file", test, "--output", tmp_path / "r"]
    code, out, err = run_cli([*args, *FAST, "--epochs", "1"], capsys)
    assert code == 0, err
    assert "held-out.csv (test split)" in out and "train.csv test split" not in out


def test_an_unexpected_error_is_one_line_naming_where_it_came_from(topic_run, capsys, monkeypatch):
    from distilkit.inference import predict

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.delenv("DISTILKIT_TRACEBACK", raising=False)
    monkeypatch.setattr(predict, "predict_rows", broken)
    code, _, err = run_cli(["predict", "--model", topic_run, "hello"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "unexpected KeyError: 'a bug'" in lines[0] and "test_messages.py" in lines[0]
    assert "DISTILKIT_TRACEBACK=1" in lines[0]


# ---- work whose size the user decides ----------------------------------------------------------------------


def test_augment_100000_is_refused_with_its_estimate_before_any_work(
    topic_run, topic_data, tmp_path, capsys, monkeypatch
):
    from distilkit import budget

    monkeypatch.setattr(budget, "available_memory", lambda: 2 * 10**9)  # as under a 2 GB memory cap
    args = distill_args(topic_run, topic_data, tmp_path / "d", "--student", "1", "--augment", "100000")
    code, out, err = run_cli(args, capsys)
    line = one_error_line(code, err, "--augment 100000: 192 examples × 100001 = 19,200,192 training examples")
    assert "GB of memory, but 2.0 GB is available" in line and "use a smaller --augment" in line
    assert "augmentation:" not in out and leftovers(tmp_path) == []
    code, out, _ = run_cli([*args[:-1], "2"], capsys)  # a size that fits is estimated aloud, then done
    assert code == 0 and "augmentation: 192 → 576 training examples (about " in out and " in memory)" in out


def test_augment_under_a_real_memory_cap_is_one_line(topic_run, topic_data, tmp_path):
    """ulimit -v, as the probe ran it: the estimate is refused before anything grows toward the cap."""
    import resource

    code = (
        "import resource, sys; from distilkit.cli import main; "
        "soft = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024 + 6 * 2**30; "
        "resource.setrlimit(resource.RLIMIT_AS, (soft, resource.RLIM_INFINITY)); main(sys.argv[1:])"
    )
    args = distill_args(topic_run, topic_data, tmp_path / "d", "--student", "1", "--augment", "100000")
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DISTILKIT_TRACEBACK": "0"},
    )
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("distilkit: error: ")]
    assert done.returncode == 2 and len(lines) == 1 and "--augment 100000" in lines[0], done.stderr[-3000:]
    assert "MemoryError" not in done.stderr and leftovers(tmp_path) == []


def test_the_augment_command_estimates_its_copies_too(topic_data, tmp_path, capsys, monkeypatch):
    from distilkit import budget

    monkeypatch.setattr(budget, "available_memory", lambda: 10**9)
    args = ["augment", "--data", topic_data, "--copies", "1000000", "--output", tmp_path / "a.csv"]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, "--copies 1000000", "of memory, but 1.0 GB is available", "augment the file in parts")
    assert not (tmp_path / "a.csv").exists()


def test_a_data_file_larger_than_memory_is_refused_before_it_is_read(tiny_model, tmp_path, capsys, monkeypatch):
    from distilkit import budget

    data = write_csv(tmp_path / "big.csv", topic_rows(2000))
    monkeypatch.setattr(budget, "available_memory", lambda: 100_000)
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", tmp_path / "r"]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, f"data file {data}", "of memory, but 100.0 kB is available")
    code, _, err = run_cli([*args[:-2], "--data", write_csv(tmp_path / "t.csv", topic_rows(60)), "--unlabeled", data])
    assert code == 2  # a transfer set too


def test_a_corpus_that_does_not_fit_on_the_cache_disk_is_refused(tiny_model, tmp_path, capsys, monkeypatch):
    import shutil

    from distilkit import budget

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the band played a song today\n" * 2000)
    real = shutil.disk_usage
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    args = ["distill", "--general", "--teacher", tiny_model, "--student", "1", "--data", corpus]
    code, _, err = run_cli([*args, "--output", tmp_path / "g", *QUICK, "--cache-dir", tmp_path / "cache"], capsys)
    one_error_line(code, err, f"--data {corpus}: writing the corpus as Arrow files", "1.0 kB free", "--cache-dir")

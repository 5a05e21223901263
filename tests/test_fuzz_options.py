"""Fuzzing option values: any value of any numeric option is a valid config or one `DistilkitError`.

Parsing is fuzzed for every command (fast); a few whole `finetune` runs with random values check that a run
either finishes or stops with exit 2, and never leaves a `.partial` folder behind.
"""

import dataclasses
import math

from conftest import run_cli, topic_rows, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilkit.cli import COMMANDS, parse
from distilkit.errors import DistilkitError

NUMERIC = sorted(
    {(name, f.name) for name, (cls, _) in COMMANDS.items() for f in dataclasses.fields(cls) if f.metadata.get("rule")}
)
VALUES = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0", "-1", "1e-4", "nan", "inf", "-inf", "", "abc", "1,5", "0x10", "1e400", "true", "[]", "{}"]),
)


@settings(max_examples=100, deadline=None)
@given(option=st.sampled_from(NUMERIC), value=VALUES)
def test_any_value_of_any_numeric_option_parses_or_is_one_error(option, value):
    command, name = option
    try:
        _, config, _ = parse([command, f"--{name.replace('_', '-')}", str(value)])
    except DistilkitError as err:
        assert "\n" not in str(err) and str(err)
        return
    parsed = getattr(config, name)
    rule = next(f for f in dataclasses.fields(config) if f.name == name).metadata["rule"]
    assert parsed is None or rule.accepts(parsed)
    assert parsed is None or math.isfinite(parsed)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.fixed_dictionaries(
        {
            "--batch-size": st.sampled_from(["0", "1", "7", "-3", "100000"]),
            "--lr": st.sampled_from(["1e-3", "0", "-1", "nan", "1e9"]),
            "--epochs": st.sampled_from(["1", "0", "0.5", "-2"]),
            "--max-length": st.sampled_from(["16", "0", "-5", "100000", "4"]),
            "--warmup": st.sampled_from(["0", "0.5", "3", "-0.1"]),
        }
    )
)
def test_finetune_with_random_values_finishes_or_stops_cleanly(tiny_model, tmp_path_factory, capsys, values):
    folder = tmp_path_factory.mktemp("fuzz")
    data = write_csv(folder / "t.csv", topic_rows(24))
    args = ["finetune", "--model", tiny_model, "--data", data, "--output", folder / "run", "--logging-steps", "1"]
    for option, value in values.items():
        args += [f"{option}={value}"]
    code, _, err = run_cli(args, capsys)
    assert code in (0, 2), err
    if code == 2:
        assert err.strip().startswith("distilkit: error: ") and len(err.strip().splitlines()) == 1, err
        assert not (folder / "run").exists()
    else:
        assert (folder / "run" / "model").is_dir()
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]

"""The loss registry: contracts every registered loss keeps, the distiller's sum, cached = live, and a loss
registered from outside the package used by `distilkit distill --losses`."""

import json

import pytest
import torch
from conftest import run_cli

from distilkit.distillation.distiller import Distiller, LossPlan, StudentWithProjections
from distilkit.distillation.layer_map import build_layer_map
from distilkit.losses import LOSSES, LossInputs, kd_loss, register_loss

B, N, PAD, C, HEADS, WIDTH = 3, 5, 2, 4, 2, 8


@register_loss("test_logit_l1", reads={"logits"})
def logit_l1(batch: LossInputs) -> torch.Tensor:
    """A loss defined outside distilkit: mean |z_s − z_t| against the first teacher."""
    return (batch.student_logits.float() - batch.teacher_logits[0].float()).abs().mean()


def random_batch(seed: int, n: int = N, same: bool = False, pad: int = 0) -> LossInputs:
    """Student and teacher tensors of every kind; `same` makes the teacher's equal to the student's; `pad` extra
    positions get random values and mask 0."""
    g = torch.Generator().manual_seed(seed)
    total = n + pad

    def pair(*shape):
        s = torch.randn(*shape, generator=g)
        return s, (s.clone() if same else torch.randn(*shape, generator=g))

    mask = torch.ones(B, total, dtype=torch.long)
    mask[:, n:] = 0
    mask[0, n - 1] = 0  # some padding inside the real length too
    s_logits, t_logits = pair(B, C)
    emb, hid = pair(B, total, WIDTH), pair(B, total, WIDTH)
    scores = pair(B, HEADS, total, total)
    q, k, v = pair(B, total, WIDTH), pair(B, total, WIDTH), pair(B, total, WIDTH)
    return LossInputs(
        mask=mask,
        student_logits=s_logits,
        teacher_logits=[t_logits],
        embeddings=[(*emb, None)],
        hidden=[(*hid, None)],
        scores=[scores],
        qkv=((q[0], k[0], v[0]), (q[1], k[1], v[1])),
        relation_heads=2,
        temperature=2.0,
    )


def with_padding(batch: LossInputs, seed: int) -> LossInputs:
    """The same batch with PAD extra positions of random junk that the mask hides."""
    g = torch.Generator().manual_seed(seed)

    def grow(x, dims):
        for d in dims:
            shape = list(x.shape)
            shape[d] = PAD
            x = torch.cat([x, torch.randn(*shape, generator=g)], dim=d)
        return x

    def grow_pair(p):
        return tuple(grow(x, [1]) if x is not None else None for x in p)

    return LossInputs(
        mask=torch.cat([batch.mask, torch.zeros(B, PAD, dtype=torch.long)], 1),
        student_logits=batch.student_logits,
        teacher_logits=batch.teacher_logits,
        embeddings=[grow_pair(p) for p in batch.embeddings],
        hidden=[grow_pair(p) for p in batch.hidden],
        scores=[tuple(grow(x, [2, 3]) for x in p) for p in batch.scores],
        qkv=tuple(tuple(grow(x, [1]) for x in side) for side in batch.qkv),
        relation_heads=batch.relation_heads,
        temperature=batch.temperature,
    )


DISTILLATION_LOSSES = sorted(name for name, loss in LOSSES.items() if "labels" not in loss.reads)


@pytest.mark.parametrize("name", DISTILLATION_LOSSES)
def test_every_loss_is_finite_non_negative_and_zero_when_student_equals_teacher(name):
    term = LOSSES[name].term
    value = term(random_batch(1))
    assert value.dim() == 0 and torch.isfinite(value) and value.item() >= 0
    assert value.item() > 1e-6  # it does measure a difference
    assert term(random_batch(2, same=True)).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", DISTILLATION_LOSSES)
def test_every_loss_ignores_masked_padding(name):
    batch = random_batch(3)
    assert LOSSES[name].term(with_padding(batch, 4)).item() == pytest.approx(
        LOSSES[name].term(batch).item(), rel=1e-4, abs=1e-6
    )


def test_every_loss_declares_what_it_reads():
    from distilkit.losses.registry import READABLE

    for loss in LOSSES.values():
        assert loss.reads and loss.reads <= READABLE
    with pytest.raises(ValueError, match="registered twice"):
        register_loss("kd", reads={"logits"})(lambda b: b)
    with pytest.raises(ValueError, match="subset"):
        register_loss("nope", reads={"pooler"})(lambda b: b)


def test_the_plan_derives_capture_and_cache_from_the_losses():
    layer_map = build_layer_map("uniform", 2, 4)
    plan = LossPlan({"kd": 1.0, "test_logit_l1": 0.5}, layer_map)
    assert not (plan.needs_hidden or plan.needs_scores or plan.needs_qkv)
    assert plan.cache_spec(logits=True).names() == ["logits"]
    plan = LossPlan({"embedding_mse": 1.0, "attention_mse": 1.0, "minilm_relations": 0.0}, layer_map)
    assert plan.hidden_pairs == [(0, 0)] and plan.needs_scores and not plan.needs_qkv
    assert plan.cache_spec(logits=False).names() == ["hidden_0", "scores_1", "scores_3"]


# ---- compute_loss on real tiny models --------------------------------------------------------------------------


def tiny_distiller(topic_run, weights: dict, caches=None, layer_map="uniform"):
    """A Distiller without the Trainer around it: the teacher is the topic run, the student a 1-layer copy."""
    from distilkit.distillation.students import build_student
    from distilkit.inference.loading import load_trained

    teacher = load_trained(str(topic_run))
    student, _ = build_student("1", teacher.model, teacher.task, seed=0)
    from distilkit.distillation import capture

    capture.enable(student)
    capture.enable(teacher.model)
    plan = LossPlan(weights, build_layer_map(layer_map, 1, 2), temperature=2.0, relation_heads=2)
    trainer = Distiller.__new__(Distiller)  # compute_loss needs only these attributes
    trainer.plan, trainer.teachers, trainer.caches = plan, [teacher.model.eval()], caches or []
    from collections import defaultdict

    trainer._parts = defaultdict(list)
    return trainer, StudentWithProjections(student.eval(), torch.nn.ModuleDict()), teacher  # eval: no dropout


def encoded(teacher, texts=("the band played a new song", "the chef made bread", "goal")):
    from distilkit.data.encode import collator_for

    rows = [dict(teacher.tokenizer(t), labels=i % 3, example_id=i) for i, t in enumerate(texts)]
    return collator_for("sequence-classification", teacher.tokenizer)(rows), rows


def test_compute_loss_is_the_weighted_sum_of_the_parts(topic_run):
    weights = {"ce": 0.3, "kd": 0.7, "hidden_mse": 2.0, "attention_mse": 0.5, "test_logit_l1": 1.5}
    trainer, model, teacher = tiny_distiller(topic_run, weights)
    inputs, _ = encoded(teacher)
    total, student_out = trainer.compute_loss(model, inputs, return_outputs=True)
    parts = {name: values[-1] for name, values in trainer._parts.items()}
    assert set(parts) == set(weights)
    assert total.item() == pytest.approx(sum(weights[n] * parts[n] for n in weights), rel=1e-5)
    with torch.no_grad():
        t_logits = teacher.model(**{k: v for k, v in inputs.items() if k not in ("labels", "example_id")}).logits
    assert parts["kd"] == pytest.approx(kd_loss(student_out.logits, t_logits, 2.0).item(), rel=1e-5)
    assert parts["ce"] == pytest.approx(student_out.loss.item(), rel=1e-5)


def test_label_losses_are_skipped_on_batches_without_labels(topic_run):
    trainer, model, teacher = tiny_distiller(topic_run, {"ce": 0.5, "kd": 0.5})
    inputs, _ = encoded(teacher)
    inputs.pop("labels")
    total = trainer.compute_loss(model, inputs)
    assert set(trainer._parts) == {"kd"} and total.item() == pytest.approx(0.5 * trainer._parts["kd"][-1], rel=1e-5)


def test_cached_and_live_teacher_outputs_give_the_same_loss(topic_run, tmp_path):
    import datasets

    from distilkit.data.encode import collator_for
    from distilkit.distillation.cache import build_cache

    weights = {"kd": 1.0, "embedding_mse": 1.0, "hidden_mse": 1.0, "attention_mse": 1.0, "minilm_relations": 1.0}
    live, model, teacher = tiny_distiller(topic_run, weights)
    inputs, rows = encoded(teacher)
    dataset = datasets.Dataset.from_list(rows)
    config = teacher.model.config
    dims = {
        "task": "sequence-classification",
        "token_level": False,
        "hidden": config.hidden_size,
        "heads": config.num_attention_heads,
        "labels": config.num_labels,
    }
    cache = build_cache(
        teacher.model,
        dataset,
        collator_for("sequence-classification", teacher.tokenizer),
        live.plan.cache_spec(logits=True),
        tmp_path / "cache",
        2,
        dims,
        progress=False,
    )
    cached, _, _ = tiny_distiller(topic_run, weights, caches=[cache])

    def no_live_teacher(*args, **kwargs):
        raise AssertionError("every teacher output must come from the cache")

    cached.teachers[0].forward = no_live_teacher
    with torch.no_grad():
        a = live.compute_loss(model, dict(inputs))
        b = cached.compute_loss(model, dict(inputs))
    assert b.item() == pytest.approx(a.item(), rel=2e-3)  # the cache stores float16
    for name in weights:
        assert cached._parts[name][-1] == pytest.approx(live._parts[name][-1], rel=5e-3, abs=1e-4)


# ---- a user's loss through the command line --------------------------------------------------------------------


def test_a_loss_from_outside_the_package_is_used_and_logged(topic_run, topic_data, tmp_path, capsys):
    out = tmp_path / "d"
    code, stdout, err = run_cli(
        [
            "distill",
            "--teacher",
            topic_run,
            "--data",
            topic_data,
            "--student",
            "1",
            "--losses",
            "{kd: 1, test_logit_l1: 0.5}",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--logging-steps",
            "2",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    assert "0.5·test_logit_l1" in stdout
    logged = stdout + err
    assert "'loss_test_logit_l1'" in logged
    assert json.loads((out / "metrics.json").read_text())["stages"][-1]["weights"] == {"kd": 1.0, "test_logit_l1": 0.5}


def test_a_plugin_file_registers_its_loss(topic_run, topic_data, tmp_path, capsys):
    plugin = tmp_path / "my_losses.py"
    plugin.write_text(
        "from distilkit.losses import register_loss\n\n"
        "@register_loss('plugin_logit_mse', reads={'logits'})\n"
        "def plugin_logit_mse(batch):\n"
        "    return ((batch.student_logits - batch.teacher_logits[0]) ** 2).mean()\n"
    )
    args = [
        "distill",
        "--teacher",
        topic_run,
        "--data",
        topic_data,
        "--student",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--losses",
        "{plugin_logit_mse: 1}",
        "--output",
        tmp_path / "d",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "unknown loss 'plugin_logit_mse'" in err and "--plugins" in err
    code, stdout, err = run_cli([*args, "--plugins", plugin, "--logging-steps", "2"], capsys)
    assert code == 0, err
    assert "'loss_plugin_logit_mse'" in stdout + err
    code, _, err = run_cli([*args[:-1], tmp_path / "e", "--plugins", tmp_path / "missing.py"], capsys)
    assert code == 2 and "--plugins" in err and "file not found" in err

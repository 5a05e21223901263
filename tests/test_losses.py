"""Golden-value tests: every loss recomputed by hand (plain Python/NumPy loops) on fixed tensors."""

import math

import numpy as np
import pytest
import torch

from distilkit.errors import DistilkitError
from distilkit.losses import LOSSES, build_loss, masked_mean


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def kl(p, q):
    return float(sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q)))


S_LOGITS = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
T_LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]])


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_is_t_squared_kl_teacher_student(temperature):
    expected = (
        np.mean(
            [kl(softmax(t.numpy() / temperature), softmax(s.numpy() / temperature)) for s, t in zip(S_LOGITS, T_LOGITS)]
        )
        * temperature**2
    )
    got = LOSSES["kd"](S_LOGITS, T_LOGITS, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_golden_number():
    # stored value (pure-Python hand computation at T=2): guards against silent convention changes
    assert LOSSES["kd"](S_LOGITS, T_LOGITS, 2.0).item() == pytest.approx(0.4633014, rel=1e-5)


def test_kd_token_mask_ignores_padding():
    s = torch.stack([S_LOGITS, torch.full((2, 3), 9.0)])  # [batch 2, tokens 2, classes 3]
    t = torch.stack([T_LOGITS, torch.zeros(2, 3)])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert LOSSES["kd"](s, t, 1.0, mask).item() == pytest.approx(LOSSES["kd"](S_LOGITS, T_LOGITS, 1.0).item(), rel=1e-6)


def test_kd_soft_targets_equals_kd_for_one_teacher():
    probs = torch.softmax(T_LOGITS / 2.0, -1)
    a = LOSSES["kd_soft_targets"](S_LOGITS, probs, 2.0)
    assert a.item() == pytest.approx(LOSSES["kd"](S_LOGITS, T_LOGITS, 2.0).item(), rel=1e-5)


def test_kd_mse():
    expected = np.mean((S_LOGITS.numpy() - T_LOGITS.numpy()) ** 2)
    assert LOSSES["kd_mse"](S_LOGITS, T_LOGITS).item() == pytest.approx(expected)


def test_hidden_mse_with_projection_and_mask():
    torch.manual_seed(0)
    hs, ht = torch.randn(2, 3, 4), torch.randn(2, 3, 6)
    proj = torch.nn.Linear(4, 6)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    projected = proj(hs).detach().numpy()
    errors = [((projected[b, i] - ht[b, i].numpy()) ** 2).mean() for b in range(2) for i in range(3) if mask[b, i]]
    got = LOSSES["hidden_mse"](hs, ht, mask, proj)
    assert got.item() == pytest.approx(float(np.mean(errors)), rel=1e-5)
    assert LOSSES["embedding_mse"](hs, ht, mask, proj).item() == pytest.approx(got.item())


def test_normalized_mse_is_relative_to_the_teacher_energy():
    """normalize=True: Σ_valid (s − t)² / Σ_valid t² (means over the same positions), for every MSE layer loss;
    0 for a perfect student, 1 for a student that outputs zeros, unchanged when both sides are rescaled."""
    torch.manual_seed(3)
    hs, ht = torch.randn(2, 3, 4), 5 * torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    valid = mask.bool().numpy()
    s, t = hs.numpy()[valid], ht.numpy()[valid]
    expected = ((s - t) ** 2).mean() / (t**2).mean()
    for name in ("hidden_mse", "embedding_mse"):
        assert LOSSES[name](hs, ht, mask, None, True).item() == pytest.approx(float(expected), rel=1e-5)
        assert LOSSES[name](torch.zeros_like(ht), ht, mask, None, True).item() == pytest.approx(1.0)
        assert LOSSES[name](10 * hs, 10 * ht, mask, None, True).item() == pytest.approx(float(expected), rel=1e-5)
    a_s, a_t = torch.randn(1, 2, 3, 3), 20 * torch.randn(1, 2, 3, 3)
    amask = torch.tensor([[1, 1, 0]])
    raw = LOSSES["attention_mse"](a_s, a_t, amask).item()
    energy = float((a_t[0, :, :2, :2] ** 2).mean())
    assert LOSSES["attention_mse"](a_s, a_t, amask, normalize=True).item() == pytest.approx(raw / energy, rel=1e-5)
    ht.requires_grad_(True)  # the scale is detached: the teacher side gets only the MSE's gradient, divided by it
    LOSSES["hidden_mse"](hs, ht, mask, None, True).backward()
    energy = float((t**2).mean())
    manual = -2 * (hs - ht.detach()) * mask[..., None] / (int(mask.sum()) * 4) / energy
    assert torch.allclose(ht.grad, manual, atol=1e-6)


def test_hidden_cosine():
    hs = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    ht = torch.tensor([[[0.0, 1.0], [2.0, 2.0]]])
    # cosines: 0 and 1 → losses 1 and 0
    assert LOSSES["hidden_cosine"](hs, ht).item() == pytest.approx(0.5)
    assert LOSSES["hidden_cosine"](hs, ht, torch.tensor([[0, 1]])).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_mse_zeroes_padded_pairs():
    torch.manual_seed(1)
    s, t = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    mask = torch.tensor([[1, 1, 0]])
    diffs = [(s[0, h, i, j] - t[0, h, i, j]).item() ** 2 for h in range(2) for i in range(2) for j in range(2)]
    assert LOSSES["attention_mse"](s, t, mask).item() == pytest.approx(np.mean(diffs), rel=1e-5)
    s2 = s.clone()
    s2[0, :, 2, :] = 100.0  # changes at padded positions do not matter
    s2[0, :, :, 2] = -100.0
    assert LOSSES["attention_mse"](s2, t, mask).item() == pytest.approx(np.mean(diffs), rel=1e-5)


def test_attention_mse_probabilities_option():
    torch.manual_seed(2)
    s, t = torch.randn(1, 1, 2, 2), torch.randn(1, 1, 2, 2)
    ps = [softmax(row) for row in s[0, 0].numpy()]
    pt = [softmax(row) for row in t[0, 0].numpy()]
    expected = np.mean([(a - b) ** 2 for r1, r2 in zip(ps, pt) for a, b in zip(r1, r2)])
    assert LOSSES["attention_mse"](s, t, probabilities=True).item() == pytest.approx(expected, rel=1e-5)
    # probabilities are bounded and compared raw: normalize leaves them alone (it does scale scores)
    assert LOSSES["attention_mse"](s, t, probabilities=True, normalize=True).item() == pytest.approx(expected, rel=1e-5)
    assert LOSSES["attention_mse"](s, t, normalize=True) != LOSSES["attention_mse"](s, t)


def test_attention_mse_refuses_different_head_counts():
    with pytest.raises(ValueError, match="minilm_relations"):
        LOSSES["attention_mse"](torch.zeros(1, 2, 3, 3), torch.zeros(1, 4, 3, 3))


def test_minilm_relations_by_hand():
    torch.manual_seed(3)
    n, heads = 3, 2
    student = [torch.randn(1, n, 4) for _ in range(3)]  # width 4 → 2 relation heads of 2
    teacher = [torch.randn(1, n, 6) for _ in range(3)]  # width 6 → 2 relation heads of 3: widths may differ
    total = 0.0
    for xs, xt in zip(student, teacher):
        per = []
        for a in range(heads):
            ds, dt = 4 // heads, 6 // heads
            s_part = xs[0, :, a * ds : (a + 1) * ds].numpy()
            t_part = xt[0, :, a * dt : (a + 1) * dt].numpy()
            for i in range(n):
                rs = softmax(s_part[i] @ s_part.T / math.sqrt(ds))
                rt = softmax(t_part[i] @ t_part.T / math.sqrt(dt))
                per.append(kl(rt, rs))
        total += np.mean(per)
    got = LOSSES["minilm_relations"](student, teacher, relation_heads=heads)
    assert got.item() == pytest.approx(total, rel=1e-4)


def test_minilm_relations_mask_excludes_padding_keys_and_queries():
    torch.manual_seed(4)
    xs = [torch.randn(1, 3, 4) for _ in range(3)]
    xt = [torch.randn(1, 3, 4) for _ in range(3)]
    mask = torch.tensor([[1, 1, 0]])
    short = LOSSES["minilm_relations"]([x[:, :2] for x in xs], [x[:, :2] for x in xt], 2)
    assert LOSSES["minilm_relations"](xs, xt, 2, mask).item() == pytest.approx(short.item(), rel=1e-4)


def test_registry_and_unknown_name():
    assert {"kd", "hidden_mse", "embedding_mse", "attention_mse", "hidden_cosine", "minilm_relations"} <= set(LOSSES)
    with pytest.raises(DistilkitError, match="did you mean 'hidden_mse'"):
        build_loss("hiden_mse")


def test_masked_mean_broadcasts():
    values = torch.arange(12.0).view(2, 3, 2)
    mask = torch.tensor([[1, 0, 0], [0, 0, 1]])
    assert masked_mean(values, mask).item() == pytest.approx((0 + 1 + 10 + 11) / 4)

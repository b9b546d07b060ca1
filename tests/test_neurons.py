"""neurons.py against science.md, written out literally here as the oracle."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocompile.ir import neurons


def paper_cif(xs, theta, t_wake, gamma=1):
    """science.md section 1, line by line, for one neuron; xs after t_wake are sleep steps."""
    m = S = tw = 0.0
    out = []
    for t, x in enumerate(xs):
        m += x
        if t < t_wake:
            tw += 1
        s = float(np.clip(np.floor(m / theta), -gamma, gamma))
        if s <= 0 and S <= 0:
            s = 0.0
        if s > 0 and S >= tw:
            s = 0.0
        S += s
        m -= theta * s
        out.append(s)
    return np.array(out), S, m


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=1, max_size=24),
       st.sampled_from([0.5, 1.0, 1.7]), st.integers(1, 8))
def test_cif_gamma1_is_the_paper_rule(xs, theta, t_wake):
    want, _, _ = paper_cif(xs, theta, t_wake)
    m = S = np.zeros(1)
    got = []
    for t, x in enumerate(xs):
        s, m, S = neurons.cif_step(m, S, np.array([x]), theta, min(t + 1, t_wake))
        got.append(s[0])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-2, 3, allow_nan=False, width=32), min_size=1, max_size=8),
       st.integers(1, 8), st.sampled_from([1, 2, 8]))
def test_cif_settles_to_clipped_floor(wake_inputs, t_wake, gamma):
    """After the input stops, S = clip(floor(sum x / θ), 0, T_wake) and 0 <= m < θ when 0 < S < T_wake
    (a saturated neuron, S = T_wake, keeps the excess in m: that is the clip at λ)."""
    theta = 0.75
    xs = np.array(wake_inputs[:t_wake] + [0.0] * (3 * t_wake + 8), dtype=np.float64)
    m, S = np.zeros(1), np.zeros(1)
    for t, x in enumerate(xs):
        _, m, S = neurons.cif_step(m, S, np.array([x]), theta, min(t + 1, t_wake), gamma)
        assert 0 <= S[0] <= min(t + 1, t_wake)
    assert S[0] == np.clip(np.floor(xs.sum() / theta), 0, t_wake)
    if 0 < S[0] < t_wake:
        assert 0 <= m[0] < theta


def test_cif_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 50))
    mn, Sn = np.zeros(50), np.zeros(50)
    mt, St = torch.zeros(50, dtype=torch.float64), torch.zeros(50, dtype=torch.float64)
    for t in range(6):
        sn, mn, Sn = neurons.cif_step(mn, Sn, x[t], 0.5, min(t + 1, 4), 2)
        st_, mt, St = neurons.cif_step(mt, St, torch.tensor(x[t]), 0.5, min(t + 1, 4), 2)
        np.testing.assert_array_equal(sn, st_.numpy())


def test_if_baseline_and_lif():
    s, m = neurons.if_step(np.array([0.0, 0.9, 2.5]), np.array([0.5, 0.5, 0.0]), 1.0)
    np.testing.assert_array_equal(s, [0, 1, 1])
    np.testing.assert_allclose(m, [0.5, 0.4, 1.5])
    # LIF: U(t) = β U(t-1) (1 - F(t-1)) + X(t), F = [U > U_th], hard reset to 0
    u, spikes = np.zeros(1), []
    for x in [0.3, 0.3, 0.3, 0.6, 0.1]:
        f, u = neurons.lif_step(u, np.array([x]), 0.25, 0.5)
        spikes.append(f[0])
    assert spikes == [0, 0, 0, 1, 0]  # 0.3, 0.375, 0.394, 0.698 -> spike, reset, 0.1


def test_inhibition_maxpool_cumulative_max():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3, 4))   # steps, windows, window size
    acc, total = np.zeros((3, 4)), np.zeros(3)
    for t in range(10):
        out, acc = neurons.inhibition_maxpool_step(acc, x[t])
        total += out
        np.testing.assert_allclose(total, x[: t + 1].sum(0).max(-1))


def test_inplace_cif_equals_pure_cif():
    rng = np.random.default_rng(3)
    for theta, gamma in ((1.0, 1), (0.37, 1), (1.3, 3)):
        m1 = S1 = torch.zeros(4000, dtype=torch.float64)
        m2, S2 = torch.zeros(4000, dtype=torch.float64), torch.zeros(4000, dtype=torch.float64)
        for t in range(20):
            x = torch.tensor(rng.normal(0, 1, 4000) if t < 8 else np.zeros(4000))
            s1, m1, S1 = neurons.cif_step(m1, S1, x, theta, min(t + 1, 8), gamma)
            v2 = neurons.cif_step_(m2, S2, x, theta, min(t + 1, 8), gamma)
            assert torch.equal(s1 * theta, v2) and torch.equal(m1, m2) and torch.equal(S1, S2)

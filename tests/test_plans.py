"""SPEC §3: plan invariants (exactly N steps, monotone times, counts sum, coarse to fine)."""
import math

import pytest

from rdpm_gddcm.families import Family
from rdpm_gddcm.plans import Plan, PlanConfig, build_plan, largest_remainder, ode_times

FAMS = ["vp-discrete", "vp-continuous", "ve", "flow"]


def test_largest_remainder_sums_exactly():
    for total in [0, 1, 7, 100, 301]:
        c = largest_remainder([1.0, 2.5, 3.3, 0.01, 9.0], total)
        assert sum(c) == total and all(v >= 0 for v in c)
    # the paper's floor(x+0.5) would give 1+1+1 = 3 for three equal weights and N=2
    assert sum(largest_remainder([1, 1, 1], 2)) == 2


@pytest.mark.parametrize("name", FAMS)
@pytest.mark.parametrize("N", [1, 10, 300])
def test_fixed_point_invariants(name, N):
    f = Family(name)
    plan = build_plan(PlanConfig(kind="fixed-point", num_steps=N), f)
    assert len(plan) == N
    Ts = plan.steps[0][0]
    deltas = []
    for t_from, t_den, t_to in plan.steps:
        assert t_from == t_to == Ts                     # p = 0: time never advances
        assert t_den < t_from
        deltas.append(t_from - t_den)
    assert all(a >= b for a, b in zip(deltas, deltas[1:])), "coarse to fine: Δ non-increasing"
    assert sum(plan.config["interval_counts"]) == N
    assert plan.final_times[0] == Ts and plan.final_times[-1] == f.clean_time


def test_fixed_point_vp_discrete_uses_integer_deltas_eq12():
    f = Family("vp-discrete")
    plan = build_plan(PlanConfig(kind="fixed-point", num_steps=300, t_fixed=20, delta_min=1, delta_max=18), f)
    assert plan.config["interval_deltas"] == [float(d) for d in range(18, 0, -1)]
    counts = plan.config["interval_counts"]
    assert counts[-1] > counts[0], "Eq. 13 gives the finest Δ the most steps"
    assert all(float(t).is_integer() for s in plan.steps for t in s)


@pytest.mark.parametrize("name", FAMS)
def test_fixed_point_with_descent(name):
    """--descent-steps M: M contiguous trajectory steps from t_start that end exactly at T_s, then the
    fixed point on the other N - M steps; N steps in all, and M = 0 is Algorithm 2 unchanged."""
    f = Family(name)
    N, M = 40, 6
    plain = build_plan(PlanConfig(kind="fixed-point", num_steps=N), f)
    plan = build_plan(PlanConfig(kind="fixed-point", num_steps=N, descent_steps=M, descent_p=0.35), f)
    assert len(plan) == N and plan.kind == "fixed-point"
    Ts = plain.steps[0][0]
    descent, fixed = plan.steps[:M], plan.steps[M:]
    assert descent[0][0] == f.t_max if not f.discrete else descent[0][0] == f.num_train_timesteps - 1
    for (a, b) in zip(descent, descent[1:]):
        assert b[0] == a[2] and a[1] <= a[2] < a[0]                # contiguous, time advances
    assert descent[-1][2] == Ts
    assert all(t_from == t_to == Ts for t_from, _, t_to in fixed)
    assert sum(plan.config["interval_counts"]) == N - M
    assert plan.final_times == plain.final_times
    assert build_plan(PlanConfig(kind="fixed-point", num_steps=N, descent_steps=0), f).steps == plain.steps


def test_descent_refuses_bad_settings():
    f = Family("vp-discrete")
    for cfg, msg in [(PlanConfig(kind="fixed-point", num_steps=10, descent_steps=10), "at least one step"),
                     (PlanConfig(kind="fixed-point", num_steps=10, descent_steps=3, descent_p=1.0), "descent-p"),
                     (PlanConfig(kind="trajectory", p=0.5, num_steps=10, descent_steps=3), "belongs to --plan fixed-point"),
                     (PlanConfig(kind="fixed-point", num_steps=400, descent_steps=300, t_start=100), "do not fit")]:
        with pytest.raises(ValueError, match=msg):
            build_plan(cfg, f)


@pytest.mark.parametrize("name", FAMS)
@pytest.mark.parametrize("p", [0.25, 0.5, 0.9])
def test_trajectory_invariants(name, p):
    f = Family(name)
    N = 10
    plan = build_plan(PlanConfig(kind="trajectory", num_steps=N, p=p), f)
    assert len(plan) == N
    t_to_prev = None
    for t_from, t_den, t_to in plan.steps:
        assert t_den <= t_to < t_from
        if t_to_prev is not None:
            assert t_from == t_to_prev                    # a trajectory is contiguous
        t_to_prev = t_to
        if t_den != f.clean_time and not f.discrete:
            assert (t_from - t_to) == pytest.approx(p * (t_from - t_den))
    if f.discrete:
        assert all(float(t).is_integer() for s in plan.steps for t in s)


def test_p_one_refused_for_encoding():
    with pytest.raises(ValueError, match="carries no information"):
        build_plan(PlanConfig(kind="trajectory", p=1.0), Family("flow"))
    with pytest.raises(ValueError, match="0 < p < 1"):
        build_plan(PlanConfig(kind="trajectory", p=0.0), Family("flow"))


def test_ddcm_plan_and_coefficients_match_official_formula():
    f = Family("vp-discrete")
    N = 50
    plan = build_plan(PlanConfig(kind="ddcm", num_steps=N), f)
    assert len(plan) == N and plan.steps[0][0] == 999 and plan.steps[-1][0] == 0 and plan.steps[-1][2] == -1
    for (t, _, t_prev), c in zip(plan.steps, plan.coefficients(f)):
        a_t, a_p = float(f.alpha_bar(t)), float(f.alpha_bar(t_prev))
        sigma2 = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
        assert c.s_to == pytest.approx(math.sqrt(a_p))
        assert c.S_den == pytest.approx(math.sqrt(max(1 - a_p - sigma2, 0)), abs=1e-9)
        assert c.noise_scale == pytest.approx(math.sqrt(sigma2), abs=1e-6)


def test_ddcm_requires_vp_discrete():
    with pytest.raises(ValueError, match="vp-discrete"):
        build_plan(PlanConfig(kind="ddcm"), Family("flow"))


def test_plan_json_roundtrip():
    f = Family("ve")
    plan = build_plan(PlanConfig(kind="trajectory", p=0.5, num_steps=7, final_steps=3), f)
    again = Plan.from_json(plan.to_json())
    assert again.steps == plan.steps and again.final_times == plan.final_times


@pytest.mark.parametrize("name", FAMS)
def test_ode_times_descend_to_clean(name):
    f = Family(name)
    ts = ode_times(f, 10)
    assert len(ts) == 11 and ts[-1] == f.clean_time
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_trajectory_vp_discrete_many_steps_fit_integers():
    """ρ=7 spacing crowds 300 steps near t_end; they must still be 300 distinct integer times."""
    f = Family("vp-discrete")
    plan = build_plan(PlanConfig(kind="trajectory", num_steps=300, p=0.5), f)
    t_to = [s[2] for s in plan.steps]
    assert len(plan) == 300 and plan.steps[0][0] == 999 and t_to[-1] == 5
    assert all(a > b for a, b in zip(t_to, t_to[1:]))
    with pytest.raises(ValueError, match="do not fit"):
        build_plan(PlanConfig(kind="trajectory", num_steps=995, p=0.5), f)


def test_fixed_point_eq9_eq10_exact_counts():
    """One setting worked by hand: P=4, Δ_min=0.01, Δ_max=0.16 gives Δ(k) = 0.16·2^-k (Eq. 9); with
    σ_max=2^7 and ρ=7, r(k) ∝ (1+k/4)^7 = 1, 4.77, 17.09, 50.27, whose largest-remainder split of
    N=10 steps is 0, 1, 2, 7 (Eq. 10; the quotas are 0.14, 0.65, 2.34, 6.88)."""
    f = Family("ve")
    plan = build_plan(PlanConfig(kind="fixed-point", num_steps=10, t_fixed=0.2, delta_min=0.01, delta_max=0.16,
                                 intervals=4, sigma_max_r=2.0 ** 7, rho=7.0), f)
    assert plan.config["interval_deltas"] == pytest.approx([0.16, 0.08, 0.04, 0.02], rel=1e-12)
    assert plan.config["interval_counts"] == [0, 1, 2, 7]
    assert [round(0.2 - t_den, 12) for _, t_den, _ in plan.steps] == [0.08] + [0.04] * 2 + [0.02] * 7

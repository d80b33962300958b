"""The policy's invariants and the throughput fit, on plain inputs (no simulator)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from elasticft.policy import Decision, Mode, PolicyInput, ThroughputParams, decide, fit_throughput
from elasticft.policy.availability import expected_remaining_s, outages
from elasticft.policy.decision import ON_DEMAND_FILL_FRACTION, on_demand_size, projected_cost, spot_size
from elasticft.policy.throughput import predict_throughput

HOUR = 3600.0


def usl_points(params: ThroughputParams, sizes: range) -> tuple[tuple[int, float], ...]:
    return tuple((n, predict_throughput(params, n)) for n in sizes)


def job(**changes: object) -> PolicyInput:
    """A 4-worker MinCost job, 10 h of full-speed work left, 14 h to the deadline, idle, no spot."""
    curve = usl_points(ThroughputParams(lam=10.0, sigma=0.05), range(1, 5))
    full_speed = predict_throughput(ThroughputParams(lam=10.0, sigma=0.05), 4)
    base = PolicyInput(
        min_workers=1, max_workers=4, mode=Mode.MIN_COST,
        samples_done=full_speed * 2 * HOUR, samples_left=full_speed * 10 * HOUR,
        seconds_elapsed=2 * HOUR, seconds_left=14 * HOUR, throughput_points=curve,
        spot_price_per_hour=1.0, on_demand_price_per_hour=3.0, spot_available=0,
        current_spot=0, current_on_demand=0, restart_overhead_s=600.0, decision_interval_s=300.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_fit_recovers_a_synthetic_usl_curve() -> None:
    truth = ThroughputParams(lam=12.0, sigma=0.08, kappa=0.002)
    fitted = fit_throughput(usl_points(truth, range(1, 9)))
    for n in (1, 4, 8, 16):
        assert predict_throughput(fitted, n) == pytest.approx(predict_throughput(truth, n), rel=1e-3)


def test_fit_of_noisy_amdahl_measurements_predicts_within_five_percent() -> None:
    truth = ThroughputParams(lam=50.0, sigma=0.1)
    noise = random.Random(3)
    points = [(n, predict_throughput(truth, n) * noise.uniform(0.97, 1.03)) for n in (1, 2, 4, 8) for _ in range(3)]
    fitted = fit_throughput(points)
    assert predict_throughput(fitted, 6) == pytest.approx(predict_throughput(truth, 6), rel=0.05)


def test_one_measured_size_predicts_unseen_sizes_from_the_prior() -> None:
    fitted = fit_throughput([(2, 19.0)], prior=ThroughputParams(lam=1.0, sigma=0.1))
    assert predict_throughput(fitted, 2) == pytest.approx(19.0)
    assert predict_throughput(fitted, 4) == pytest.approx(19.0 / (2 / 1.1) * (4 / 1.3))


def random_input(rng: random.Random) -> PolicyInput:
    min_workers = rng.randint(1, 3)
    max_workers = rng.randint(min_workers, 8)
    spot = rng.randint(0, max_workers)
    on_demand = rng.randint(0, max_workers - spot)
    return job(
        min_workers=min_workers, max_workers=max_workers, mode=rng.choice(list(Mode)),
        samples_left=rng.uniform(0, 1e6), seconds_left=rng.choice([None, rng.uniform(-HOUR, 40 * HOUR)]),
        spot_available=rng.randint(0, 12), current_spot=spot, current_on_demand=on_demand,
        preempted=rng.random() < 0.2, seconds_since_rescale=rng.uniform(0, 2 * HOUR),
        rescale_cooldown_s=rng.choice([0.0, 600.0]), spot_availability_age_s=rng.uniform(0, HOUR),
        max_total_cost=rng.choice([None, rng.uniform(0, 500)]), max_cost_per_hour=rng.choice([None, 5.0]),
        spot_enabled=rng.random() < 0.9, on_demand_enabled=rng.random() < 0.9,
        min_scaling_efficiency=rng.uniform(0, 0.9),
    )


def test_decisions_stay_within_worker_bounds_and_available_spot() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        inp = random_input(rng)
        decision = decide(inp)
        assert decision.workers == 0 or inp.min_workers <= decision.workers <= inp.max_workers, (inp, decision)
        assert decision.spot <= max(inp.spot_available, 0) or (decision.spot, decision.on_demand) == (
            inp.current_spot, inp.current_on_demand), (inp, decision)
        if not inp.spot_enabled:
            assert decision.spot == 0 or decision.spot == inp.current_spot
        if inp.max_cost_per_hour is not None:
            cost = decision.spot * inp.spot_price_per_hour + decision.on_demand * inp.on_demand_price_per_hour
            assert cost <= inp.max_cost_per_hour + 1e-9
        assert decision.reason and "\n" not in decision.reason


def test_idle_job_out_of_slack_goes_to_all_on_demand() -> None:
    # 10 h of work, 10.4 h left: less than the 2d + g + d the safety net keeps
    decision = decide(job(seconds_left=10.4 * HOUR, spot_available=4))
    assert decision == Decision(0, 4, decision.reason)
    assert "safety net" in decision.reason


def test_job_ahead_of_the_pace_line_waits_for_spot_instead_of_paying_on_demand() -> None:
    assert decide(job()).workers == 0


def test_job_behind_the_pace_line_without_spot_runs_on_demand() -> None:
    # idle for the first 2 h: 1 h of slack left against a pace line of 0.75 * (1 - 10/13) * 11 h = 1.9 h
    decision = decide(job(samples_done=0.0, seconds_left=11 * HOUR))
    assert (decision.spot, decision.on_demand) == (0, 4)


def test_partial_spot_capacity_is_used_elastically() -> None:
    decision = decide(job(spot_available=3))
    assert (decision.spot, decision.on_demand) == (3, 0)


def test_no_voluntary_rescale_inside_the_cooldown() -> None:
    running = job(spot_available=4, current_spot=2, spot_availability_age_s=HOUR,
                  seconds_since_rescale=100.0, rescale_cooldown_s=600.0)
    assert (decide(running).spot, decide(running).on_demand) == (2, 0)
    after = dataclasses.replace(running, seconds_since_rescale=700.0)
    assert decide(after).spot == 4


def test_a_preemption_is_answered_even_inside_the_cooldown() -> None:
    preempted = job(spot_available=1, current_spot=1, preempted=True, seconds_since_rescale=10.0,
                    rescale_cooldown_s=600.0)
    assert decide(preempted).spot <= 1


def test_running_spot_generation_is_not_abandoned_for_a_brief_spot_flicker() -> None:
    on_demand = job(current_on_demand=4, spot_available=4, spot_availability_age_s=0.0)
    assert (decide(on_demand).spot, decide(on_demand).on_demand) == (0, 4)


def test_min_time_never_plans_beyond_the_budget() -> None:
    rng = random.Random(5)
    for _ in range(500):
        inp = job(mode=Mode.MIN_TIME, spot_available=rng.randint(0, 4), max_total_cost=rng.uniform(1, 200),
                  cost_so_far=rng.uniform(0, 50))
        decision = decide(inp)
        if decision.workers:
            params = fit_throughput(inp.throughput_points)
            assert inp.max_total_cost is not None
            spend = projected_cost(inp, params, decision.spot, decision.on_demand)
            assert inp.cost_so_far + spend <= inp.max_total_cost + 1e-9


def test_min_time_with_ample_budget_runs_at_full_size() -> None:
    decision = decide(job(mode=Mode.MIN_TIME, spot_available=1))
    assert (decision.spot, decision.on_demand) == (1, 3)


def test_finished_job_releases_every_worker() -> None:
    assert decide(job(samples_left=0.0, current_on_demand=4)).workers == 0


def test_workers_beyond_the_scaling_efficiency_floor_are_not_requested() -> None:
    steep = usl_points(ThroughputParams(lam=10.0, sigma=0.5), range(1, 5))
    decision = decide(job(throughput_points=steep, min_scaling_efficiency=0.5, mode=Mode.MIN_TIME,
                          spot_available=4))
    assert decision.workers < 4


def test_policy_mode_is_the_api_mode() -> None:
    from elasticft.api.models import Mode as ApiMode

    assert Mode is ApiMode


def test_expected_rest_of_an_outage_grows_with_its_age() -> None:
    completed = [600.0, 1200.0, 7200.0, 36000.0]
    # R(0) = (0 + 600 + 1200 + 7200 + 36000) / 5; R(3600) = (3600 + 3600 + 32400) / 3
    assert expected_remaining_s(completed, 0.0) == pytest.approx(45000.0 / 5)
    assert expected_remaining_s(completed, 3600.0) == pytest.approx(39600.0 / 3)
    assert expected_remaining_s(completed, 50000.0) == pytest.approx(50000.0)


def test_outages_are_the_periods_below_min_workers() -> None:
    history = ((0, 100.0), (3, 50.0), (1, 20.0), (0, 30.0), (2, 40.0))
    seen = outages(history, 0, 70.0, min_workers=2)
    assert seen.completed == (100.0, 50.0) and seen.current_age_s == 70.0
    assert outages(history, 2, 10.0, min_workers=2).current_age_s is None


def test_an_outage_expected_to_outlast_the_slack_above_the_line_is_filled_with_on_demand() -> None:
    # ahead of the line (4 h of slack against 2.6 h); past outages all lasted 10 h
    long_outages = ((0, 10 * HOUR), (1, HOUR)) * 3
    waiting = job(spot_history=long_outages, spot_availability_age_s=600.0)
    # filled at the smallest size with W / X(n) <= 0.95 T: 3 workers need 10 h * X(4) / X(3) = 12.7 h <= 13.3 h
    assert (decide(waiting).spot, decide(waiting).on_demand) == (0, 3)
    short_outages = ((0, 600.0), (1, HOUR)) * 3
    assert decide(job(spot_history=short_outages, spot_availability_age_s=300.0)).workers == 0


def test_on_demand_runs_the_smallest_size_that_keeps_the_slack_of_a_cant_be_late_job() -> None:
    curve = usl_points(ThroughputParams(lam=10.0, sigma=0.05), range(1, 9))
    x = {n: predict_throughput(ThroughputParams(lam=10.0, sigma=0.05), n) for n in range(1, 9)}
    # 10 h of work at 4 workers, 14 h left: 4 workers need 10 h <= 0.8 * 14 h, 3 workers do not
    inp = job(max_workers=8, throughput_points=curve, samples_left=x[4] * 10 * HOUR, samples_done=0.0,
              seconds_elapsed=0.0, seconds_left=14 * HOUR, spot_available=0, pace=10.0)
    assert on_demand_size(inp, fit_throughput(curve), 8) == 4
    # far behind a steep pace line, no spot: an elastic job fills with the size that keeps C/R = 0.95
    assert on_demand_size(inp, fit_throughput(curve), 8, ON_DEMAND_FILL_FRACTION) == 3
    decision = decide(inp)
    assert (decision.spot, decision.on_demand) == (0, 3)


def spot_trace_job(history: tuple[tuple[int, float], ...], **changes: object) -> PolicyInput:
    """A 16-worker elastic job just started: 40 h of work at 8 workers, 52 h to the deadline, observed spot."""
    curve = usl_points(ThroughputParams(lam=1.0, sigma=0.05), range(1, 17))
    x8 = predict_throughput(ThroughputParams(lam=1.0, sigma=0.05), 8)
    fields: dict[str, object] = dict(max_workers=16, throughput_points=curve, samples_done=0.0,
                                     samples_left=x8 * 40 * HOUR, seconds_elapsed=0.0, seconds_left=52 * HOUR,
                                     spot_history=history)
    return job(**{**fields, **changes})


#: 16 spot workers obtainable with a 10-minute dip to 14 or 15 every hour
DIPPING = ((16, 50 * 60.0), (14, 600.0), (16, 50 * 60.0), (15, 600.0)) * 3


def test_elastic_spot_runs_the_smallest_size_on_pace_not_every_worker_obtainable() -> None:
    inp = spot_trace_job(DIPPING, spot_available=16, spot_availability_age_s=HOUR)
    size = spot_size(inp, fit_throughput(inp.throughput_points), 16)
    # 40 h at 8 workers within 0.8 * 52 h: 8 workers are on pace (7 are not), and they sit below every dip
    assert size == 8
    assert (decide(inp).spot, decide(inp).on_demand) == (8, 0)


def test_a_running_spot_generation_does_not_chase_more_spot_than_it_needs() -> None:
    running = spot_trace_job(DIPPING, spot_available=16, current_spot=8, spot_availability_age_s=HOUR)
    assert (decide(running).spot, decide(running).on_demand) == (8, 0)


def test_a_dip_below_the_spot_size_is_waited_out_rather_than_re_formed_smaller() -> None:
    dipped = spot_trace_job(DIPPING, spot_available=5, current_spot=8, preempted=True, spot_availability_age_s=0.0)
    assert decide(dipped).workers == 0  # ahead of the pace line: re-forming at 5 and growing back costs two restarts
    back = dataclasses.replace(dipped, spot_available=16, current_spot=0, preempted=False,
                               spot_history=(*DIPPING, (5, 600.0)))
    # back at the spot size (the dip and its restart count against 8, so 9 now keep the pace), not at 16
    assert spot_size(back, fit_throughput(back.throughput_points), 16) == 9
    assert (decide(back).spot, decide(back).on_demand) == (9, 0)


def test_spot_smaller_than_the_spot_size_is_used_when_behind_the_pace_line() -> None:
    behind = spot_trace_job(DIPPING, spot_available=5, spot_availability_age_s=600.0, pace=10.0)
    assert decide(behind).spot == 5


def test_on_demand_is_not_left_for_spot_that_usually_vanishes_within_a_restart() -> None:
    d = 600.0
    flickers = ((0, 3 * HOUR), (16, d)) * 5
    on_demand = spot_trace_job(flickers, current_on_demand=6, spot_available=16, spot_availability_age_s=300.0)
    assert (decide(on_demand).spot, decide(on_demand).on_demand) == (0, 6)
    lasting = ((0, 3 * HOUR), (16, 10 * HOUR)) * 2
    back = dataclasses.replace(on_demand, spot_history=lasting)
    assert decide(back).on_demand == 0 and decide(back).spot > 0


def test_min_cost_with_spot_disabled_and_a_deadline_runs_on_demand_at_the_size_the_deadline_needs() -> None:
    inp = job(spot_enabled=False, spot_available=0)
    decision = decide(inp)
    params = fit_throughput(inp.throughput_points)
    assert (decision.spot, decision.on_demand) == (0, on_demand_size(inp, params, 4))
    assert decision.on_demand >= 1 and "spot disabled" in decision.reason
    running = decide(dataclasses.replace(inp, current_on_demand=decision.on_demand))
    assert (running.spot, running.on_demand) == (0, decision.on_demand)


def test_a_world_that_finishes_with_a_restart_to_spare_is_not_moved_by_the_safety_net() -> None:
    # The last minute of a job on 2 spot workers: 30 s of work at X(2), 80 s left, d = 20 s, g = 10 s. The slack
    # against 4 on-demand is below the 2d + g + d the safety net keeps, but moving there costs a restart (20 s)
    # for work that 2 workers finish in 30 s, and a preemption at any moment would still leave room for it.
    curve = ThroughputParams(lam=10.0, sigma=0.05)
    end = job(samples_left=predict_throughput(curve, 2) * 30, seconds_left=80.0, restart_overhead_s=20.0,
              decision_interval_s=10.0, current_spot=2, spot_available=2)
    decision = decide(end)
    assert decision.size == (2, 0) and "safety net" not in decision.reason
    # Without the room for that restart (50 s left), the net still fires.
    assert "safety net" in decide(dataclasses.replace(end, seconds_left=50.0)).reason

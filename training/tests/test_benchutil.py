"""The speed harnesses' contention guard (tfci_training.benchutil)."""

from tfci_training.benchutil import OtherLoad, median_ms, sample


def test_other_load_is_a_share_of_the_cpus():
    with OtherLoad() as load:
        sum(i * i for i in range(200_000))  # our own work does not count as other load
    assert 0.0 <= load.share <= 1.0
    assert load.seconds > 0


def test_a_contended_sample_is_retried_then_flagged():
    calls = []
    # No share is below -1: every attempt counts as contended.
    result, share, clean = sample(lambda: calls.append(1) or len(calls), max_other=-1.0)
    assert (result, clean, len(calls)) == (3, False, 3)
    assert share >= 0.0
    calls.clear()
    result, _, clean = sample(lambda: calls.append(1) or len(calls), max_other=1.0)
    assert (result, clean, len(calls)) == (1, True, 1)


def test_median_ms_skips_the_warmup():
    calls = []
    ms = median_ms(lambda: calls.append(1), warmup=2, runs=3)
    assert len(calls) == 5 and ms >= 0.0


def test_bench_ab_summary_is_medians_and_their_ratio():
    from tfci_training.bench_ab import summary

    s = summary([10.0, 30.0, 20.0], [15.0, 45.0, 30.0, 60.0])
    assert (s["a_ms"], s["b_ms"]) == (20.0, 37.5)
    assert s["a_range"] == [10.0, 30.0] and s["b_range"] == [15.0, 60.0]
    assert s["b_over_a"] == 1.875 and s["samples"] == [3, 4]

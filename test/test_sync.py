"""Tests for stereo_semantic_ros.sync: message_filters semantics plus drop accounting."""

from __future__ import annotations

import random
import sys
import threading

import pytest
from sync_streams import (
    MS,
    RESET,
    Msg,
    Recorder,
    ReferenceMessageFilters,
    assert_every_message_accounted,
    feed,
    messy_stream,
    random_stream,
)

from stereo_semantic_ros.sync import (
    MESSAGE_DROP_REASONS,
    ExternalMatcherSynchronizer,
    Synchronizer,
)

# -- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_inputs": 1}, "num_inputs"),
        ({"queue_size": 0}, "queue_size"),
        ({"slop": -0.1, "approximate": True}, "slop"),
        ({"slop": float("nan"), "approximate": True}, "slop"),
        ({"slop": "fast", "approximate": True}, "slop"),
        ({"slop": 0.0, "approximate": True}, "slop > 0"),
    ],
)
def test_bad_arguments_are_refused_with_the_parameter_named(kwargs, match):
    args = {"num_inputs": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        Synchronizer(args.pop("num_inputs"), lambda *m: None, **args)


def test_bad_index_or_stamp_is_refused():
    sync = Recorder().make()
    with pytest.raises(ValueError, match="index"):
        sync.add(2, Msg(2, 0), 0)
    with pytest.raises(ValueError, match="nanoseconds"):
        sync.add(0, Msg(0, 0), 1.5)


def test_exact_mode_ignores_slop():
    # slop only matters in approximate mode; exact mode accepts any slop (even 0) and ignores it.
    rec = Recorder()
    sync = rec.make(slop=1.0)
    feed(sync, Msg(0, 100 * MS), Msg(1, 100 * MS + 1))
    assert rec.sets == []


# -- exact -------------------------------------------------------------------------------------


def test_exact_emits_only_identical_stamps():
    rec = Recorder()
    sync = rec.make(queue_size=5)
    a0, b0 = Msg(0, 100 * MS), Msg(1, 100 * MS)
    a1, b1 = Msg(0, 200 * MS), Msg(1, 200 * MS + 1)
    feed(sync, a0, a1, b1)
    assert rec.sets == []
    feed(sync, b0)
    assert rec.sets == [(a0, b0)]
    b1_exact = Msg(1, 200 * MS)
    feed(sync, b1_exact)
    assert rec.sets == [(a0, b0), (a1, b1_exact)]
    assert sync.stats["emitted"] == 2


def test_callback_gets_messages_in_input_order():
    rec = Recorder()
    sync = rec.make(3)
    c, a, b = Msg(2, 5), Msg(0, 5), Msg(1, 5)
    feed(sync, c, a, b)
    assert rec.sets == [(a, b, c)]


# -- approximate -------------------------------------------------------------------------------


def test_approximate_pairs_within_slop_and_not_outside():
    rec = Recorder()
    sync = rec.make(approximate=True, slop=0.010, queue_size=5)
    a0, b0 = Msg(0, 100 * MS), Msg(1, 109 * MS)
    feed(sync, a0, b0)
    assert rec.sets == [(a0, b0)]
    a1, b1 = Msg(0, 200 * MS), Msg(1, 211 * MS)
    feed(sync, a1, b1)
    assert rec.sets == [(a0, b0)]


def test_approximate_spread_must_be_strictly_below_slop_like_message_filters():
    rec = Recorder()
    sync = rec.make(approximate=True, slop=0.010)
    feed(sync, Msg(0, 100 * MS), Msg(1, 110 * MS))
    assert rec.sets == []


def test_approximate_picks_the_closest_candidate():
    rec = Recorder()
    sync = rec.make(approximate=True, slop=0.050, queue_size=5)
    far, near = Msg(0, 100 * MS), Msg(0, 130 * MS)
    b = Msg(1, 120 * MS)
    feed(sync, far, near, b)
    assert rec.sets == [(near, b)]
    # `far` is now older than the emitted set and can never be part of a newer one.
    assert rec.drops == [(0, far, "superseded")]


def test_approximate_closest_per_input_with_three_inputs():
    rec = Recorder()
    sync = rec.make(3, approximate=True, slop=0.020, queue_size=5)
    a_far, a_near = Msg(0, 85 * MS), Msg(0, 99 * MS)
    b_far, b_near = Msg(1, 112 * MS), Msg(1, 101 * MS)
    c = Msg(2, 100 * MS)
    feed(sync, a_far, a_near, b_far, b_near, c)
    assert rec.sets == [(a_near, b_near, c)]


# -- drop accounting ---------------------------------------------------------------------------


@pytest.mark.parametrize("approximate", [False, True])
def test_queue_overflow_evicts_the_oldest_and_reports_it(approximate):
    rec = Recorder()
    sync = rec.make(queue_size=2, approximate=approximate, slop=0.001)
    lefts = [Msg(0, k * 100 * MS) for k in range(4)]
    feed(sync, *lefts)
    assert rec.drops == [(0, lefts[0], "queue_overflow"), (0, lefts[1], "queue_overflow")]
    right = Msg(1, 300 * MS)
    feed(sync, right)
    assert rec.sets == [(lefts[3], right)]
    assert rec.drops[2:] == [(0, lefts[2], "superseded")]
    assert sync.stats["dropped_queue_overflow"] == 2


def test_new_message_older_than_a_full_queue_is_itself_evicted():
    rec = Recorder()
    sync = rec.make(queue_size=2)
    q = [Msg(0, 200 * MS), Msg(0, 300 * MS)]
    old = Msg(0, 100 * MS)
    feed(sync, *q, Msg(1, 100 * MS), old)  # partner present, but `old` cannot be kept
    assert rec.sets == []
    assert rec.drops == [(0, old, "queue_overflow")]


@pytest.mark.parametrize("approximate", [False, True])
def test_frame_without_partner_is_reported_when_the_next_set_completes(approximate):
    rec = Recorder()
    sync = rec.make(queue_size=10, approximate=approximate, slop=0.005)
    lonely = Msg(0, 100 * MS)
    a, b = Msg(0, 200 * MS), Msg(1, 200 * MS)
    feed(sync, lonely, a)
    assert rec.drops == []
    feed(sync, b)
    assert rec.sets == [(a, b)]
    assert rec.drops == [(0, lonely, "superseded")]


def test_duplicate_stamp_replaces_and_reports_the_first():
    rec = Recorder()
    sync = rec.make()
    first, second = Msg(0, 100 * MS, "first"), Msg(0, 100 * MS, "second")
    b = Msg(1, 100 * MS)
    feed(sync, first, second, b)
    assert rec.drops == [(0, first, "duplicate_stamp")]
    assert rec.sets == [(second, b)]


@pytest.mark.parametrize("approximate", [False, True])
def test_stamps_older_than_the_last_set_are_stale(approximate):
    rec = Recorder()
    sync = rec.make(queue_size=5, approximate=approximate, slop=0.005)
    a1, b1 = Msg(0, 200 * MS), Msg(1, 200 * MS)
    feed(sync, a1, b1)
    late_a, late_b = Msg(0, 100 * MS), Msg(1, 100 * MS)
    feed(sync, late_a, late_b)
    assert rec.sets == [(a1, b1)]
    assert rec.drops == [(0, late_a, "stale"), (1, late_b, "stale")]
    a2, b2 = Msg(0, 300 * MS), Msg(1, 300 * MS)
    feed(sync, b2, a2)
    assert rec.sets == [(a1, b1), (a2, b2)]
    assert sync.stats["dropped_stale"] == 2


def test_stamp_equal_to_the_oldest_of_the_last_set_is_not_stale():
    rec = Recorder()
    sync = rec.make(queue_size=5, approximate=True, slop=0.010)
    a0, b0 = Msg(0, 100 * MS), Msg(1, 105 * MS)
    feed(sync, a0, b0)
    b1, a1 = Msg(1, 100 * MS), Msg(0, 101 * MS)  # not older than a0: may still form a set
    feed(sync, b1, a1)
    assert rec.sets == [(a0, b0), (a1, b1)]
    assert rec.drops == []


def test_without_newest_wins_late_sets_still_match_like_message_filters():
    rec = Recorder()
    sync = rec.make(queue_size=5, newest_wins=False)
    a0, a1, b1, b0 = Msg(0, 100), Msg(0, 200), Msg(1, 200), Msg(1, 100)
    feed(sync, a0, a1, b1, b0)
    assert rec.sets == [(a1, b1), (a0, b0)]
    assert rec.drops == []


@pytest.mark.parametrize("approximate", [False, True])
def test_four_inputs_missing_camera_info_for_one_frame(approximate):
    """left image, right image, left info, right info; frame k has no camera_info."""
    rec = Recorder()
    sync = rec.make(4, queue_size=5, approximate=approximate, slop=0.003)

    def frame(k: int, inputs=(0, 1, 2, 3)) -> list[Msg]:
        # images of one frame share a stamp; approximate mode gets a little per-input jitter
        return [Msg(i, k * 50 * MS + (i * 500_000 if approximate else 0)) for i in inputs]

    f0 = frame(0)
    feed(sync, *f0)
    assert rec.sets == [tuple(f0)]
    images_k = frame(1, inputs=(0, 1))
    feed(sync, *images_k)
    assert rec.drops == []
    f2 = frame(2)
    feed(sync, *f2)
    assert rec.sets == [tuple(f0), tuple(f2)]
    assert rec.drops == [(0, images_k[0], "superseded"), (1, images_k[1], "superseded")]
    stats = sync.stats
    assert [stats[f"received_{i}"] for i in range(4)] == [3, 3, 2, 2]
    assert stats["dropped_superseded"] == 2


def test_reset_reports_pending_and_forgets_the_last_set():
    rec = Recorder()
    sync = rec.make(queue_size=5)
    feed(sync, Msg(0, 500), Msg(1, 500))
    pending = Msg(0, 600)
    feed(sync, pending)
    sync.reset()
    assert rec.drops == [(0, pending, "reset")]
    # after a backwards time jump the old stamps are no longer "stale"
    a, b = Msg(0, 10), Msg(1, 10)
    feed(sync, a, b)
    assert rec.sets[-1] == (a, b)
    stats = sync.stats
    assert stats["dropped_reset"] == 1
    assert stats["dropped_stale"] == 0
    assert stats["emitted"] == 2


def test_stats_lists_every_counter():
    sync = Recorder().make(3)
    assert set(sync.stats) == {"received_0", "received_1", "received_2", "emitted"} | {
        f"dropped_{r}" for r in MESSAGE_DROP_REASONS
    }


# -- concurrency -------------------------------------------------------------------------------


@pytest.mark.parametrize("approximate", [False, True])
def test_two_threads_interleaved_every_set_emitted_exactly_once(approximate):
    n = 2000
    rec = Recorder()
    sync = rec.make(queue_size=n, approximate=approximate, slop=0.004)
    rng = random.Random(1)
    jitter = [rng.randrange(0, 3 * MS) if approximate else 0 for _ in range(n)]
    streams = [
        [Msg(0, k * 33 * MS) for k in range(n)],
        [Msg(1, k * 33 * MS + jitter[k]) for k in range(n)],
    ]
    barrier = threading.Barrier(2)

    def run(stream):
        barrier.wait()
        for m in stream:
            sync.add(m.input, m, m.stamp)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force frequent thread switches
    try:
        threads = [threading.Thread(target=run, args=(s,)) for s in streams]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
    assert rec.sets == list(zip(*streams, strict=True))
    assert rec.drops == []
    assert sync.stats["emitted"] == n


# -- against message_filters' algorithm --------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("approximate", [False, True])
def test_same_sets_as_message_filters_for_shuffled_streams(seed, approximate):
    """newest_wins=False is message_filters, whatever the arrival order."""
    rng = random.Random(seed)
    n_inputs = rng.choice([2, 3, 4])
    queue_size = rng.choice([1, 2, 3, 5])
    slop = 0.030
    jitter = 12 * MS if approximate else 0
    stream = random_stream(rng, n_inputs, 30, jitter, p_missing=0.15)
    # local shuffle: messages arrive up to a few positions out of order
    order = sorted(range(len(stream)), key=lambda j: j + rng.uniform(0, 6))
    stream = [stream[j] for j in order]

    ref = ReferenceMessageFilters(n_inputs, queue_size, round(slop * 1e9) if approximate else None)
    rec = Recorder()
    sync = rec.make(
        n_inputs, queue_size=queue_size, slop=slop, approximate=approximate, newest_wins=False
    )
    for m in stream:
        ref.add(m.input, m, m.stamp)
        sync.add(m.input, m, m.stamp)
    assert rec.sets == ref.out
    assert len(ref.out) > 0


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("approximate", [False, True])
def test_same_sets_as_message_filters_and_every_message_accounted(seed, approximate):
    """In-order frames (inputs shuffled within a frame), missing messages, slop < frame gap / 2.

    Here newest-wins drops only messages message_filters would never emit, so the sets are equal;
    and every received message is either in exactly one set or reported once.
    """
    rng = random.Random(100 + seed)
    n_inputs = rng.choice([2, 3, 4])
    queue_size = rng.choice([2, 3, 5])
    slop = 0.015
    jitter = 4 * MS if approximate else 0
    frames = 25
    stream = []
    for k in range(frames):
        frame = random_stream(rng, n_inputs, 1, jitter, p_missing=0.2)
        frame = [Msg(m.input, m.stamp + k * 40 * MS) for m in frame]
        rng.shuffle(frame)
        stream += frame

    ref = ReferenceMessageFilters(n_inputs, queue_size, round(slop * 1e9) if approximate else None)
    rec = Recorder()
    sync = rec.make(n_inputs, queue_size=queue_size, slop=slop, approximate=approximate)
    for m in stream:
        ref.add(m.input, m, m.stamp)
        sync.add(m.input, m, m.stamp)
    assert rec.sets == ref.out
    assert len(ref.out) > 0

    sync.reset()
    emitted = [m for s in rec.sets for m in s]
    dropped = [m for _, m, _ in rec.drops]
    assert sorted(emitted + dropped, key=lambda m: (m.stamp, m.input)) == sorted(
        stream, key=lambda m: (m.stamp, m.input)
    )
    assert all(i == m.input for i, m, _ in rec.drops)
    stats = sync.stats
    assert sum(stats[f"received_{i}"] for i in range(n_inputs)) == len(stream)
    assert sum(stats[f"dropped_{r}"] for r in MESSAGE_DROP_REASONS) == len(rec.drops)
    assert stats["emitted"] == len(rec.sets)


# -- the accounting around an outside matcher (the message_filters path) ------------------------


def _reference_matcher(n_inputs, queue_size, slop, approximate):
    slop_ns = round(slop * 1e9) if approximate else None
    return lambda on_matched: ReferenceMessageFilters(n_inputs, queue_size, slop_ns, on_matched)


@pytest.mark.parametrize("approximate", [False, True])
def test_ledger_around_message_filters_rules_is_the_builtin_synchroniser(approximate):
    """Same sets, same drops (input, message, reason, order) and same counters as Synchronizer,
    on streams with gaps, reordering, repeated stamps, stragglers and a reset; every drop
    reason occurs somewhere in the 40 streams."""
    reasons_seen = set()
    for seed in range(40):
        rng = random.Random(300 + seed)
        n_inputs = rng.choice([2, 3, 4])
        queue_size = rng.choice([1, 2, 3, 5])
        slop = 0.015
        stream = messy_stream(rng, n_inputs, 30, 6 * MS if approximate else 0)

        builtin = Recorder()
        reference = builtin.make(
            n_inputs, queue_size=queue_size, slop=slop, approximate=approximate
        )
        ledger_rec = Recorder()
        ledger, matcher = ledger_rec.make_external(
            n_inputs,
            _reference_matcher(n_inputs, queue_size, slop, approximate),
            queue_size=queue_size,
        )
        for m in stream:
            feed(reference, m)
            feed(ledger, m)
            # the matcher never holds a message the ledger has let go, nor the other way round
            assert [set(q) for q in matcher.queues] == [set(q) for q in ledger._queues], seed
        assert ledger_rec.sets == builtin.sets, seed
        assert ledger_rec.drops == builtin.drops, seed
        assert len(builtin.sets) > 0, seed
        assert ledger.stats == {**reference.stats, "mirror_misses": 0}, seed
        assert_every_message_accounted(stream, ledger_rec, ledger)
        reasons_seen |= {r for _, _, r in builtin.drops}
    assert reasons_seen == set(MESSAGE_DROP_REASONS)


@pytest.mark.parametrize("approximate", [False, True])
def test_ledger_reports_what_the_matcher_drops_silently(approximate):
    """An unpaired left image: message_filters keeps it until it is evicted and says nothing;
    the ledger reports it as soon as a newer set forms, and takes it out of the matcher."""
    rec = Recorder()
    sync, matcher = rec.make_external(2, _reference_matcher(2, 5, 0.005, approximate), queue_size=5)
    lonely, a, b = Msg(0, 100 * MS), Msg(0, 200 * MS), Msg(1, 200 * MS)
    feed(sync, lonely, a, b)
    assert rec.sets == [(a, b)]
    assert rec.drops == [(0, lonely, "superseded")]
    assert matcher.queues == [{}, {}]
    late = Msg(1, 100 * MS)  # its partner, too late: never offered to the matcher
    feed(sync, late)
    assert rec.drops[-1] == (1, late, "stale")
    assert matcher.queues == [{}, {}]


def test_ledger_reset_empties_the_matcher_and_reports_each_message():
    rec = Recorder()
    sync, matcher = rec.make_external(2, _reference_matcher(2, 5, 0.0, False), queue_size=5)
    pending = [Msg(0, 100 * MS), Msg(0, 200 * MS), Msg(1, 300 * MS)]
    feed(sync, *pending, RESET)
    assert matcher.queues == [{}, {}]
    assert [(i, m, r) for i, m, r in rec.drops] == [(m.input, m, "reset") for m in pending]
    a, b = Msg(0, 10 * MS), Msg(1, 10 * MS)  # after a jump back: not stale
    feed(sync, a, b)
    assert rec.sets == [(a, b)]


def test_a_set_the_mirror_did_not_foresee_is_still_emitted_and_counted():
    """A matcher that hands back messages it was never offered (a message_filters whose rules
    differ): nothing is lost, and stats["mirror_misses"] says the mirror went wrong."""

    class Copier:
        def __init__(self, on_matched):
            self.on_matched = on_matched

        def offer(self, index, msg):
            if index == 1:
                self.on_matched(Msg(0, msg.stamp, "copy"), msg)

        def release(self, index, stamp):
            pass

    rec = Recorder()
    sync, _ = rec.make_external(2, Copier, queue_size=5)
    b = Msg(1, 100 * MS)
    feed(sync, b)
    assert rec.sets == [(Msg(0, 100 * MS, "copy"), b)]
    assert sync.stats["mirror_misses"] == 1
    assert sync.stats["emitted"] == 1


def test_ledger_refuses_a_matcher_without_offer_or_release():
    with pytest.raises(ValueError, match="offer and release must be callable"):
        ExternalMatcherSynchronizer(2, print, offer=None, release=print)

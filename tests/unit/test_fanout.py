"""Fan-out order: a task that reads another task's champion waits for that task's run."""

from flows.fanout import upstream


def test_tasks_that_read_a_champion_name_it_as_upstream():
    assert upstream("transfer_learning", "quick") == {"image_classification"}
    assert upstream("object_tracking", "quick") == {"object_detection"}
    assert upstream("image_classification", "quick") == set()


def test_the_smoke_profile_reads_no_champion():
    assert upstream("transfer_learning", "smoke") == set()

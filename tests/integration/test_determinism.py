"""Same data version, params and seed on CPU give identical weights and metrics."""

from flows import steps
from tasks_lib.core.bundle import load_bundle
from tasks_lib.core.registry import get_task


def test_training_twice_is_bit_identical(settings, digits_smoke_dir):
    p = steps.plan(settings, "image_classification", "smoke")
    a = steps.train(settings, p, digits_smoke_dir)
    b = steps.train(settings, p, digits_smoke_dir)
    assert a.weights_sha256 == b.weights_sha256
    task = get_task("image_classification")
    data = task.load(digits_smoke_dir)
    ma = task.evaluate(load_bundle(a.bundle_dir).module, data)
    mb = task.evaluate(load_bundle(b.bundle_dir).module, data)
    assert ma == mb

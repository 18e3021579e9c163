"""Real training on rendered figures: the heatmap network beats the mean pose placed at the box."""

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task


def test_heatmaps_locate_joints_better_than_the_mean_pose(tmp_path):
    task = get_task("pose_estimation")
    dcfg, cfg = task.configs("smoke", data_overrides={"n_images": 600}, train_overrides={"epochs": 6, "width": 12})
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    m = task.evaluate(model, data, "test")
    base = task.baseline(data, "test")
    assert m["pck_0.2"] > base["pck_0.2"] + 0.1, (m["pck_0.2"], base["pck_0.2"])
    assert m["pck_0.1"] > base["pck_0.1"] + 0.1, (m["pck_0.1"], base["pck_0.1"])

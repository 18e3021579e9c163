"""The shared renderers: deterministic, figures inside the frame, motion visible, no single-frame cue."""

import numpy as np

from tasks_lib.core.render import JOINTS, MOTIONS, figure_joints, motion_clip, motion_params, pose_sample


def test_motion_clips_are_deterministic_and_move():
    a, area = motion_clip("right", np.random.default_rng(3), 8, 32)
    b, _ = motion_clip("right", np.random.default_rng(3), 8, 32)
    assert a.shape == (8, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(np.diff(a.astype(int), axis=0)).mean() > 0.1  # frames differ
    assert (area > 4).all()


def test_motion_parameters_follow_the_class():
    rng = np.random.default_rng(0)
    right = np.array(motion_params("right", rng, 8, 32))
    up = np.array(motion_params("up", rng, 8, 32))
    cw = np.array(motion_params("rotate_cw", rng, 8, 32))
    shrink = np.array(motion_params("shrink", rng, 8, 32))
    assert (np.diff(right[:, 0]) > 0).all() and np.allclose(np.diff(right[:, 1]), 0)
    assert (np.diff(up[:, 1]) < 0).all()
    assert (np.diff(cw[:, 2]) > 0).all() and np.allclose(np.diff(cw[:, 0]), 0)
    assert (np.diff(shrink[:, 3]) < 0).all()


def test_middle_frame_state_does_not_depend_on_the_class():
    """Position, size and angle at the middle frame come from one distribution for all motions."""
    mids = {}
    for m in MOTIONS:
        rng = np.random.default_rng(1)
        mids[m] = np.array([motion_params(m, rng, 9, 32)[4] for _ in range(200)])
    ref = mids["right"].mean(0)
    for m in MOTIONS:
        assert np.allclose(mids[m].mean(0)[[0, 1, 3]], ref[[0, 1, 3]], atol=0.01)


def test_figure_joints_have_sensible_anatomy():
    j = figure_joints({"r_arm": 0.0, "l_arm": np.pi})  # right arm down, left arm straight up
    assert j["head"][1] < j["neck"][1] < j["pelvis"][1] < j["r_knee"][1] < j["r_ankle"][1]  # y grows down
    assert j["r_shoulder"][0] < j["neck"][0] < j["l_shoulder"][0]  # figure's right on the image's left
    assert j["r_wrist"][1] > j["r_shoulder"][1] and j["l_wrist"][1] < j["l_shoulder"][1]


def test_pose_samples_keep_every_joint_inside_the_image():
    rng = np.random.default_rng(0)
    for _ in range(30):
        img, xy, box = pose_sample(rng, 48)
        assert img.shape == (48, 48, 3) and xy.shape == (len(JOINTS), 2)
        assert (xy >= 0).all() and (xy <= 48).all()
        assert (box[2:] > box[:2]).all()
        assert (xy >= box[:2] - 1e-6).all() and (xy <= box[2:] + 1e-6).all()


def test_action_clips_keep_the_figure_inside_and_raise_is_lower_reversed():
    from tasks_lib.core.render import ACTIONS, action_clip, action_poses

    rng = np.random.default_rng(0)
    for action in ACTIONS:
        clip, joints, area = action_clip(action, rng, 8, 32)
        assert clip.shape == (8, 32, 32, 3) and joints.shape == (8, 14, 2)
        assert (joints >= 0).all() and (joints <= 32).all() and (area > 0).all()
        assert np.abs(np.diff(clip.astype(int), axis=0)).mean() > 0.05, action  # something moves
    up = [p["r_arm"] for p, _, _ in action_poses("raise_arms", np.random.default_rng(1), 8)]
    down = [p["r_arm"] for p, _, _ in action_poses("lower_arms", np.random.default_rng(1), 8)]
    assert (np.diff(up) > 0).all() and np.allclose(up, down[::-1])

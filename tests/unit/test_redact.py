"""Credentials in a data URL never reach a record."""

import json

from flows.redact import redact, redact_all
from flows.steps import Plan, plan_tags

SECRET_URL = "https://alice:s3cr3t-token@data.example.com/sets/cifar.tar.gz?X-Amz-Signature=abcdef&X-Amz-Expires=60"


def test_redact_user_info_and_query():
    assert redact(SECRET_URL) == "https://***@data.example.com/sets/cifar.tar.gz?***"
    assert redact("/plain/local/path") == "/plain/local/path"
    assert redact("s3://bucket/key") == "s3://bucket/key"
    assert redact(3) == 3
    assert redact_all({"path": SECRET_URL, "seed": 0})["seed"] == 0


def test_run_tags_and_model_card_hold_no_credentials():
    p = Plan("image_classification", "smoke", {"source": "cifar10", "path": SECRET_URL}, {"seed": 0})
    tags = plan_tags(p)
    text = json.dumps(tags)
    assert "s3cr3t" not in text and "abcdef" not in text and "data.example.com" in text

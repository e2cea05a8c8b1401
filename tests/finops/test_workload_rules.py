"""finops.toml [[workload_rules]]: validation, overriding the defaults, gateway requests, coverage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import ibis
import polars as pl
import pytest

from finops.analyses.classify import RULES, classify, classify_requests, rules_for, rules_from_config
from finops.analyses.spend import classification_coverage, workload_split
from finops.config import parse_config
from finops.exceptions import ConfigError
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

EC2 = {"ProviderName": "AWS", "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute"}
SAGEMAKER = {"ProviderName": "AWS", "ServiceName": "Amazon SageMaker", "ServiceCategory": "AI and Machine Learning"}
VERTEX = {"ProviderName": "Google Cloud", "ServiceName": "Vertex AI", "ServiceCategory": "AI and Machine Learning"}

RULES_TOML = """\
[company]
name = "T"

[[workload_rules]]
id = "gpu-cluster"
workload = "inference"
description = "the shared GPU cluster serves the product"
resource = "gpu-cluster"

[[workload_rules]]
id = "research-gpus"
workload = "training"
service = "elastic compute cloud"
tags = { Team = "^research$" }

[[workload_rules]]
id = "etl-boxes"
workload = "non-AI"
provider = "^aws$"
usage_type = "Processing"
sku = "USE1-Processing"
"""


def _classify(rows: list[dict], rules, tmp_path) -> list[tuple[str, str, str]]:
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=5)
    insert_charges(wh, rows)
    with wh.ibis() as con:
        out = classify(con.table("charges"), rules).select("ResourceName", "workload", "workload_rule").to_polars()
    return sorted(out.rows())


def test_a_user_rule_overrides_a_default_and_keeps_its_id(tmp_path):
    config = parse_config(RULES_TOML)
    rows = [
        charge(ResourceName="a", ResourceId="arn:aws:ec2:i-1/gpu-cluster-node-1", SkuId="BoxUsage:p4d.24xlarge", **EC2),
        charge(ResourceName="b", SkuId="BoxUsage:g5.xlarge", Tags={"team": "Research"}, **EC2),
        charge(ResourceName="c", SkuId="BoxUsage:g5.xlarge", Tags={"team": "research-2"}, **EC2),
        charge(ResourceName="d", SkuId="USE1-Processing:ml.m5.xlarge", **SAGEMAKER),
        charge(ResourceName="e", SkuId="USE1-Host:ml.g5.xlarge", **SAGEMAKER),
    ]
    defaults = _classify(rows, RULES, tmp_path / "1")
    assert defaults == [
        ("a", "other AI", "aws.ec2.gpu"),
        ("b", "other AI", "aws.ec2.gpu"),
        ("c", "other AI", "aws.ec2.gpu"),
        ("d", "other AI", "aws.sagemaker.processing"),
        ("e", "inference", "aws.sagemaker.hosting"),
    ]
    with_user = _classify(rows, rules_for(config), tmp_path / "2")
    assert with_user == [
        ("a", "inference", "user.gpu-cluster"),  # resource regex, anywhere in ResourceId
        ("b", "training", "user.research-gpus"),  # tag key in any case, value regex anchored
        ("c", "other AI", "aws.ec2.gpu"),  # ^research$ does not match research-2
        ("d", "non-AI", "user.etl-boxes"),  # provider AND usage_type AND sku
        ("e", "inference", "aws.sagemaker.hosting"),  # no user rule matches: the default decides
    ]


def test_rules_from_config_in_file_order_with_prefix():
    rules = rules_from_config(parse_config(RULES_TOML))
    assert [(r.id, r.workload) for r in rules] == [
        ("user.gpu-cluster", "inference"),
        ("user.research-gpus", "training"),
        ("user.etl-boxes", "non-AI"),
    ]
    assert rules[0].description == "the shared GPU cluster serves the product"
    assert rules_from_config(parse_config("")) == []
    assert rules_for(None) == RULES


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('id = "x"\nworkload = "inferance"\nresource = "a"', 'cfg.toml:4: workload_rules[0].workload: must be one of'),
        ('id = "x"\nworkload = "inferance"\nresource = "a"', "did you mean 'inference'?"),
        ('id = "x"\nworkload = "training"\nresorce = "a"', "cfg.toml:5: workload_rules[0].resorce: unknown key (did you mean 'resource'?)"),
        ('id = "x"\nworkload = "training"\nsku = "ml(p4"', "cfg.toml:5: workload_rules[0].sku: not a valid regular expression"),
        ('id = "x"\nworkload = "training"\nsku = "ml\\\\.p4"', "cfg.toml:5: workload_rules[0].sku: pattern 'ml\\\\.p4' uses a backslash"),
        ('id = "x"\nworkload = "training"\nsku = "p4(?=d)"', "cfg.toml:5: workload_rules[0].sku: pattern 'p4(?=d)' uses a backslash or a look-around"),
        ('id = "x"\nworkload = "training"\ntags = { team = "(" }', "cfg.toml:5: workload_rules[0].tags.team: not a valid regular expression"),
        ('id = "x"\nworkload = "training"\ntags = "team"', "cfg.toml:5: workload_rules[0].tags: expected a table"),
        ('id = "x"\nworkload = "training"', "cfg.toml:2: workload_rules[0]: needs at least one match key"),
        ('workload = "training"\nsku = "a"', "cfg.toml:2: workload_rules[0].id: is required"),
        ('id = "a b"\nworkload = "training"\nsku = "a"', "cfg.toml:3: workload_rules[0].id: use letters"),
    ],
)
def test_validation_names_file_line_and_key(tmp_path, body, message):
    text = "# rules\n[[workload_rules]]\n" + body + "\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "cfg.toml")
    assert message in str(err.value).replace(str(tmp_path) + "/", "")


def test_duplicate_rule_id_names_the_second_one(tmp_path):
    text = '[[workload_rules]]\nid = "x"\nworkload = "training"\nsku = "a"\n\n[[workload_rules]]\nid = "x"\nworkload = "inference"\nsku = "b"\n'
    with pytest.raises(ConfigError, match=r"cfg.toml:7: workload_rules\[1\].id: rule id 'x' is used twice"):
        parse_config(text, tmp_path / "cfg.toml")


def test_classify_requests():
    requests = ibis.memtable(
        pl.DataFrame(
            {
                "call_type": ["acompletion", "aembedding", None, "cost", "cost", "fine_tuning_job", "chat"],
                "tags": [None, ["x"], None, ["line_item:web search"], ["line_item:gpt-4o fine-tuning training"], None, []],
            }
        )
    )
    out = classify_requests(requests).select("call_type", "workload", "workload_rule").to_polars().rows()
    assert out == [
        ("acompletion", "inference", "gateway.inference"),
        ("aembedding", "inference", "gateway.inference"),
        (None, "inference", "gateway.inference"),
        ("cost", "inference", "gateway.cost-line.inference"),
        ("cost", "training", "gateway.cost-line.training"),
        ("fine_tuning_job", "training", "gateway.fine-tuning"),
        ("chat", "inference", "gateway.inference"),
    ]


@pytest.fixture
def coverage_warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout=5)
    insert_charges(
        wh,
        [
            # aws: 100.00 specific (hosting), 30.25 fallback (sagemaker other), 50.50 fallback (ec2 gpu),
            # 999 non-AI (not counted), 7 in August (outside the range).
            charge(cost="100.00", SkuId="USE1-Host:ml.g5.xlarge", x_Source="aws", **SAGEMAKER),
            charge(cost="30.25", SkuId="USE1-ML:VolumeUsage.gp2", x_Source="aws", **SAGEMAKER),
            charge(cost="50.50", SkuId="BoxUsage:g5.xlarge", ResourceId="gpu-cluster-1", x_Source="aws", **EC2),
            charge(cost="999", SkuId="BoxUsage:m5.large", x_Source="aws", **EC2),
            charge(cost="7", day="2026-08-02", SkuId="USE1-Host:ml.g5.xlarge", x_Source="aws", **SAGEMAKER),
            # gcp: 40 specific (prediction), 10 fallback (vertex other).
            charge(cost="40", SkuId="Online prediction", ChargeDescription="Online prediction", x_Source="gcp", **VERTEX),
            charge(cost="10", ChargeDescription="Vector Search index serving", x_Source="gcp", **VERTEX),
        ],
    )
    return wh


def test_classification_coverage_hand_computed(coverage_warehouse):
    config = parse_config("")
    out = classification_coverage(coverage_warehouse, config, date(2026, 7, 1), date(2026, 8, 1))
    assert out.select("x_Source", "ai_cost", "specific_cost", "fallback_cost", "fallback_rules").rows() == [
        ("aws", Decimal("180.75"), Decimal("100.00"), Decimal("80.75"), ["aws.ec2.gpu", "aws.sagemaker.other"]),
        ("gcp", Decimal("50"), Decimal("40"), Decimal("10"), ["gcp.vertex.other"]),
    ]
    assert out["specific_share"].to_list() == pytest.approx([100 / 180.75, 0.8])
    assert out["fallback_share"].to_list() == pytest.approx([80.75 / 180.75, 0.2])


def test_a_user_rule_turns_fallback_spend_specific(coverage_warehouse):
    config = parse_config('[[workload_rules]]\nid = "cluster"\nworkload = "inference"\nresource = "gpu-cluster"\n')
    out = classification_coverage(coverage_warehouse, config, date(2026, 7, 1), date(2026, 8, 1))
    aws = out.filter(pl.col("x_Source") == "aws").to_dicts()[0]
    assert (aws["specific_cost"], aws["fallback_cost"]) == (Decimal("150.50"), Decimal("30.25"))
    split = workload_split(coverage_warehouse, date(2026, 7, 1), date(2026, 8, 1), config=config)
    assert dict(split.select("workload", "cost").rows())["inference"] == Decimal("190.50")


def test_the_commented_examples_in_finops_toml_are_valid():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "finops.toml").read_text(encoding="utf-8")
    examples = text[text.index("# [[workload_rules]]") :].split("\n\n")[0]  # up to the next section
    uncommented = "\n".join(line.removeprefix("#").removeprefix(" ") for line in examples.splitlines())
    rules = rules_from_config(parse_config(uncommented))
    assert [r.id for r in rules] == ["user.gpu-cluster", "user.research-gpus"]


def test_config_and_classify_agree_on_the_classes():
    from finops.analyses.classify import WORKLOADS
    from finops.config import WORKLOAD_VALUES

    assert WORKLOAD_VALUES == WORKLOADS

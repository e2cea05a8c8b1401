"""Workload classification: every pattern the rules know, as a table of cases."""

from __future__ import annotations

import polars as pl
import pytest

from finops.analyses.classify import RULES, WORKLOADS, classify, rules_table
from finops.warehouse import Warehouse
from tests.finops.warehouse_rows import charge, insert_charges

SAGEMAKER = {"ProviderName": "AWS", "ServiceName": "Amazon SageMaker", "ServiceCategory": "AI and Machine Learning"}
BEDROCK = {"ProviderName": "AWS", "ServiceName": "Amazon Bedrock", "ServiceCategory": "AI and Machine Learning"}
EC2 = {"ProviderName": "AWS", "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute"}
VERTEX = {"ProviderName": "Google Cloud", "ServiceName": "Vertex AI", "ServiceCategory": "AI and Machine Learning"}
GCE = {"ProviderName": "Google Cloud", "ServiceName": "Compute Engine", "ServiceCategory": "Compute"}
AOAI = {"ProviderName": "Microsoft", "ServiceName": "Azure OpenAI", "ServiceCategory": "AI and Machine Learning"}
AML = {
    "ProviderName": "Microsoft",
    "ServiceName": "Azure Machine Learning",
    "ServiceCategory": "AI and Machine Learning",
}

# (case name, columns of the charge, expected workload, expected rule id)
CASES: list[tuple[str, dict, str, str]] = [
    # AWS SageMaker usage types; the usage type sits in whichever column the export used.
    ("sm warm pool", {**SAGEMAKER, "SkuId": "USE1-TrainWarmPool:ml.p4d.24xlarge"}, "training", "aws.sagemaker.train-warm-pool"),
    ("sm spot training", {**SAGEMAKER, "SkuMeter": "USE1-TrSpt:ml.g5.12xlarge"}, "training", "aws.sagemaker.spot-training"),
    ("sm training", {**SAGEMAKER, "SkuId": "USE1-Train:ml.p4d.24xlarge"}, "training", "aws.sagemaker.training"),
    ("sm training in description", {**SAGEMAKER, "ChargeDescription": "USW2-Train:ml.g5.2xlarge"}, "training", "aws.sagemaker.training"),
    ("sm hyperpod", {**SAGEMAKER, "ResourceType": "USE1-Cluster:ml.p5.48xlarge"}, "training", "aws.sagemaker.hyperpod"),
    ("sm async", {**SAGEMAKER, "SkuId": "USE1-AsyncInf:ml.g5.xlarge"}, "inference", "aws.sagemaker.async-inference"),
    ("sm host", {**SAGEMAKER, "SkuId": "USE1-Host:ml.g5.2xlarge"}, "inference", "aws.sagemaker.hosting"),
    ("sm batch transform", {**SAGEMAKER, "SkuId": "USE1-Tsform:ml.m5.xlarge"}, "inference", "aws.sagemaker.batch-transform"),
    ("sm studio", {**SAGEMAKER, "SkuId": "USE1-Studio_DW:ml.m5.4xlarge"}, "development", "aws.sagemaker.studio"),
    ("sm notebook", {**SAGEMAKER, "SkuMeter": "USE1-Notebk:ml.t3.medium"}, "development", "aws.sagemaker.notebook"),
    ("sm processing", {**SAGEMAKER, "SkuId": "USE1-Processing:ml.m5.xlarge"}, "other AI", "aws.sagemaker.processing"),
    ("sm storage", {**SAGEMAKER, "SkuId": "USE1-ML:VolumeUsage.gp2"}, "other AI", "aws.sagemaker.other"),
    # AWS Bedrock
    ("bedrock input tokens", {**BEDROCK, "SkuId": "USE1-Claude3.5Sonnet-input-tokens"}, "inference", "aws.bedrock.invocation"),
    ("bedrock cache read", {**BEDROCK, "SkuMeter": "USE1-Claude3.7Sonnet-cache-read-input-token-count"}, "inference", "aws.bedrock.invocation"),
    ("bedrock provisioned", {**BEDROCK, "SkuId": "USE1-Claude3Haiku-ModelUnits-1Month"}, "inference", "aws.bedrock.provisioned"),
    ("bedrock customization", {**BEDROCK, "SkuId": "USE1-Llama3-8B-Customization-Training-tokens"}, "training", "aws.bedrock.customization"),
    ("bedrock other", {**BEDROCK, "SkuId": "USE1-Agents-Storage"}, "other AI", "aws.bedrock.other"),
    # AWS EC2 instance families
    ("ec2 inferentia", {**EC2, "SkuId": "BoxUsage:inf2.xlarge"}, "inference", "aws.ec2.inferentia"),
    ("ec2 trainium", {**EC2, "SkuId": "USE1-SpotUsage:trn1.32xlarge"}, "training", "aws.ec2.trainium"),
    ("ec2 p4d", {**EC2, "SkuId": "BoxUsage:p4d.24xlarge"}, "other AI", "aws.ec2.gpu"),
    ("ec2 g5 in description", {**EC2, "ChargeDescription": "$1.212 per On Demand Linux g5.2xlarge Instance Hour"}, "other AI", "aws.ec2.gpu"),
    ("ec2 p6 hyphenated", {**EC2, "SkuId": "USE1-BoxUsage:p6-b200.48xlarge"}, "other AI", "aws.ec2.gpu"),
    ("ec2 general purpose", {**EC2, "SkuId": "BoxUsage:m5.large"}, "non-AI", "fallback.non-ai"),
    # Accelerators whose owners tagged the workload; the tag says nothing on a CPU instance.
    ("ec2 p4d tagged inference", {**EC2, "SkuId": "BoxUsage:p4d.24xlarge", "Tags": {"workload": "Inference"}}, "inference", "tag.workload.inference"),
    ("ec2 p5 tagged training", {**EC2, "SkuId": "USE1-BoxUsage:p5.48xlarge", "Tags": {"ai-workload": "training"}}, "training", "tag.workload.training"),
    ("ec2 g5 tagged dev", {**EC2, "SkuId": "BoxUsage:g5.4xlarge", "Tags": {"Workload": "dev", "team": "r"}}, "development", "tag.workload.development"),
    ("gce gpu tagged training", {**GCE, "ChargeDescription": "Nvidia Tesla A100 GPU running in Americas", "Tags": {"workload": "training"}}, "training", "tag.workload.training"),
    ("ec2 g5 tagged with another value", {**EC2, "SkuId": "BoxUsage:g5.4xlarge", "Tags": {"workload": "batch-etl"}}, "other AI", "aws.ec2.gpu"),
    ("ec2 cpu tagged inference stays non-AI", {**EC2, "SkuId": "BoxUsage:m5.large", "Tags": {"workload": "inference"}}, "non-AI", "fallback.non-ai"),
    ("ec2 graviton is not a gpu", {**EC2, "SkuId": "BoxUsage:c6g.large"}, "non-AI", "fallback.non-ai"),
    # Google Cloud Vertex AI
    ("vertex custom training", {**VERTEX, "ChargeDescription": "Custom Training: Nvidia A100 GPU running in Americas"}, "training", "gcp.vertex.training"),
    ("vertex training", {**VERTEX, "SkuMeter": "Training on N1 predefined instance Core"}, "training", "gcp.vertex.training"),
    ("vertex pipelines", {**VERTEX, "ChargeDescription": "Vertex AI Pipelines: Pipeline Run"}, "training", "gcp.vertex.training"),
    ("vertex online prediction", {**VERTEX, "ChargeDescription": "Online Prediction: N1 Predefined Instance Core running in Americas"}, "inference", "gcp.vertex.prediction"),
    ("vertex batch prediction", {**VERTEX, "ChargeDescription": "Batch Prediction: G2 Instance Core"}, "inference", "gcp.vertex.prediction"),
    ("gemini tokens", {**VERTEX, "ChargeDescription": "Gemini 2.5 Pro Input Tokens Predictions"}, "inference", "gcp.vertex.prediction"),
    ("gemini api credit", {**VERTEX, "ChargeCategory": "Credit", "ChargeDescription": "Promotional credit: Gemini API launch offer"}, "inference", "gcp.vertex.prediction"),
    ("palm output", {**VERTEX, "ChargeDescription": "PaLM 2 Text Bison Output Characters"}, "inference", "gcp.vertex.prediction"),
    ("vertex workbench", {**VERTEX, "ChargeDescription": "Vertex AI Workbench Instance: Core running in Americas"}, "development", "gcp.vertex.workbench"),
    ("gcp notebooks service", {**VERTEX, "ServiceName": "Notebooks", "ChargeDescription": "Managed Notebooks Instance RAM"}, "development", "gcp.vertex.workbench"),
    ("vertex other", {**VERTEX, "ChargeDescription": "Vector Search: Index Serving"}, "other AI", "gcp.vertex.other"),
    ("gce gpu", {**GCE, "ChargeDescription": "Nvidia Tesla T4 GPU running in Americas"}, "other AI", "gcp.compute.accelerator"),
    ("gce cpu", {**GCE, "ChargeDescription": "N2 Instance Core running in Americas"}, "non-AI", "fallback.non-ai"),
    # Azure
    ("azure openai tokens", {**AOAI, "SkuMeter": "gpt 4o 0513 Input global Tokens"}, "inference", "azure.openai.tokens"),
    ("azure openai ptu", {**AOAI, "SkuMeter": "Provisioned Managed Global Unit"}, "inference", "azure.openai.provisioned"),
    ("azure openai fine-tuning", {**AOAI, "SkuMeter": "gpt 4o mini 0718 ft Training Tokens"}, "training", "azure.openai.fine-tuning"),
    ("azure ml endpoint", {**AML, "SkuMeter": "NCadsA100v4 Low Priority", "Tags": {"azuremlendpoint": "chat"}}, "inference", "azure.ml.endpoint"),
    ("azure ml deployment, any case", {**AML, "Tags": {"AzureMLDeployment": "blue", "team": "x"}}, "inference", "azure.ml.endpoint"),
    ("azure ml compute", {**AML, "SkuMeter": "NCadsA100v4", "Tags": {"team": "research"}}, "training", "azure.ml.compute"),
    ("azure ml compute untagged", {**AML, "SkuMeter": "NCadsA100v4"}, "training", "azure.ml.compute"),
    ("azure vm", {"ProviderName": "Microsoft", "ServiceName": "Virtual Machines", "SkuMeter": "D4s v5"}, "non-AI", "fallback.non-ai"),
    # Model APIs billed directly
    ("openai api", {"ProviderName": "OpenAI", "ServiceName": "Chat Completions", "SkuId": "gpt-4o"}, "inference", "api.llm-provider"),
    ("anthropic api", {"ProviderName": "Anthropic", "ServiceName": "Messages", "SkuId": "claude-sonnet-4"}, "inference", "api.llm-provider"),
    ("openai fine-tuning", {"ProviderName": "OpenAI", "ServiceName": "Fine-tuning", "SkuId": "gpt-4o-mini training"}, "training", "api.fine-tuning"),
    # Fallbacks
    ("other AI service", {"ProviderName": "AWS", "ServiceName": "Amazon Rekognition", "ServiceCategory": "AI and Machine Learning"}, "other AI", "fallback.ai-category"),
    ("storage", {"ProviderName": "AWS", "ServiceName": "Amazon Simple Storage Service", "ServiceCategory": "Storage"}, "non-AI", "fallback.non-ai"),
    ("all nulls", {"ProviderName": None, "ServiceName": None}, "non-AI", "fallback.non-ai"),
]  # fmt: skip


@pytest.fixture(scope="module")
def classified(tmp_path_factory) -> pl.DataFrame:
    wh = Warehouse(tmp_path_factory.mktemp("classify") / "w.duckdb", lock_timeout=5)
    insert_charges(wh, [charge(ResourceName=name, **columns) for name, columns, _, _ in CASES])
    with wh.ibis() as con:
        return classify(con.table("charges")).select("ResourceName", "workload", "workload_rule").to_polars()


@pytest.mark.parametrize(("name", "expected_workload", "expected_rule"), [(c[0], c[2], c[3]) for c in CASES])
def test_classification_case(classified, name, expected_workload, expected_rule):
    row = classified.filter(pl.col("ResourceName") == name).to_dicts()
    assert row == [{"ResourceName": name, "workload": expected_workload, "workload_rule": expected_rule}]


def test_every_rule_has_a_case_and_a_known_workload():
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert {rule.workload for rule in RULES} <= set(WORKLOADS)
    assert set(ids) == {case[3] for case in CASES}
    assert RULES[-1].id == "fallback.non-ai"


def test_classify_keeps_rows_and_columns(classified):
    assert classified.height == len(CASES)
    assert classified["workload"].null_count() == 0


def test_rules_table_lists_rules_in_order():
    table = rules_table()
    assert table["id"].to_list() == [rule.id for rule in RULES]
    assert table["order"].to_list() == list(range(1, len(RULES) + 1))

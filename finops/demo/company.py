"""Larkspur Labs: a fictional company's AI cloud spend as FOCUS files and native exports, the same on every run.

``finops demo`` needs data whose figures never drift: a report, a test or a tutorial can
quote a 2026Q3 figure and still be right next year. This module
writes 18 months (2025-04-01 .. 2026-09-30) of daily charges for a company of six
departments, from a seed, as five providers deliver them:

=========  ============  ===========================================  ============================
provider   FOCUS         file                                         what the company runs there
=========  ============  ===========================================  ============================
aws        1.2           ``focus/aws/billing_period=YYYY-MM/          SageMaker training, endpoints
                         part-0.parquet``                             and notebooks, Bedrock, GPU
                                                                      EC2, a Savings Plan, tax
gcp        1.0           ``focus/gcp/…/part-0.csv.gz``                Vertex AI training and
                                                                      prediction, Gemini, BigQuery
azure      1.2           ``focus/azure/…/part-0.csv``                 Azure OpenAI, Azure ML
                                                                      endpoints and clusters, VMs
openai     1.3           ``focus/openai/…/part-0.csv``                OpenAI API per project/model
anthropic  1.3           ``focus/anthropic/…/part-0.csv``             Claude API per workspace
=========  ============  ===========================================  ============================

The three clouds are also written in their own export formats, expressing exactly the same
spend (see "Native exports" below; ``SampleCompany.native_deliveries`` lists them in load order):

=========  =================================================  =================================
provider   native export                                      commitments it shows
=========  =================================================  =================================
aws        CUR 2.0 Parquet in the Data Exports layout,        the Compute Savings Plan (covered
           ``aws/cur/larkspur-cur2/{data,metadata}/            usage, negation and daily fee
           BILLING_PERIOD=YYYY-MM/…``, one manifest a month;  lines) and an RDS Reserved
           2026-08's first delivery in                        Instance (DiscountedUsage and a
           ``aws/cur-2026-08-original/…``                     monthly RIFee)
gcp        detailed billing export as ``bq extract`` writes   a promotional credit riding on
           it: ``gcp/billing_export/YYYYMM/*.json.gz``        Gemini usage rows
azure      EA ActualCost and AmortizedCost exports (v2),      an AI Search reservation paid
           ``azure/exports/<export>/<YYYYMMDD-YYYYMMDD>/      monthly: a purchase in actual
           <run>/part_0_0001.csv`` with a ``manifest.json``   cost, spread over usage in
                                                              amortized cost
=========  =================================================  =================================

Planted for the analyses to find, and recorded in ``ground_truth.json``:

* AWS 2026-08 is delivered twice: the first delivery double-metered a SageMaker endpoint for
  three days and billed a deleted notebook; the restatement (``focus/aws-restated/…``, and a
  new CUR manifest for the period) corrects both and adds an SLA credit. Loaded after the
  original, it must replace it.
* Customer Support's Azure OpenAI agent ran away on 2026-08-12 and 2026-08-13.
* Marketing's resources in the AWS shared-services account carry no tags: chargeback puts
  them in "Unallocated".

Everything the company knows and a bill does not say (which workload each resource serves,
which department really owns it) is in the ground truth, so analyses can be checked
against it. Amounts are computed in integer micro-dollars and written as decimals with six
places, so every total in the ground truth is exact.

>>> company = generate(Path("data/sample"))          # doctest: +SKIP
>>> [d.label for d in company.deliveries][-1]        # doctest: +SKIP
'AWS 2026-08 restated after close (FOCUS 1.2, Parquet)'
>>> [d.kind for d in company.native_deliveries]      # doctest: +SKIP
['aws-cur', 'gcp-export', 'azure', 'focus', 'focus', 'aws-cur']
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from finops.config import UNALLOCATED
from finops.exceptions import FolderBusyError

SEED = 2026
START = date(2025, 4, 1)
END = date(2026, 9, 30)
COMPANY_NAME = "Larkspur Labs"
CURRENCY = "USD"
HEADLINE_QUARTER = "2026Q3"

DAYS_PER_MONTH = 30.4375
MICRO = 1_000_000
"""Money and quantities are carried as integers in millionths, so sums are exact."""

Workload = Literal["inference", "training", "development", "other AI", "non-AI"]
WORKLOADS: tuple[Workload, ...] = ("inference", "training", "development", "other AI", "non-AI")
"""The company's own workload classes (same labels as :mod:`finops.analyses.classify`)."""

Pattern = Literal["always_on", "steady", "weekday", "bursty"]
Provider = Literal["aws", "gcp", "azure", "openai", "anthropic"]
PROVIDERS: tuple[Provider, ...] = ("aws", "gcp", "azure", "openai", "anthropic")


# --------------------------------------------------------------------------------------
# The company: departments, accounts and how finops.toml maps them
# --------------------------------------------------------------------------------------

TAG_KEYS = ("team", "cost-center", "department")
"""Tag keys that name a department, as finops.toml's [allocation] tag_keys lists them."""


@dataclasses.dataclass(frozen=True)
class DepartmentSpec:
    name: str
    owner: str
    tag_values: tuple[str, ...]


DEPARTMENTS: tuple[DepartmentSpec, ...] = (
    DepartmentSpec("Research", "research-leads@larkspur.example", ("research",)),
    DepartmentSpec("Product", "product-eng@larkspur.example", ("product", "cc-200")),
    DepartmentSpec("Customer Support", "support-ops@larkspur.example", ("support", "customer-support")),
    DepartmentSpec("Data Platform", "platform@larkspur.example", ("platform", "data-platform", "cc-400")),
    DepartmentSpec("Marketing", "marketing-ops@larkspur.example", ("marketing",)),
    DepartmentSpec("Sales & Finance", "finance@larkspur.example", ("sales", "finance", "cc-600")),
)


@dataclasses.dataclass(frozen=True)
class BillingAccount:
    provider: Provider
    provider_name: str  # ProviderName (and ServiceProviderName in 1.3)
    invoice_issuer: str
    id: str
    name: str
    type: str  # BillingAccountType (1.2+)
    focus_version: Literal["1.0", "1.2", "1.3"]
    file_format: Literal["parquet", "csv.gz", "csv"]
    contract_discount: str = "1"  # ContractedUnitPrice = ListUnitPrice × this (Azure EA)


BILLING_ACCOUNTS: dict[Provider, BillingAccount] = {
    "aws": BillingAccount("aws", "AWS", "AWS", "849302117465", "Larkspur Labs (management)", "Payer Account", "1.2", "parquet"),
    "gcp": BillingAccount("gcp", "Google Cloud", "Google Cloud", "01F3A2-9B7C4D-E5A610", "Larkspur Labs GCP", "Billing Account", "1.0", "csv.gz"),
    "azure": BillingAccount("azure", "Microsoft", "Microsoft", "89654321", "Larkspur Labs EA", "Billing Account", "1.2", "csv", "0.92"),
    "openai": BillingAccount("openai", "OpenAI", "OpenAI", "org-Lk8pQ2vX9sT4mN7rB3cD", "Larkspur Labs", "Organization", "1.3", "csv"),
    "anthropic": BillingAccount("anthropic", "Anthropic", "Anthropic", "8a3c6f1e-2b4d-4e9a-b7c5-1d0e9f2a3b4c", "Larkspur Labs", "Organization", "1.3", "csv"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SubAccount:
    provider: Provider
    id: str
    name: str
    type: str  # SubAccountType (1.2+)
    department: str | None  # None: a shared account, allocated by tags


SUB_ACCOUNTS: dict[str, SubAccount] = {
    s.name: s
    for s in (
        # AWS linked accounts
        SubAccount("aws", "311482930017", "larkspur-research", "Linked Account", "Research"),
        SubAccount("aws", "311482930028", "larkspur-product-prod", "Linked Account", "Product"),
        SubAccount("aws", "311482930039", "larkspur-support", "Linked Account", "Customer Support"),
        SubAccount("aws", "311482930040", "larkspur-data-platform", "Linked Account", "Data Platform"),
        SubAccount("aws", "311482930051", "larkspur-shared-services", "Linked Account", None),
        # Google Cloud projects
        SubAccount("gcp", "lark-research-ml", "Larkspur Research ML", "Project", "Research"),
        SubAccount("gcp", "lark-product-serving", "Larkspur Product Serving", "Project", "Product"),
        SubAccount("gcp", "lark-marketing-studio", "Larkspur Marketing Studio", "Project", "Marketing"),
        SubAccount("gcp", "lark-shared-analytics", "Larkspur Shared Analytics", "Project", None),
        # Azure subscriptions
        SubAccount("azure", "/subscriptions/6f1c2a7e-0b3d-4c1e-9a55-3e2d7c8b4a10", "lk-support-prod", "Subscription", "Customer Support"),
        SubAccount("azure", "/subscriptions/2b9e4d61-7c3a-4f08-b1d2-9a8c7e6f5d43", "lk-research", "Subscription", "Research"),
        SubAccount("azure", "/subscriptions/d4a7c3e2-5f16-4b89-8e0a-1c2b3d4e5f60", "lk-shared-platform", "Subscription", None),
        # OpenAI projects
        SubAccount("openai", "proj_Support4gT7xQ2", "support-agents", "Project", "Customer Support"),
        SubAccount("openai", "proj_Product9kL2mN7", "chat-assistant", "Project", "Product"),
        SubAccount("openai", "proj_Mktg3hR8vW1", "marketing-content", "Project", "Marketing"),
        SubAccount("openai", "proj_Sales5bJ1cY4", "sales-assist", "Project", "Sales & Finance"),
        # Anthropic workspaces
        SubAccount("anthropic", "wrkspc_01SupportAgents", "Support agents", "Workspace", "Customer Support"),
        SubAccount("anthropic", "wrkspc_01ResearchEvals", "Research evals", "Workspace", "Research"),
        SubAccount("anthropic", "wrkspc_01ProductChat", "Product chat", "Workspace", "Product"),
    )
}  # fmt: skip

assert len(SUB_ACCOUNTS) == 19, "sub account names must be unique: series refer to them by name"

REGIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "us-central1": "Iowa",
    "eastus": "East US",
    "eastus2": "East US 2",
}


def allocate(sub_account_id: str, tags: dict[str, str]) -> str:
    """The department finops.toml gives a charge: its sub account's, else its tag's, else Unallocated."""
    by_account = {s.id: s.department for s in SUB_ACCOUNTS.values() if s.department}
    if sub_account_id in by_account:
        return by_account[sub_account_id]
    by_value = {v.lower(): d.name for d in DEPARTMENTS for v in d.tag_values}
    lowered = {k.lower(): v for k, v in tags.items()}
    for key in TAG_KEYS:
        value = lowered.get(key)
        if value is not None and value.lower() in by_value:
            return by_value[value.lower()]
    return UNALLOCATED


def config_toml() -> str:
    """The sample company's finops.toml (without the explanations of the repository's copy)."""
    lines = [
        "# The Larkspur Labs sample company's mapping, written by finops.demo.company.",
        "# The finops.toml at the top of the repository is the same mapping, with every key explained.",
        "",
        "[company]",
        f"name = {json.dumps(COMPANY_NAME)}",
        f"currency = {json.dumps(CURRENCY)}",
        "",
        "[allocation]",
        'basis = "effective"',
        f"tag_keys = {json.dumps(list(TAG_KEYS))}",
    ]
    for dept in DEPARTMENTS:
        accounts = [s.id for s in SUB_ACCOUNTS.values() if s.department == dept.name]
        lines += [
            "",
            "[[departments]]",
            f"name = {json.dumps(dept.name)}",
            f"owner = {json.dumps(dept.owner)}",
            f"sub_accounts = {json.dumps(accounts)}",
            f"tag_values = {json.dumps(list(dept.tag_values))}",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# What the company runs: services, SKUs and resource series
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Service:
    name: str  # ServiceName
    category: str  # ServiceCategory
    subcategory: str  # ServiceSubcategory (1.1+)
    code: str | None = None  # AWS x_ServiceCode
    publisher: str | None = None  # PublisherName when not the provider


SERVICES: dict[str, Service] = {
    "sagemaker": Service("Amazon SageMaker", "AI and Machine Learning", "Machine Learning", "AmazonSageMaker"),
    "bedrock": Service("Amazon Bedrock", "AI and Machine Learning", "Generative AI", "AmazonBedrock"),
    "ec2": Service("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "AmazonEC2"),
    "s3": Service("Amazon Simple Storage Service", "Storage", "Object Storage", "AmazonS3"),
    "rds": Service("Amazon Relational Database Service", "Databases", "Relational Databases", "AmazonRDS"),
    "savings_plans": Service("Savings Plans for AWS Compute usage", "Compute", "Other (Compute)", "ComputeSavingsPlans"),
    "aws_tax": Service("Tax", "Other", "Other (Other)", None),
    "vertex": Service("Vertex AI", "AI and Machine Learning", "AI Platforms"),
    "gce": Service("Compute Engine", "Compute", "Virtual Machines"),
    "bigquery": Service("BigQuery", "Analytics", "Data Warehouses"),
    "gcs": Service("Cloud Storage", "Storage", "Object Storage"),
    "azure_openai": Service("Azure OpenAI", "AI and Machine Learning", "Generative AI"),
    "azure_ml": Service("Azure Machine Learning", "AI and Machine Learning", "Machine Learning"),
    "azure_search": Service("Azure AI Search", "AI and Machine Learning", "AI Platforms"),
    "azure_vm": Service("Virtual Machines", "Compute", "Virtual Machines"),
    "azure_storage": Service("Storage", "Storage", "Object Storage"),
    "openai_api": Service("OpenAI API", "AI and Machine Learning", "Generative AI"),
    "claude_api": Service("Claude API", "AI and Machine Learning", "Generative AI"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Sku:
    """What is metered and at what list price (USD per pricing unit)."""

    description: str  # ChargeDescription
    pricing_unit: str
    list_price: str
    consumed_unit: str
    per_unit: int = 1  # consumed units per pricing unit (1000 for "1K Tokens")
    step: int = 100  # pricing quantities are whole multiples of this many millionths
    meter: str | None = None  # SkuMeter (1.1+); the usage type for AWS
    details: dict[str, str] | None = None  # SkuPriceDetails (1.1+)
    x: dict[str, str] = dataclasses.field(default_factory=dict)  # provider x_ columns

    @property
    def key(self) -> str:
        return f"{self.meter or ''}|{self.description}"


def _hours(description: str, price: str, meter: str | None = None, instance: str | None = None, **x: str) -> Sku:
    details = {"InstanceType": instance} if instance else None
    return Sku(description, "Hours", price, "Hours", meter=meter, details=details, x=x)


def _tokens(description: str, price: str, per: int, model: str, direction: str, meter: str | None = None, **x: str) -> Sku:
    unit = {1_000: "1K Tokens", 1_000_000: "1M Tokens"}[per]
    return Sku(description, unit, price, "Tokens", per_unit=per, step=MICRO // per, meter=meter,
               details={"Model": model, "TokenType": direction}, x=x)  # fmt: skip


def _aws_hours(usage_type: str, price: str, what: str) -> Sku:
    instance = usage_type.split(":", 1)[1]
    description = f"${price} per {what} hour for {instance} in US East (N. Virginia)"
    operation = {"Train": "CreateTrainingJob", "TrSpt": "CreateTrainingJob", "Host": "RunInstance",
                 "Notebk": "RunInstance", "Studio": "RunInstance"}.get(usage_type[5:].split(":")[0], "RunInstances")  # fmt: skip
    return _hours(description, price, usage_type, instance, x_UsageType=usage_type, x_Operation=operation)


def _aws_tokens(usage_type: str, price: str, model: str, direction: str) -> Sku:
    description = f"${price} per 1K {direction} tokens for {model} in US East (N. Virginia)"
    return _tokens(description, price, 1_000, model, direction, usage_type, x_UsageType=usage_type, x_Operation="InvokeModel")


def _aws_storage(usage_type: str, price: str, what: str) -> Sku:
    return Sku(f"${price} per GB-month of {what}", "GB-Mo", price, "GB-Mo", step=1, meter=usage_type,
               x={"x_UsageType": usage_type, "x_Operation": "StandardStorage"})  # fmt: skip


def _azure(meter: str, unit: str, price: str, category: str, subcategory: str, *, per: int = 1, model: str | None = None,
           direction: str | None = None, instance: str | None = None) -> Sku:  # fmt: skip
    x = {"x_SkuMeterCategory": category, "x_SkuMeterSubcategory": subcategory, "x_SkuMeterName": meter}
    if per > 1:
        return _tokens(meter, price, per, model or meter, direction or "", meter, **x)
    details = {"InstanceType": instance} if instance else None
    return Sku(meter, unit, price, unit, meter=meter, details=details, x=x)


def _api_tokens(model: str, kind: str, price: str) -> Sku:
    return _tokens(f"{model} {kind} tokens", price, 1_000_000, model, kind, f"{model} {kind} tokens")


@dataclasses.dataclass(frozen=True)
class Series:
    """One resource (or a fleet of ``replicas`` alike) metered daily by one SKU.

    ``monthly`` is the average list cost per month at the start (fleet total); it grows by
    ``growth`` a month. ``pattern`` shapes the days: ``always_on`` bills 24 hours a day per
    replica; ``steady`` is flat with noise; ``weekday`` lowers weekends to ``weekend``;
    ``bursty`` runs in jobs of a few days. Series with the same ``traffic`` share their
    noise and jobs (input and output tokens of one application move together).
    """

    key: str
    provider: Provider
    account: str  # SubAccount name
    service: str  # key of SERVICES
    sku: Sku
    resource_id: str  # template: {i} replica number, {iid} a stable EC2-style id; job label appended when per_job
    resource_name: str
    resource_type: str
    workload: Workload
    monthly: float
    pattern: Pattern
    growth: float = 0.0
    weekend: float = 1.0
    noise: float = 0.08
    traffic: str | None = None
    replicas: int = 1
    region: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    start: date = START
    end: date = END
    per_job: bool = False  # a new resource (training job) per burst
    machine: bool = False  # one replica is one machine: at most 24 hours a day, so the fleet grows instead
    sp_rate: float | None = None  # covered by the Compute Savings Plan at list × sp_rate
    spot: float | None = None  # billed at list × spot (managed spot training)
    owner: str | None = None  # the department that really owns it, if chargeback cannot tell
    first_delivery_only: bool = False  # billed by mistake in AWS 2026-08's first delivery

    @property
    def sub_account(self) -> SubAccount:
        return SUB_ACCOUNTS[self.account]


# AWS SKUs
P4D_TRAIN = _aws_hours("USE1-Train:ml.p4d.24xlarge", "37.688", "SageMaker training")
G5_TRSPT = _aws_hours("USE1-TrSpt:ml.g5.12xlarge", "7.09", "SageMaker managed spot training")
G4DN_NOTEBK = _aws_hours("USE1-Notebk:ml.g4dn.xlarge", "0.7364", "SageMaker notebook instance")
G5_STUDIO = _aws_hours("USE1-Studio_JupyterLab:ml.g5.2xlarge", "1.515", "SageMaker Studio JupyterLab")
G5_HOST = _aws_hours("USE1-Host:ml.g5.2xlarge", "1.515", "SageMaker real-time inference")
P5_BOX = _aws_hours("USE1-BoxUsage:p5.48xlarge", "98.32", "On Demand Linux")
P4D_BOX = _aws_hours("USE1-BoxUsage:p4d.24xlarge", "32.7726", "On Demand Linux")
INF2_BOX = _aws_hours("USE1-BoxUsage:inf2.8xlarge", "1.9679", "On Demand Linux")
G5_BOX = _aws_hours("USE1-BoxUsage:g5.4xlarge", "1.624", "On Demand Linux")
M6I_2XL = _aws_hours("USE1-BoxUsage:m6i.2xlarge", "0.384", "On Demand Linux")
M6I_8XL = _aws_hours("USE1-BoxUsage:m6i.8xlarge", "1.536", "On Demand Linux")
M6I_16XL = _aws_hours("USE1-BoxUsage:m6i.16xlarge", "3.072", "On Demand Linux")
RDS_R6G = _aws_hours("USE1-InstanceUsage:db.r6g.xlarge", "0.48", "RDS PostgreSQL")
RDS_R6G_L = _aws_hours("USE1-InstanceUsage:db.r6g.large", "0.24", "RDS PostgreSQL")
S3_STD = _aws_storage("USE1-TimedStorage-ByteHrs", "0.023", "S3 Standard storage")
SONNET35_IN = _aws_tokens("USE1-Claude3.5Sonnet-input-tokens", "0.003", "Claude 3.5 Sonnet", "input")
SONNET35_OUT = _aws_tokens("USE1-Claude3.5Sonnet-output-tokens", "0.015", "Claude 3.5 Sonnet", "output")
SONNET4_IN = _aws_tokens("USE1-ClaudeSonnet4-input-tokens", "0.003", "Claude Sonnet 4", "input")
SONNET4_OUT = _aws_tokens("USE1-ClaudeSonnet4-output-tokens", "0.015", "Claude Sonnet 4", "output")
HAIKU35_IN = _aws_tokens("USE1-Claude3.5Haiku-input-tokens", "0.0008", "Claude 3.5 Haiku", "input")
HAIKU35_OUT = _aws_tokens("USE1-Claude3.5Haiku-output-tokens", "0.004", "Claude 3.5 Haiku", "output")
TITAN_EMBED = _aws_tokens("USE1-TitanEmbeddingsG2-Text-input-tokens", "0.0001", "Titan Text Embeddings V2", "input")

# Google Cloud SKUs (FOCUS 1.0: no SkuMeter; the description names the job)
VERTEX_A100 = _hours("Custom Training: Nvidia A100 80GB GPU running in Americas", "3.93")
VERTEX_N1_CORE = _hours("Custom Training: N1 Predefined Instance Core running in Americas", "0.0437")
VERTEX_WORKBENCH = _hours("Vertex AI Workbench: Instance vCPU running in Americas", "0.0379")
VERTEX_L4_PRED = _hours("Online Prediction: Nvidia L4 GPU running in Americas", "0.8050")
GEMINI25PRO_IN = _tokens("Gemini 2.5 Pro Input Tokens Predictions", "1.25", 1_000_000, "gemini-2.5-pro", "input")
GEMINI25PRO_OUT = _tokens("Gemini 2.5 Pro Output Tokens Predictions", "10", 1_000_000, "gemini-2.5-pro", "output")
GEMINI25FLASH_IN = _tokens("Gemini 2.5 Flash Input Tokens Predictions", "0.30", 1_000_000, "gemini-2.5-flash", "input")
GEMINI25FLASH_OUT = _tokens("Gemini 2.5 Flash Output Tokens Predictions", "2.50", 1_000_000, "gemini-2.5-flash", "output")
IMAGEN4 = Sku("Imagen 4 Image Generation Predictions", "Images", "0.04", "Images", step=MICRO, details={"Model": "imagen-4.0-generate"})
GCE_N2_CORE = _hours("N2 Instance Core running in Americas", "0.031611")
BQ_ANALYSIS = Sku("Analysis", "Tebibytes", "6.25", "Tebibytes", step=1)
BQ_STORAGE = Sku("Active Logical Storage", "Gibibyte months", "0.02", "Gibibyte months", step=1)
GCS_STANDARD = Sku("Standard Storage US Multi-region", "Gibibyte months", "0.026", "Gibibyte months", step=1)

# Azure meters
AOAI = ("Cognitive Services", "Azure OpenAI")
GPT4O_IN = _azure("gpt 4o 0513 Input global Tokens", "", "0.0025", *AOAI, per=1_000, model="gpt-4o-2024-05-13", direction="input")
GPT4O_OUT = _azure("gpt 4o 0513 Output global Tokens", "", "0.01", *AOAI, per=1_000, model="gpt-4o-2024-05-13", direction="output")
GPT4OMINI_IN = _azure("gpt 4o mini 0718 Input global Tokens", "", "0.00015", *AOAI, per=1_000, model="gpt-4o-mini-2024-07-18", direction="input")
GPT4OMINI_OUT = _azure("gpt 4o mini 0718 Output global Tokens", "", "0.0006", *AOAI, per=1_000, model="gpt-4o-mini-2024-07-18", direction="output")
AI_SEARCH_S1 = _azure("Standard S1 Unit", "Hours", "0.336", "Azure Cognitive Search", "Standard S1")
NC24ADS = _azure("NC24ads A100 v4", "Hours", "3.673", "Virtual Machines", "NCads A100 v4 Series", instance="Standard_NC24ads_A100_v4")
ND96ASR = _azure("ND96asr A100 v4", "Hours", "27.197", "Virtual Machines", "NDasr A100 v4 Series", instance="Standard_ND96asr_v4")
D8S_V5 = _azure("D8s v5", "Hours", "0.384", "Virtual Machines", "Dsv5 Series", instance="Standard_D8s_v5")
D4S_V5 = _azure("D4s v5", "Hours", "0.192", "Virtual Machines", "Dsv5 Series", instance="Standard_D4s_v5")
AZ_HOT_LRS = _azure("Hot LRS Data Stored", "GB/Month", "0.0184", "Storage", "General Block Blob v2")

# OpenAI and Anthropic (USD per 1M tokens)
GPT4O_API = {k: _api_tokens("gpt-4o-2024-08-06", k, p) for k, p in (("input", "2.50"), ("cached input", "1.25"), ("output", "10.00"))}
GPT41_API = {k: _api_tokens("gpt-4.1-2025-04-14", k, p) for k, p in (("input", "2.00"), ("cached input", "0.50"), ("output", "8.00"))}
GPT41MINI_API = {k: _api_tokens("gpt-4.1-mini-2025-04-14", k, p) for k, p in (("input", "0.40"), ("output", "1.60"))}
GPT4OMINI_API = {k: _api_tokens("gpt-4o-mini-2024-07-18", k, p) for k, p in (("input", "0.15"), ("output", "0.60"))}
GPT_IMAGE_API = {k: _api_tokens("gpt-image-1", k, p) for k, p in (("text input", "5.00"), ("image output", "40.00"))}
SONNET35_API = {k: _api_tokens("claude-3-5-sonnet-20241022", k, p) for k, p in (("input", "3.00"), ("output", "15.00"), ("cache read", "0.30"), ("cache write", "3.75"))}  # fmt: skip
SONNET4_API = {k: _api_tokens("claude-sonnet-4-20250514", k, p) for k, p in (("input", "3.00"), ("output", "15.00"), ("cache read", "0.30"), ("cache write", "3.75"))}  # fmt: skip
OPUS4_API = {k: _api_tokens("claude-opus-4-20250514", k, p) for k, p in (("input", "15.00"), ("output", "75.00"))}
HAIKU35_API = {k: _api_tokens("claude-3-5-haiku-20241022", k, p) for k, p in (("input", "0.80"), ("output", "4.00"))}

_SM_RESEARCH = "arn:aws:sagemaker:us-east-1:311482930017:"
_SM_PRODUCT = "arn:aws:sagemaker:us-east-1:311482930028:"
_BEDROCK_MODEL = "arn:aws:bedrock:us-east-1::foundation-model/"
_BEDROCK_PROFILE = "arn:aws:bedrock:us-east-1:311482930051:application-inference-profile/"
_AZ_SHARED = "/subscriptions/d4a7c3e2-5f16-4b89-8e0a-1c2b3d4e5f60/resourceGroups/"
_AZ_SUPPORT = "/subscriptions/6f1c2a7e-0b3d-4c1e-9a55-3e2d7c8b4a10/resourceGroups/"
_AZ_RESEARCH = "/subscriptions/2b9e4d61-7c3a-4f08-b1d2-9a8c7e6f5d43/resourceGroups/"
SONNET_SWITCH = date(2025, 9, 1)  # Product moves its Bedrock assistant to Claude Sonnet 4
API_SWITCH = date(2025, 7, 1)  # Support moves its OpenAI and Anthropic agents to newer models
MIGRATION_END = SONNET_SWITCH - timedelta(days=1)
API_MIGRATION_END = API_SWITCH - timedelta(days=1)


def _series() -> list[Series]:
    """Every resource the company runs, in a fixed order (the order random draws are made)."""
    S = Series
    out: list[Series] = [
        # ---- AWS: Research account
        S("aws-research-train-p4d", "aws", "larkspur-research", "sagemaker", P4D_TRAIN,
          _SM_RESEARCH + "training-job/lark-llm-finetune-", "lark-llm-finetune", "TrainingJob", "training",
          18000, "bursty", growth=0.02, per_job=True, region="us-east-1", traffic="research-llm"),
        S("aws-research-trspt-g5", "aws", "larkspur-research", "sagemaker", G5_TRSPT,
          _SM_RESEARCH + "training-job/lark-ranker-spot-", "lark-ranker-spot", "TrainingJob", "training",
          4000, "bursty", growth=0.02, per_job=True, region="us-east-1", spot=0.35),
        S("aws-research-p5", "aws", "larkspur-research", "ec2", P5_BOX,
          "{iid}", "research-p5-node-{i}", "Instance", "training",
          16000, "bursty", growth=0.02, region="us-east-1", sp_rate=0.83, traffic="research-p5", machine=True,
          tags={"workload": "training"}),
        S("aws-research-notebooks", "aws", "larkspur-research", "sagemaker", G4DN_NOTEBK,
          _SM_RESEARCH + "notebook-instance/research-nb-{i}", "research-nb-{i}", "NotebookInstance", "development",
          1500, "weekday", growth=0.02, weekend=0.1, region="us-east-1", machine=True),
        S("aws-research-studio", "aws", "larkspur-research", "sagemaker", G5_STUDIO,
          _SM_RESEARCH + "app/d-lark01/research-space-{i}/jupyterlab/default", "research-space-{i}", "App", "development",
          1100, "weekday", growth=0.02, weekend=0.1, region="us-east-1", machine=True),
        S("aws-research-s3", "aws", "larkspur-research", "s3", S3_STD,
          "lark-research-datasets", "lark-research-datasets", "Bucket", "non-AI",
          2600, "steady", growth=0.03, noise=0.01, region="us-east-1"),
        S("aws-research-notebook-orphan", "aws", "larkspur-research", "sagemaker", G4DN_NOTEBK,
          _SM_RESEARCH + "notebook-instance/research-nb-orphan", "research-nb-orphan", "NotebookInstance", "development",
          300, "steady", region="us-east-1", machine=True, start=date(2026, 8, 1), end=date(2026, 8, 10), first_delivery_only=True),
        # ---- AWS: Product account
        S("aws-product-endpoint", "aws", "larkspur-product-prod", "sagemaker", G5_HOST,
          _SM_PRODUCT + "endpoint/chat-assistant-{i}", "chat-assistant-{i}", "Endpoint", "inference",
          5500, "weekday", growth=0.05, weekend=0.8, noise=0.05, replicas=2, region="us-east-1"),
        S("aws-product-inf2", "aws", "larkspur-product-prod", "ec2", INF2_BOX,
          "{iid}", "embedder-inf2-{i}", "Instance", "inference",
          2900, "always_on", replicas=2, region="us-east-1", sp_rate=0.72),
        S("aws-product-sonnet35-in", "aws", "larkspur-product-prod", "bedrock", SONNET35_IN,
          _BEDROCK_MODEL + "anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet", "FoundationModel", "inference",
          5500, "weekday", growth=0.055, weekend=0.6, traffic="product-assistant", end=MIGRATION_END, region="us-east-1"),
        S("aws-product-sonnet35-out", "aws", "larkspur-product-prod", "bedrock", SONNET35_OUT,
          _BEDROCK_MODEL + "anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet", "FoundationModel", "inference",
          9000, "weekday", growth=0.055, weekend=0.6, traffic="product-assistant", end=MIGRATION_END, region="us-east-1"),
        S("aws-product-sonnet4-in", "aws", "larkspur-product-prod", "bedrock", SONNET4_IN,
          _BEDROCK_MODEL + "anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "FoundationModel", "inference",
          5500, "weekday", growth=0.055, weekend=0.6, traffic="product-assistant", start=SONNET_SWITCH, region="us-east-1"),
        S("aws-product-sonnet4-out", "aws", "larkspur-product-prod", "bedrock", SONNET4_OUT,
          _BEDROCK_MODEL + "anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "FoundationModel", "inference",
          9000, "weekday", growth=0.055, weekend=0.6, traffic="product-assistant", start=SONNET_SWITCH, region="us-east-1"),
        S("aws-product-app", "aws", "larkspur-product-prod", "ec2", M6I_8XL,
          "{iid}", "chat-app-{i}", "Instance", "non-AI",
          9000, "steady", growth=0.02, noise=0.03, region="us-east-1", sp_rate=0.66, machine=True),
        S("aws-product-rds", "aws", "larkspur-product-prod", "rds", RDS_R6G,
          "arn:aws:rds:us-east-1:311482930028:db:chat-app-db-{i}", "chat-app-db-{i}", "DBInstance", "non-AI",
          0, "always_on", replicas=4, region="us-east-1"),
        S("aws-product-s3", "aws", "larkspur-product-prod", "s3", S3_STD,
          "lark-product-assets", "lark-product-assets", "Bucket", "non-AI",
          900, "steady", growth=0.03, noise=0.01, region="us-east-1"),
        # ---- AWS: Customer Support account
        S("aws-support-haiku-in", "aws", "larkspur-support", "bedrock", HAIKU35_IN,
          _BEDROCK_MODEL + "anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku", "FoundationModel", "inference",
          1500, "weekday", growth=0.05, weekend=0.5, traffic="support-triage", region="us-east-1"),
        S("aws-support-haiku-out", "aws", "larkspur-support", "bedrock", HAIKU35_OUT,
          _BEDROCK_MODEL + "anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku", "FoundationModel", "inference",
          2500, "weekday", growth=0.05, weekend=0.5, traffic="support-triage", region="us-east-1"),
        S("aws-support-workers", "aws", "larkspur-support", "ec2", M6I_2XL,
          "{iid}", "support-agent-worker-{i}", "Instance", "non-AI",
          1000, "steady", growth=0.02, noise=0.03, region="us-east-1", sp_rate=0.66, machine=True),
        # ---- AWS: Data Platform account
        S("aws-platform-eks", "aws", "larkspur-data-platform", "ec2", M6I_16XL,
          "{iid}", "data-eks-node-{i}", "Instance", "non-AI",
          12000, "steady", growth=0.02, noise=0.03, region="us-east-1", sp_rate=0.66, machine=True),
        S("aws-platform-lake", "aws", "larkspur-data-platform", "s3", S3_STD,
          "lark-data-lake", "lark-data-lake", "Bucket", "non-AI",
          7000, "steady", growth=0.03, noise=0.01, region="us-east-1"),
        # ---- AWS: shared-services account (allocated by tags)
        S("aws-shared-gpu-cluster", "aws", "larkspur-shared-services", "ec2", P4D_BOX,
          "{iid}", "gpu-cluster-node-{i}", "Instance", "inference",
          0, "always_on", region="us-east-1", sp_rate=0.70,
          tags={"team": "platform", "env": "prod", "app": "gpu-cluster", "workload": "inference"}),
        S("aws-shared-gpu-cluster-2", "aws", "larkspur-shared-services", "ec2", P4D_BOX,
          "{iid}", "gpu-cluster-node-2", "Instance", "inference",
          0, "always_on", region="us-east-1", sp_rate=0.70, start=date(2026, 1, 5),
          tags={"team": "platform", "env": "prod", "app": "gpu-cluster", "workload": "inference"}),
        S("aws-shared-gateway", "aws", "larkspur-shared-services", "ec2", M6I_2XL,
          "{iid}", "llm-gateway-{i}", "Instance", "other AI",
          0, "always_on", replicas=3, region="us-east-1", sp_rate=0.66,
          tags={"Team": "platform", "app": "llm-gateway", "env": "prod"}),
        S("aws-shared-gateway-db", "aws", "larkspur-shared-services", "rds", RDS_R6G_L,
          "arn:aws:rds:us-east-1:311482930051:db:llm-gateway-spendlogs", "llm-gateway-spendlogs", "DBInstance", "other AI",
          0, "always_on", region="us-east-1", tags={"Team": "Platform", "app": "llm-gateway"}),
        S("aws-shared-research-g5", "aws", "larkspur-shared-services", "ec2", G5_BOX,
          "{iid}", "research-dev-g5-{i}", "Instance", "development",
          2200, "weekday", growth=0.02, weekend=0.15, region="us-east-1", machine=True,
          tags={"team": "research", "env": "dev", "workload": "development"}),
        S("aws-shared-product-embeddings", "aws", "larkspur-shared-services", "bedrock", TITAN_EMBED,
          _BEDROCK_PROFILE + "chat-assistant-embeddings", "chat-assistant-embeddings", "ApplicationInferenceProfile", "inference",
          500, "weekday", growth=0.05, weekend=0.7, region="us-east-1",
          tags={"cost-center": "cc-200", "app": "chat-assistant"}),
        S("aws-shared-finance-db", "aws", "larkspur-shared-services", "rds", RDS_R6G,
          "arn:aws:rds:us-east-1:311482930051:db:finance-forecasting", "finance-forecasting", "DBInstance", "non-AI",
          0, "always_on", region="us-east-1", tags={"department": "finance", "app": "forecasting-db"}),
        # Marketing's content generator, launched without tags: chargeback cannot see it.
        S("aws-shared-mktg-haiku-in", "aws", "larkspur-shared-services", "bedrock", HAIKU35_IN,
          _BEDROCK_PROFILE + "mktg-content-gen", "mktg-content-gen", "ApplicationInferenceProfile", "inference",
          700, "weekday", growth=0.06, weekend=0.3, traffic="mktg-content", region="us-east-1", owner="Marketing"),
        S("aws-shared-mktg-haiku-out", "aws", "larkspur-shared-services", "bedrock", HAIKU35_OUT,
          _BEDROCK_PROFILE + "mktg-content-gen", "mktg-content-gen", "ApplicationInferenceProfile", "inference",
          1300, "weekday", growth=0.06, weekend=0.3, traffic="mktg-content", region="us-east-1", owner="Marketing"),
        S("aws-shared-mktg-assets", "aws", "larkspur-shared-services", "s3", S3_STD,
          "lark-mktg-genai-assets", "lark-mktg-genai-assets", "Bucket", "non-AI",
          250, "steady", growth=0.05, noise=0.01, region="us-east-1", owner="Marketing"),
        # ---- Google Cloud
        S("gcp-research-a100", "gcp", "Larkspur Research ML", "vertex", VERTEX_A100,
          "projects/lark-research-ml/locations/us-central1/customJobs/llm-distill-", "llm-distill", "Custom Job", "training",
          11000, "bursty", growth=0.02, per_job=True, traffic="gcp-distill", region="us-central1"),
        S("gcp-research-n1", "gcp", "Larkspur Research ML", "vertex", VERTEX_N1_CORE,
          "projects/lark-research-ml/locations/us-central1/customJobs/llm-distill-", "llm-distill", "Custom Job", "training",
          900, "bursty", growth=0.02, per_job=True, traffic="gcp-distill", region="us-central1"),
        S("gcp-research-workbench", "gcp", "Larkspur Research ML", "vertex", VERTEX_WORKBENCH,
          "projects/lark-research-ml/locations/us-central1-a/instances/research-wb-{i}", "research-wb-{i}", "Workbench Instance", "development",
          700, "weekday", growth=0.02, weekend=0.1, replicas=2, region="us-central1"),
        S("gcp-research-gcs", "gcp", "Larkspur Research ML", "gcs", GCS_STANDARD,
          "projects/_/buckets/lark-research-checkpoints", "lark-research-checkpoints", "Bucket", "non-AI",
          1200, "steady", growth=0.03, noise=0.01, region="us-central1"),
        S("gcp-product-l4", "gcp", "Larkspur Product Serving", "vertex", VERTEX_L4_PRED,
          "projects/lark-product-serving/locations/us-central1/endpoints/rerank-{i}", "rerank-endpoint-{i}", "Endpoint", "inference",
          3500, "weekday", growth=0.045, weekend=0.8, noise=0.05, replicas=2, region="us-central1"),
        S("gcp-product-gemini-pro-in", "gcp", "Larkspur Product Serving", "vertex", GEMINI25PRO_IN,
          "projects/lark-product-serving/locations/us-central1/publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro", "Model", "inference",
          1800, "weekday", growth=0.06, weekend=0.65, traffic="gcp-gemini-pro", region="us-central1"),
        S("gcp-product-gemini-pro-out", "gcp", "Larkspur Product Serving", "vertex", GEMINI25PRO_OUT,
          "projects/lark-product-serving/locations/us-central1/publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro", "Model", "inference",
          4200, "weekday", growth=0.06, weekend=0.65, traffic="gcp-gemini-pro", region="us-central1"),
        S("gcp-product-gemini-flash-in", "gcp", "Larkspur Product Serving", "vertex", GEMINI25FLASH_IN,
          "projects/lark-product-serving/locations/us-central1/publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash", "Model", "inference",
          500, "weekday", growth=0.06, weekend=0.65, traffic="gcp-gemini-flash", region="us-central1"),
        S("gcp-product-gemini-flash-out", "gcp", "Larkspur Product Serving", "vertex", GEMINI25FLASH_OUT,
          "projects/lark-product-serving/locations/us-central1/publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash", "Model", "inference",
          1100, "weekday", growth=0.06, weekend=0.65, traffic="gcp-gemini-flash", region="us-central1"),
        S("gcp-mktg-imagen", "gcp", "Larkspur Marketing Studio", "vertex", IMAGEN4,
          "projects/lark-marketing-studio/locations/us-central1/publishers/google/models/imagen-4.0-generate", "imagen-4.0-generate", "Model", "inference",
          900, "weekday", growth=0.05, weekend=0.3, region="us-central1"),
        S("gcp-mktg-gemini-flash-in", "gcp", "Larkspur Marketing Studio", "vertex", GEMINI25FLASH_IN,
          "projects/lark-marketing-studio/locations/us-central1/publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash", "Model", "inference",
          200, "weekday", growth=0.05, weekend=0.3, traffic="gcp-mktg-flash", region="us-central1"),
        S("gcp-mktg-gemini-flash-out", "gcp", "Larkspur Marketing Studio", "vertex", GEMINI25FLASH_OUT,
          "projects/lark-marketing-studio/locations/us-central1/publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash", "Model", "inference",
          500, "weekday", growth=0.05, weekend=0.3, traffic="gcp-mktg-flash", region="us-central1"),
        S("gcp-shared-bq-analysis", "gcp", "Larkspur Shared Analytics", "bigquery", BQ_ANALYSIS,
          "projects/lark-shared-analytics/datasets/warehouse", "warehouse", "Dataset", "non-AI",
          4500, "weekday", growth=0.02, weekend=0.4, noise=0.15, region="us-central1", tags={"team": "data-platform"}),
        S("gcp-shared-bq-storage", "gcp", "Larkspur Shared Analytics", "bigquery", BQ_STORAGE,
          "projects/lark-shared-analytics/datasets/warehouse", "warehouse", "Dataset", "non-AI",
          1200, "steady", growth=0.03, noise=0.01, region="us-central1", tags={"team": "data-platform"}),
        S("gcp-shared-gce-platform", "gcp", "Larkspur Shared Analytics", "gce", GCE_N2_CORE,
          "projects/lark-shared-analytics/zones/us-central1-a/instances/etl-worker-{i}", "etl-worker-{i}", "Instance", "non-AI",
          4000, "steady", growth=0.02, noise=0.04, replicas=6, region="us-central1", tags={"cost-center": "cc-400"}),
        S("gcp-shared-gce-support", "gcp", "Larkspur Shared Analytics", "gce", GCE_N2_CORE,
          "projects/lark-shared-analytics/zones/us-central1-a/instances/ticket-sync-{i}", "ticket-sync-{i}", "Instance", "non-AI",
          700, "steady", growth=0.02, noise=0.04, replicas=2, region="us-central1", tags={"team": "support"}),
        # ---- Azure
        S("azure-support-gpt4o-in", "azure", "lk-support-prod", "azure_openai", GPT4O_IN,
          _AZ_SUPPORT + "rg-support-ai/providers/Microsoft.CognitiveServices/accounts/lk-support-aoai", "lk-support-aoai",
          "microsoft.cognitiveservices/accounts", "inference",
          2500, "weekday", growth=0.055, weekend=0.5, traffic="support-agent", region="eastus2"),
        S("azure-support-gpt4o-out", "azure", "lk-support-prod", "azure_openai", GPT4O_OUT,
          _AZ_SUPPORT + "rg-support-ai/providers/Microsoft.CognitiveServices/accounts/lk-support-aoai", "lk-support-aoai",
          "microsoft.cognitiveservices/accounts", "inference",
          5000, "weekday", growth=0.055, weekend=0.5, traffic="support-agent", region="eastus2"),
        S("azure-support-gpt4omini-in", "azure", "lk-support-prod", "azure_openai", GPT4OMINI_IN,
          _AZ_SUPPORT + "rg-support-ai/providers/Microsoft.CognitiveServices/accounts/lk-support-aoai", "lk-support-aoai",
          "microsoft.cognitiveservices/accounts", "inference",
          300, "weekday", growth=0.05, weekend=0.5, traffic="support-router", region="eastus2"),
        S("azure-support-gpt4omini-out", "azure", "lk-support-prod", "azure_openai", GPT4OMINI_OUT,
          _AZ_SUPPORT + "rg-support-ai/providers/Microsoft.CognitiveServices/accounts/lk-support-aoai", "lk-support-aoai",
          "microsoft.cognitiveservices/accounts", "inference",
          600, "weekday", growth=0.05, weekend=0.5, traffic="support-router", region="eastus2"),
        S("azure-support-search", "azure", "lk-support-prod", "azure_search", AI_SEARCH_S1,
          _AZ_SUPPORT + "rg-support-ai/providers/Microsoft.Search/searchServices/lk-support-kb", "lk-support-kb",
          "microsoft.search/searchservices", "other AI",
          0, "always_on", replicas=1, region="eastus2"),
        S("azure-research-cluster", "azure", "lk-research", "azure_ml", ND96ASR,
          _AZ_RESEARCH + "rg-research-ml/providers/Microsoft.MachineLearningServices/workspaces/lk-research-ws/computes/gpu-cluster-nd96",
          "gpu-cluster-nd96", "microsoft.machinelearningservices/workspaces/computes", "training",
          9000, "bursty", growth=0.02, region="eastus", traffic="azure-research"),
        S("azure-research-storage", "azure", "lk-research", "azure_storage", AZ_HOT_LRS,
          _AZ_RESEARCH + "rg-research-ml/providers/Microsoft.Storage/storageAccounts/lkresearchdata", "lkresearchdata",
          "microsoft.storage/storageaccounts", "non-AI",
          500, "steady", growth=0.03, noise=0.01, region="eastus"),
        S("azure-shared-endpoint", "azure", "lk-shared-platform", "azure_ml", NC24ADS,
          _AZ_SHARED + "rg-ml-serving/providers/Microsoft.MachineLearningServices/workspaces/lk-serving-ws/onlineEndpoints/chat-rerank/deployments/blue",
          "chat-rerank/blue", "microsoft.machinelearningservices/workspaces/onlineendpoints/deployments", "inference",
          5300, "weekday", growth=0.04, weekend=0.8, noise=0.05, region="eastus",
          tags={"azuremlendpoint": "chat-rerank", "azuremldeployment": "blue", "team": "product"}),
        S("azure-shared-vms", "azure", "lk-shared-platform", "azure_vm", D8S_V5,
          _AZ_SHARED + "rg-platform/providers/Microsoft.Compute/virtualMachines/lk-platform-vm-{i}", "lk-platform-vm-{i}",
          "microsoft.compute/virtualmachines", "non-AI",
          0, "always_on", replicas=8, region="eastus", tags={"Team": "Platform", "env": "prod"}),
        S("azure-shared-storage", "azure", "lk-shared-platform", "azure_storage", AZ_HOT_LRS,
          _AZ_SHARED + "rg-platform/providers/Microsoft.Storage/storageAccounts/lkplatformlogs", "lkplatformlogs",
          "microsoft.storage/storageaccounts", "non-AI",
          700, "steady", growth=0.03, noise=0.01, region="eastus", tags={"team": "platform"}),
        S("azure-shared-finance-vm", "azure", "lk-shared-platform", "azure_vm", D4S_V5,
          _AZ_SHARED + "rg-finance/providers/Microsoft.Compute/virtualMachines/lk-fin-reporting", "lk-fin-reporting",
          "microsoft.compute/virtualmachines", "non-AI",
          0, "always_on", region="eastus", tags={"cost-center": "CC-600"}),
    ]  # fmt: skip

    def api(key: str, provider: Provider, account: str, service: str, skus: dict[str, Sku], monthly: dict[str, float],
            traffic: str, **kw: Any) -> list[Series]:  # fmt: skip
        model = next(iter(skus.values())).details["Model"]  # type: ignore[index]
        return [
            Series(f"{key}-{kind.replace(' ', '-')}", provider, account, service, skus[kind], model, model, "Model",
                   "inference", amount, "weekday", traffic=traffic, **kw)  # fmt: skip
            for kind, amount in monthly.items()
        ]

    support = dict(growth=0.06, weekend=0.5)
    out += api("openai-support-gpt4o", "openai", "support-agents", "openai_api", GPT4O_API,
               {"input": 1800, "cached input": 300, "output": 3500}, "oai-support", end=API_MIGRATION_END, **support)
    out += api("openai-support-gpt41", "openai", "support-agents", "openai_api", GPT41_API,
               {"input": 1800, "cached input": 300, "output": 3500}, "oai-support", start=API_SWITCH, **support)
    out += api("openai-product-gpt41mini", "openai", "chat-assistant", "openai_api", GPT41MINI_API,
               {"input": 700, "output": 1400}, "oai-product", growth=0.05, weekend=0.6, start=date(2025, 4, 15))
    out += api("openai-mktg-image", "openai", "marketing-content", "openai_api", GPT_IMAGE_API,
               {"text input": 150, "image output": 800}, "oai-mktg-image", growth=0.05, weekend=0.3, start=date(2025, 5, 1))
    out += api("openai-mktg-gpt41", "openai", "marketing-content", "openai_api", GPT41_API,
               {"input": 200, "output": 400}, "oai-mktg-text", growth=0.05, weekend=0.3, start=date(2025, 5, 1))
    out += api("openai-sales-gpt4omini", "openai", "sales-assist", "openai_api", GPT4OMINI_API,
               {"input": 100, "output": 200}, "oai-sales", growth=0.03, weekend=0.1)
    out += api("anthropic-support-sonnet35", "anthropic", "Support agents", "claude_api", SONNET35_API,
               {"input": 1500, "output": 2800, "cache read": 200, "cache write": 250}, "ant-support", end=API_MIGRATION_END, **support)
    out += api("anthropic-support-sonnet4", "anthropic", "Support agents", "claude_api", SONNET4_API,
               {"input": 1500, "output": 2800, "cache read": 200, "cache write": 250}, "ant-support", start=API_SWITCH, **support)
    out += [dataclasses.replace(s, pattern="bursty") for s in
            api("anthropic-research-opus4", "anthropic", "Research evals", "claude_api", OPUS4_API,
                {"input": 600, "output": 1200}, "ant-evals", growth=0.02, start=date(2025, 5, 22))]  # fmt: skip
    out += api("anthropic-product-haiku35", "anthropic", "Product chat", "claude_api", HAIKU35_API,
               {"input": 300, "output": 600}, "ant-product", growth=0.05, weekend=0.6)
    return out


SERIES: list[Series] = _series()

# The Compute Savings Plan the platform team bought for the whole organisation.
SAVINGS_PLAN_START = date(2025, 6, 1)
SAVINGS_PLAN_HOURLY = "28"
SAVINGS_PLAN_ACCOUNT = "larkspur-data-platform"
SAVINGS_PLAN_ID = "arn:aws:savingsplans::311482930040:savingsplan/7e3c1f52-9a0b-4c6d-8e21-5f4a3b2c1d0e"
SAVINGS_PLAN_NAME = "Compute Savings Plan, 3 years, No Upfront"
AWS_TAX_RATE = "0.06"


@dataclasses.dataclass(frozen=True)
class Credit:
    provider: Provider
    account: str
    day: date
    amount: str  # negative: money back
    service: str
    description: str
    workload: Workload
    restated_only: bool = False  # added by AWS 2026-08's restatement
    applies_to: str | None = None  # SKU descriptions starting so carry it where a credit rides on usage (Google Cloud)


CREDITS = (
    Credit("gcp", "Larkspur Product Serving", date(2025, 7, 15), "-3000.00", "vertex",
           "Promotional credit: Gemini API launch offer", "inference", applies_to="Gemini"),
    Credit("aws", "larkspur-research", date(2026, 8, 31), "-1850.00", "sagemaker",
           "AWS Service Level Agreement credit for Amazon SageMaker training (2026-08)", "training", restated_only=True),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Anomaly:
    series: tuple[str, ...]
    days: tuple[date, ...]
    factors: tuple[float, ...]
    description: str


ANOMALY = Anomaly(
    ("azure-support-gpt4o-in", "azure-support-gpt4o-out"),
    (date(2026, 8, 12), date(2026, 8, 13)),
    (5.5, 6.5),
    "Customer Support's ticket agent looped on retries against Azure OpenAI gpt-4o",
)

RESTATED_MONTH = "2026-08"
DOUBLE_METERED = ("aws-product-endpoint", (date(2026, 8, 18), date(2026, 8, 20)))
"""The first delivery of AWS 2026-08 metered these endpoint hours twice on these days (inclusive)."""


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


DeliveryKind = Literal["focus", "aws-cur", "gcp-export", "azure"]
"""How a delivery is loaded: ``focus`` by connectors.focus, ``aws-cur`` by connectors.aws_cur,
``gcp-export`` by connectors.gcp_billing.ingest_export, ``azure`` by connectors.azure."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """Files a provider delivered together, to be ingested in one call, in list order.

    ``files`` are the data files (manifests excluded). ``root`` is what a directory-reading
    connector is given instead of a file list: for ``aws-cur`` the export root
    (``<prefix>/<export-name>``, holding ``data/`` and ``metadata/``), for ``azure`` the
    storage container's root (manifest ``blobName`` values are relative to it), for
    ``gcp-export`` the folder of the exported months; ``None`` for ``focus``.
    """

    label: str
    files: list[Path]
    kind: DeliveryKind = "focus"
    root: Path | None = None


@dataclasses.dataclass(frozen=True)
class SampleCompany:
    """What :func:`generate` wrote: deliveries in ingest order, the ground truth and the config.

    ``deliveries`` are the FOCUS files of every provider (the AWS 2026-08 restatement last).
    ``native_deliveries`` are the same spend as the providers' own exports, in load order:
    AWS CUR 2.0 with 2026-08 as first delivered, the Google Cloud billing export, the Azure
    actual and amortized cost exports, OpenAI and Anthropic (FOCUS: they have no other
    export), and last the AWS CUR 2.0 export of every month with 2026-08 restated, which
    must replace the first delivery.
    """

    out_dir: Path
    deliveries: list[Delivery]
    ground_truth_path: Path
    config_path: Path
    native_deliveries: list[Delivery] = dataclasses.field(default_factory=list)

    def ground_truth(self) -> dict[str, Any]:
        return json.loads(self.ground_truth_path.read_text(encoding="utf-8"))


OUTPUT_FOLDERS = ("focus", "aws", "gcp", "azure")
"""Folders :func:`generate` owns under its output directory: deleted and written anew each run."""


LOCK_FILE = ".finops-demo.lock"


@contextlib.contextmanager
def output_lock(
    out_dir: Path, *, timeout: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold ``out_dir`` for one demo run: generate deletes and rewrites its folders, and the loads read them.

    Two ``finops demo`` runs writing the same folder at once would delete each other's files
    mid-load (seen on a busy machine: "No such file or directory" half-way). The second run
    waits for the first (``on_wait`` is told who holds it, once) and raises
    :class:`FolderBusyError` after ``timeout`` seconds. The lock is an advisory ``flock`` on
    ``out_dir/.finops-demo.lock``, released by the kernel if its holder dies.
    """
    if sys.platform == "win32":  # no flock; one demo at a time is then up to the user
        yield
        return
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
                if not told and on_wait is not None:
                    on_wait(f"{out_dir} is being written by {holder}")
                    told = True
                if time.monotonic() >= deadline:
                    raise FolderBusyError(
                        f"{out_dir} is being written by {holder}; waited {timeout:g}s for it",
                        hint="let that run finish, or give this one its own folder with --out DIR",
                    ) from None
                time.sleep(0.5)
        command = " ".join(" ".join(sys.argv).split())[:120]
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({command})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def generate(out_dir: Path, seed: int = SEED) -> SampleCompany:
    """Write the sample company's exports, ground truth and config under ``out_dir``.

    Parameters
    ----------
    out_dir
        Directory to write into (``data/sample`` for ``finops demo``). Its ``focus/``,
        ``aws/``, ``gcp/`` and ``azure/`` folders are deleted first, so a rerun leaves no
        stale files.
    seed
        Seed of the random noise, bursts and jobs. The same seed gives the same bytes.

    Returns
    -------
    SampleCompany
        The FOCUS deliveries and the native-export deliveries, each in the order to ingest
        them (the AWS 2026-08 restatement last), ``ground_truth.json`` and ``finops.toml`` paths.
    """
    out_dir = Path(out_dir)
    for folder in OUTPUT_FOLDERS:
        if (out_dir / folder).exists():
            shutil.rmtree(out_dir / folder)
    focus_dir = out_dir / "focus"
    focus_dir.mkdir(parents=True)

    rng = np.random.default_rng(seed)
    usage, expected = _usage(rng)
    frames = {p: usage.filter(pl.col("_provider") == p) for p in PROVIDERS}
    frames["aws"] = _apply_savings_plan(frames["aws"])
    frames = {p: pl.concat([f, _credits(p)], how="diagonal_relaxed") for p, f in frames.items()}
    first_aws = _finish(_with_tax(_first_delivery(frames["aws"])))
    frames["aws"] = _with_tax(frames["aws"].filter(~pl.col("_first_delivery_only")))
    frames = {p: _finish(f) for p, f in frames.items()}

    deliveries: list[Delivery] = []
    for provider in PROVIDERS:
        frame = frames[provider]
        if provider == "aws":
            frame = pl.concat([frame.filter(pl.col("_month") != RESTATED_MONTH), first_aws], how="diagonal_relaxed")
        account = BILLING_ACCOUNTS[provider]
        paths = _write_months(frame, focus_dir / provider, account)
        months = sorted(frame["_month"].unique())
        label = f"{account.provider_name} FOCUS {account.focus_version} export ({_format_label(account)}), {months[0]}..{months[-1]}"
        if provider == "aws":
            label += f" ({RESTATED_MONTH} as first delivered)"
        deliveries.append(Delivery(label, paths))
    restated = frames["aws"].filter(pl.col("_month") == RESTATED_MONTH)
    restated_paths = _write_months(restated, focus_dir / "aws-restated", BILLING_ACCOUNTS["aws"])
    deliveries.append(Delivery(f"AWS {RESTATED_MONTH} restated after close (FOCUS 1.2, Parquet)", restated_paths))

    aws_original, aws_final, aws_truth = _write_aws_cur(out_dir, frames["aws"], first_aws)
    gcp_delivery, gcp_truth = _write_gcp_export(out_dir, frames["gcp"])
    azure_delivery, azure_truth = _write_azure_exports(out_dir, frames["azure"])
    by_provider = dict(zip(PROVIDERS, deliveries, strict=False))
    native = [aws_original, gcp_delivery, azure_delivery, by_provider["openai"], by_provider["anthropic"], aws_final]

    truth = _ground_truth(seed, frames, first_aws, expected)
    truth["native_exports"] = {
        "load_order": [{"label": d.label, "kind": d.kind, "root": _relative(d.root, out_dir)} for d in native],
        "aws": aws_truth,
        "gcp": gcp_truth,
        "azure": azure_truth,
    }
    ground_truth_path = out_dir / "ground_truth.json"
    ground_truth_path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    config_path = out_dir / "finops.toml"
    config_path.write_text(config_toml(), encoding="utf-8")
    return SampleCompany(out_dir, deliveries, ground_truth_path, config_path, native)


# --------------------------------------------------------------------------------------
# Usage rows
# --------------------------------------------------------------------------------------


def _days() -> np.ndarray:
    return np.arange(np.datetime64(START), np.datetime64(END) + np.timedelta64(1, "D"), dtype="datetime64[D]")


def _stable_id(*parts: str, length: int = 17) -> str:
    """An id that depends only on its parts (EC2 instance ids and the like)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _jobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Training bursts: (intensity per day, 0 when idle; index of the day its job started, -1 when idle)."""
    intensity = np.zeros(n)
    job_start = np.full(n, -1)
    day = int(rng.integers(0, 8))
    while day < n:
        length = int(rng.integers(2, 10))
        intensity[day : day + length] = rng.lognormal(0.0, 0.35)
        job_start[day : day + length] = day
        day += length + int(rng.integers(2, 13))
    active = intensity > 0
    intensity[active] /= intensity[active].mean() * active.mean()  # keep the long-run average at 1
    return intensity, job_start


def _usage(rng: np.random.Generator) -> tuple[pl.DataFrame, dict[tuple[str, date], int]]:
    """Daily usage rows of every series (first-delivery-only ones included), and the anomaly's baseline.

    Returns the rows and ``{(series, day): effective micro-dollars without the anomaly}``.
    """
    days = _days()
    n = len(days)
    t = np.arange(n, dtype=float)
    weekday = (days.astype("int64") + 3) % 7  # 0 = Monday
    shapes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    frames = []
    for series in SERIES:
        key = series.traffic or series.key
        if key not in shapes:
            noise = rng.lognormal(-0.5 * series.noise**2, series.noise, n) if series.noise else np.ones(n)
            intensity, job_start = _jobs(rng, n) if series.pattern == "bursty" else (np.ones(n), np.zeros(n, dtype=int))
            shapes[key] = (noise, intensity, job_start)
        noise, intensity, job_start = shapes[key]
        frames.append(_series_frame(series, days, t, weekday, noise * intensity, job_start, rng))
    usage = pl.concat(frames, how="vertical")
    usage = _price(usage)

    # The runaway agent: same rows, more tokens.
    expected: dict[tuple[str, date], int] = {}
    hit = pl.col("_series").is_in(ANOMALY.series) & pl.col("_day").is_in(ANOMALY.days)
    for row in usage.filter(hit).select("_series", "_day", "_effective").iter_rows():
        expected[(row[0], row[1])] = expected.get((row[0], row[1]), 0) + row[2]
    factor = pl.lit(1.0)
    for day, f in zip(ANOMALY.days, ANOMALY.factors, strict=True):
        factor = pl.when(hit & (pl.col("_day") == day)).then(pl.lit(f)).otherwise(factor)
    usage = _price(usage.with_columns(_qty=_round_qty(pl.col("_qty").cast(pl.Float64) * factor, pl.col("_step"))))
    return usage, expected


def _series_frame(
    s: Series,
    days: np.ndarray,
    t: np.ndarray,
    weekday: np.ndarray,
    shape: np.ndarray,
    job_start: np.ndarray,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """The rows of one series: one per day and replica while it runs."""
    n = len(days)
    price = float(s.sku.list_price)
    in_life = (days >= np.datetime64(s.start)) & (days <= np.datetime64(s.end))
    replicas = s.replicas
    if s.pattern == "always_on":
        qty = np.full((replicas, n), 24.0)
    else:
        level = s.monthly / DAYS_PER_MONTH * (1 + s.growth) ** (t / DAYS_PER_MONTH)
        week = np.where(weekday >= 5, s.weekend, 1.0) * 7 / (5 + 2 * s.weekend)
        fleet = level * week * shape / price * in_life
        if s.machine:  # enough machines that none runs more than ~20 hours on its busiest day
            replicas = max(replicas, int(np.ceil(fleet.max() / 20)))
        own_noise = rng.lognormal(-0.5 * 0.03**2, 0.03, (replicas, n))
        qty = fleet / replicas * own_noise
        if s.machine:
            qty = np.minimum(qty, 24.0)
    if replicas > 1 and not ("{i}" in s.resource_id or "{iid}" in s.resource_id):
        raise AssertionError(f"{s.key}: {replicas} replicas need {{i}} or {{iid}} in the resource id")
    qty = np.where(in_life, qty, 0.0)
    step = s.sku.step
    qty_micro = (np.rint(qty * MICRO / step) * step).astype(np.int64)

    sub = s.sub_account
    department = allocate(sub.id, s.tags)
    owner = s.owner or department
    if owner == UNALLOCATED:
        raise AssertionError(f"{s.key}: maps to no department; name its owner")
    parts = []
    for i in range(replicas):
        number = f"{i + 1:02d}"
        fill = {"i": number, "iid": "i-0" + _stable_id(s.key, number, length=16)}
        parts.append(
            pl.DataFrame(
                {
                    "_day": days.astype("datetime64[D]"),
                    "_qty": qty_micro[i],
                    "_job": job_start,
                }
            ).with_columns(
                _resource_id=pl.lit(s.resource_id.format(**fill)),
                _resource_name=pl.lit(s.resource_name.format(**fill)),
            )
        )
    frame = pl.concat(parts).filter(pl.col("_qty") > 0)
    if s.per_job:  # a training job per burst, named by the day it started
        job_day = pl.lit(START) + pl.duration(days=pl.col("_job"))
        frame = frame.with_columns(
            _resource_id=pl.col("_resource_id") + job_day.dt.strftime("%Y%m%d"),
            _resource_name=pl.col("_resource_name") + pl.lit("-") + job_day.dt.strftime("%Y%m%d"),
        )
    svc = SERVICES[s.service]
    account = BILLING_ACCOUNTS[s.provider]
    contracted = Decimal(s.sku.list_price) * Decimal(account.contract_discount)
    billed_price = contracted * Decimal(str(s.spot)) if s.spot else contracted
    return frame.drop("_job").with_columns(
        _provider=pl.lit(s.provider),
        _series=pl.lit(s.key),
        _workload=pl.lit(s.workload),
        _owner=pl.lit(owner),
        _department=pl.lit(department),
        _first_delivery_only=pl.lit(s.first_delivery_only),
        _step=pl.lit(step, dtype=pl.Int64),
        _per_unit=pl.lit(s.sku.per_unit, dtype=pl.Int64),
        _list_price=pl.lit(_dec_str(Decimal(s.sku.list_price))),
        _contracted_price=pl.lit(_dec_str(contracted)),
        _billed_price=pl.lit(_dec_str(billed_price)),
        _sp_rate=pl.lit(s.sp_rate, dtype=pl.Float64),
        SubAccountId=pl.lit(sub.id),
        SubAccountName=pl.lit(sub.name),
        SubAccountType=pl.lit(sub.type),
        ChargeCategory=pl.lit("Usage"),
        ChargeFrequency=pl.lit("Usage-Based"),
        ChargeDescription=pl.lit(s.sku.description),
        PricingCategory=pl.lit("Dynamic" if s.spot else "Standard"),
        ServiceName=pl.lit(svc.name),
        ServiceCategory=pl.lit(svc.category),
        ServiceSubcategory=pl.lit(svc.subcategory),
        PublisherName=pl.lit(svc.publisher or account.provider_name),
        ResourceType=pl.lit(s.resource_type),
        RegionId=pl.lit(s.region, dtype=pl.String),
        RegionName=pl.lit(REGIONS.get(s.region or ""), dtype=pl.String),
        SkuId=pl.lit(_sku_id(s.provider, s.sku)),
        SkuPriceId=pl.lit(_sku_id(s.provider, s.sku, price=True)),
        SkuMeter=pl.lit(s.sku.meter, dtype=pl.String),
        SkuPriceDetails=pl.lit(json.dumps(s.sku.details) if s.sku.details else None, dtype=pl.String),
        PricingUnit=pl.lit(s.sku.pricing_unit),
        ConsumedUnit=pl.lit(s.sku.consumed_unit),
        Tags=pl.lit(json.dumps(s.tags)),
        x_ServiceCode=pl.lit(svc.code, dtype=pl.String),
        x_UsageType=pl.lit(s.sku.x.get("x_UsageType"), dtype=pl.String),
        x_Operation=pl.lit(s.sku.x.get("x_Operation"), dtype=pl.String),
        x_SkuMeterCategory=pl.lit(s.sku.x.get("x_SkuMeterCategory"), dtype=pl.String),
        x_SkuMeterSubcategory=pl.lit(s.sku.x.get("x_SkuMeterSubcategory"), dtype=pl.String),
        x_SkuMeterName=pl.lit(s.sku.x.get("x_SkuMeterName"), dtype=pl.String),
        x_ResourceGroupName=pl.lit(_resource_group(s.resource_id), dtype=pl.String),
    )


def _sku_id(provider: Provider, sku: Sku, *, price: bool = False) -> str:
    """Provider-looking SKU ids, stable for a SKU."""
    digest = _stable_id(provider, sku.key, length=24).upper()
    if provider == "aws":
        base = digest[:16]
        return f"{base}.JRTCKXETXF.6YS6EN2CT7" if price else base
    if provider == "gcp":
        base = f"{digest[:4]}-{digest[4:8]}-{digest[8:12]}"
        return f"{base}-USD" if price else base
    if provider == "azure":
        base = f"DZH318Z0{digest[:4]}/{digest[4:8]}"
        return f"{base}/{digest[8:12]}" if price else base
    base = (sku.meter or sku.description).replace(" ", "-")
    return f"{base}:list" if price else base


def _resource_group(resource_id: str) -> str | None:
    if "/resourceGroups/" not in resource_id:
        return None
    return resource_id.split("/resourceGroups/")[1].split("/")[0]


def _round_qty(qty_micro: pl.Expr, step: pl.Expr) -> pl.Expr:
    return ((qty_micro / step).round(0) * step).cast(pl.Int64)


def _money(qty_micro: pl.Expr, price: pl.Expr) -> pl.Expr:
    """Micro-dollars of a quantity (in millionths) at a decimal-text price, rounded to the micro-dollar."""
    return (qty_micro.cast(pl.Float64) * price.cast(pl.Float64)).round(0).cast(pl.Int64)


def _price(frame: pl.DataFrame) -> pl.DataFrame:
    """Costs of usage rows from their quantity and prices (all as integer micro-dollars)."""
    return frame.with_columns(
        _consumed=pl.col("_qty") * pl.col("_per_unit"),
        _list=_money(pl.col("_qty"), pl.col("_list_price")),
        _contracted=_money(pl.col("_qty"), pl.col("_contracted_price")),
        _billed=_money(pl.col("_qty"), pl.col("_billed_price")),
        _effective=_money(pl.col("_qty"), pl.col("_billed_price")),
    )


def _apply_savings_plan(aws: pl.DataFrame) -> pl.DataFrame:
    """Cover EC2 usage with the Compute Savings Plan, deepest discount first, up to the daily commitment.

    Covered rows are billed 0 and cost their Savings Plan rate in EffectiveCost; each day's
    recurring fee row bills the commitment and its EffectiveCost is the part left unused.
    """
    daily = int(Decimal(SAVINGS_PLAN_HOURLY) * 24 * MICRO)
    aws = aws.with_row_index("_row")
    eligible = pl.col("_sp_rate").is_not_null() & (pl.col("_day") >= SAVINGS_PLAN_START) & ~pl.col("_first_delivery_only")
    ranked = (
        aws.filter(eligible)
        .with_columns(_sp_cost=(pl.col("_list").cast(pl.Float64) * pl.col("_sp_rate")).round(0).cast(pl.Int64))
        .sort("_day", "_sp_rate", "_resource_id", "_series")
        .with_columns(_cum=pl.col("_sp_cost").cum_sum().over("_day"))
        .filter(pl.col("_cum") <= daily)
        .select("_row", "_sp_cost")
    )
    aws = aws.join(ranked, on="_row", how="left").sort("_row").drop("_row")
    covered = pl.col("_sp_cost").is_not_null()
    aws = aws.with_columns(
        _billed=pl.when(covered).then(0).otherwise(pl.col("_billed")),
        _effective=pl.when(covered).then(pl.col("_sp_cost")).otherwise(pl.col("_effective")),
        PricingCategory=pl.when(covered).then(pl.lit("Committed")).otherwise(pl.col("PricingCategory")),
        CommitmentDiscountId=pl.when(covered).then(pl.lit(SAVINGS_PLAN_ID)),
        CommitmentDiscountName=pl.when(covered).then(pl.lit(SAVINGS_PLAN_NAME)),
        CommitmentDiscountCategory=pl.when(covered).then(pl.lit("Spend")),
        CommitmentDiscountType=pl.when(covered).then(pl.lit("Savings Plan")),
        CommitmentDiscountStatus=pl.when(covered).then(pl.lit("Used")),
        CommitmentDiscountUnit=pl.when(covered).then(pl.lit(CURRENCY)),
        _commitment_qty=pl.when(covered).then(pl.col("_sp_cost")),
    ).drop("_sp_cost")

    used = aws.filter(pl.col("CommitmentDiscountId").is_not_null()).group_by("_day").agg(_used=pl.col("_effective").sum())
    sp_days = pl.DataFrame({"_day": _days()}).filter(pl.col("_day") >= SAVINGS_PLAN_START)
    sub = SUB_ACCOUNTS[SAVINGS_PLAN_ACCOUNT]
    svc = SERVICES["savings_plans"]
    hourly = _dec_str(Decimal(SAVINGS_PLAN_HOURLY))
    fees = (
        sp_days.join(used, on="_day", how="left")
        .with_columns(pl.col("_used").fill_null(0))
        .select(
            "_day",
            _provider=pl.lit("aws"),
            _series=pl.lit("aws-savings-plan"),
            _workload=pl.lit("non-AI"),
            _owner=pl.lit(sub.department),
            _department=pl.lit(sub.department),
            _first_delivery_only=pl.lit(False),
            _qty=pl.lit(24 * MICRO, dtype=pl.Int64),
            _consumed=pl.lit(24 * MICRO, dtype=pl.Int64),
            _list_price=pl.lit(hourly),
            _contracted_price=pl.lit(hourly),
            _list=pl.lit(daily, dtype=pl.Int64),
            _contracted=pl.lit(daily, dtype=pl.Int64),
            _billed=pl.lit(daily, dtype=pl.Int64),
            _effective=pl.lit(daily, dtype=pl.Int64) - pl.col("_used"),
            _commitment_qty=pl.lit(daily, dtype=pl.Int64),
            _resource_id=pl.lit(SAVINGS_PLAN_ID),
            _resource_name=pl.lit(SAVINGS_PLAN_NAME),
            SubAccountId=pl.lit(sub.id),
            SubAccountName=pl.lit(sub.name),
            SubAccountType=pl.lit(sub.type),
            ChargeCategory=pl.lit("Purchase"),
            ChargeFrequency=pl.lit("Recurring"),
            ChargeDescription=pl.lit(f"{SAVINGS_PLAN_NAME}: ${SAVINGS_PLAN_HOURLY} hourly commitment"),
            ServiceName=pl.lit(svc.name),
            ServiceCategory=pl.lit(svc.category),
            ServiceSubcategory=pl.lit(svc.subcategory),
            PublisherName=pl.lit("AWS"),
            ResourceType=pl.lit("SavingsPlan"),
            RegionId=pl.lit(None, dtype=pl.String),
            SkuId=pl.lit("SavingsPlanRecurringFee"),
            SkuPriceId=pl.lit("SavingsPlanRecurringFee:3yr:NoUpfront"),
            SkuMeter=pl.lit("ComputeSP:3yrNoUpfront"),
            PricingUnit=pl.lit("Hours"),
            ConsumedUnit=pl.lit("Hours"),
            Tags=pl.lit("{}"),
            CommitmentDiscountId=pl.lit(SAVINGS_PLAN_ID),
            CommitmentDiscountName=pl.lit(SAVINGS_PLAN_NAME),
            CommitmentDiscountCategory=pl.lit("Spend"),
            CommitmentDiscountType=pl.lit("Savings Plan"),
            CommitmentDiscountUnit=pl.lit(CURRENCY),
            x_ServiceCode=pl.lit(svc.code),
            x_UsageType=pl.lit("ComputeSP:3yrNoUpfront"),
            x_Operation=pl.lit("SavingsPlanRecurringFee"),
        )
    )
    return pl.concat([aws, fees], how="diagonal_relaxed")


def _credits(provider: Provider) -> pl.DataFrame:
    """One-time credit rows of ``provider``, as finally billed (restatement credits included)."""
    rows = []
    for c in CREDITS:
        if c.provider != provider:
            continue
        sub = SUB_ACCOUNTS[c.account]
        svc = SERVICES[c.service]
        amount = int(Decimal(c.amount) * MICRO)
        rows.append(
            {
                "_day": c.day,
                "_provider": provider,
                "_series": f"{provider}-credit-{c.day.isoformat()}",
                "_workload": c.workload,
                "_owner": sub.department or UNALLOCATED,
                "_department": sub.department or UNALLOCATED,
                "_first_delivery_only": False,
                "_restated_only": c.restated_only,
                "_list": amount,
                "_contracted": amount,
                "_billed": amount,
                "_effective": amount,
                "SubAccountId": sub.id,
                "SubAccountName": sub.name,
                "SubAccountType": sub.type,
                "ChargeCategory": "Credit",
                "ChargeFrequency": "One-Time",
                "ChargeDescription": c.description,
                "ServiceName": svc.name,
                "ServiceCategory": svc.category,
                "ServiceSubcategory": svc.subcategory,
                "PublisherName": BILLING_ACCOUNTS[provider].provider_name,
                "Tags": "{}",
                "x_ServiceCode": svc.code,
            }
        )
    schema = {"_day": pl.Date, "_list": pl.Int64, "_contracted": pl.Int64, "_billed": pl.Int64, "_effective": pl.Int64}
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema_overrides=schema)


def _first_delivery(aws: pl.DataFrame) -> pl.DataFrame:
    """AWS 2026-08 as first delivered: endpoint hours metered twice, a deleted notebook billed, no credit."""
    month = aws.filter(pl.col("_day").dt.strftime("%Y-%m") == RESTATED_MONTH)
    series, (first, last) = DOUBLE_METERED
    doubled = (pl.col("_series") == series) & pl.col("_day").is_between(first, last)
    month = month.filter(~pl.col("_restated_only").fill_null(False)).with_columns(
        _qty=pl.when(doubled).then(pl.col("_qty") * 2).otherwise(pl.col("_qty"))
    )
    return pl.concat([month.filter(~doubled), _price(month.filter(doubled))]).sort("_day", "_series", "_resource_id")


def _with_tax(aws: pl.DataFrame) -> pl.DataFrame:
    """Add a tax row per department-owned AWS account and month: AWS_TAX_RATE of its billed usage and fees."""
    rate = float(AWS_TAX_RATE)
    owned = {s.id: s for s in SUB_ACCOUNTS.values() if s.provider == "aws" and s.department}
    base = (
        aws.filter(pl.col("SubAccountId").is_in(list(owned)) & pl.col("ChargeCategory").is_in(["Usage", "Purchase"]))
        .with_columns(_month_start=pl.col("_day").dt.truncate("1mo"))
        .group_by("SubAccountId", "_month_start")
        .agg(_base=pl.col("_billed").sum())
        .sort("SubAccountId", "_month_start")
    )
    svc = SERVICES["aws_tax"]
    tax = base.select(
        _day=pl.col("_month_start"),
        _period=pl.lit("month"),
        _provider=pl.lit("aws"),
        _series=pl.lit("aws-tax"),
        _workload=pl.lit("non-AI"),
        _owner=pl.col("SubAccountId").replace_strict({k: v.department for k, v in owned.items()}),
        _department=pl.col("SubAccountId").replace_strict({k: v.department for k, v in owned.items()}),
        _first_delivery_only=pl.lit(False),
        _list=(pl.col("_base").cast(pl.Float64) * rate).round(0).cast(pl.Int64),
        SubAccountId=pl.col("SubAccountId"),
        SubAccountName=pl.col("SubAccountId").replace_strict({k: v.name for k, v in owned.items()}),
        SubAccountType=pl.lit("Linked Account"),
        ChargeCategory=pl.lit("Tax"),
        ChargeFrequency=pl.lit("Recurring"),
        ChargeDescription=pl.format("Sales tax ({}%) for billing period {}", pl.lit("6"), pl.col("_month_start").dt.strftime("%Y-%m")),
        ServiceName=pl.lit(svc.name),
        ServiceCategory=pl.lit(svc.category),
        ServiceSubcategory=pl.lit(svc.subcategory),
        PublisherName=pl.lit("AWS"),
        Tags=pl.lit("{}"),
        x_UsageType=pl.lit("Tax"),
    ).with_columns(_contracted=pl.col("_list"), _billed=pl.col("_list"), _effective=pl.col("_list"))
    return pl.concat([aws, tax], how="diagonal_relaxed")


INTERNAL_COLUMNS: dict[str, pl.DataType] = {
    "_qty": pl.Int64(),
    "_consumed": pl.Int64(),
    "_commitment_qty": pl.Int64(),
    "_list_price": pl.String(),
    "_contracted_price": pl.String(),
    "_resource_id": pl.String(),
    "_resource_name": pl.String(),
    "_period": pl.String(),
}
"""Columns some kinds of rows (tax, credits, fees) lack; NULL there."""


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    """Charge and billing periods and the columns every row needs, in a stable row order."""
    frame = frame.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in INTERNAL_COLUMNS.items() if c not in frame.columns)
    day = pl.col("_day").cast(pl.Datetime("us"))
    month_start = day.dt.truncate("1mo")
    next_month = month_start.dt.offset_by("1mo")
    is_month = pl.col("_period").fill_null("day") == "month"
    frame = frame.with_columns(
        _month=pl.col("_day").dt.strftime("%Y-%m"),
        BillingPeriodStart=month_start,
        BillingPeriodEnd=next_month,
        ChargePeriodStart=pl.when(is_month).then(month_start).otherwise(day),
        ChargePeriodEnd=pl.when(is_month).then(next_month).otherwise(day.dt.offset_by("1d")),
    )
    return frame.sort("_day", "SubAccountId", "_series", "_resource_id", "ChargeCategory", nulls_last=True, maintain_order=True)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------

FOCUS_1_0 = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
)  # fmt: skip
FOCUS_ADDED = {
    "1.1": ("CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountQuantity",
            "CommitmentDiscountUnit", "ServiceSubcategory", "SkuMeter", "SkuPriceDetails"),
    "1.2": ("BillingAccountType", "InvoiceId", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
            "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "SubAccountType"),
    "1.3": ("AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName",
            "AllocatedTags", "ContractApplied", "HostProviderName", "ServiceProviderName"),
}  # fmt: skip
PROVIDER_X_COLUMNS: dict[Provider, tuple[str, ...]] = {
    "aws": ("x_ServiceCode", "x_UsageType", "x_Operation"),
    "gcp": (),
    "azure": ("x_SkuMeterCategory", "x_SkuMeterSubcategory", "x_SkuMeterName", "x_ResourceGroupName"),
    "openai": (),
    "anthropic": (),
}
MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingCurrencyEffectiveCost")
PRICE_COLUMNS = ("ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice")
QUANTITY_COLUMNS = ("PricingQuantity", "ConsumedQuantity", "CommitmentDiscountQuantity")
TIMESTAMP_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")


def focus_columns(version: str) -> list[str]:
    """The FOCUS columns of ``version`` ("1.0" … "1.3"), sorted by name."""
    columns = list(FOCUS_1_0)
    for added_in, added in FOCUS_ADDED.items():
        if added_in <= version:
            columns += added
    return sorted(columns)


def _micro_decimal(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Decimal(38, 0)) * pl.lit(Decimal("0.000001"), dtype=pl.Decimal(38, 6))


def _focus_frame(frame: pl.DataFrame, account: BillingAccount) -> pl.DataFrame:
    """The FOCUS columns of ``account``'s version (plus its x_ columns), typed for writing."""
    is_usage = pl.col("ChargeCategory") == "Usage"
    has_qty = pl.col("_qty").is_not_null()
    money = {
        "BilledCost": "_billed",
        "EffectiveCost": "_effective",
        "ListCost": "_list",
        "ContractedCost": "_contracted",
        "PricingCurrencyEffectiveCost": "_effective",
    }
    full = frame.with_columns(
        **{name: _micro_decimal(src) for name, src in money.items()},
        PricingQuantity=pl.when(has_qty).then(_micro_decimal("_qty")),
        ConsumedQuantity=pl.when(has_qty & is_usage).then(_micro_decimal("_consumed")),
        CommitmentDiscountQuantity=_micro_decimal("_commitment_qty"),
        ListUnitPrice=pl.col("_list_price").cast(pl.Decimal(38, 10)),
        ContractedUnitPrice=pl.col("_contracted_price").cast(pl.Decimal(38, 10)),
        PricingCurrencyListUnitPrice=pl.col("_list_price").cast(pl.Decimal(38, 10)),
        PricingCurrencyContractedUnitPrice=pl.col("_contracted_price").cast(pl.Decimal(38, 10)),
        ConsumedUnit=pl.when(has_qty & is_usage).then(pl.col("ConsumedUnit")),
        PricingUnit=pl.when(has_qty).then(pl.col("PricingUnit")),
        BillingAccountId=pl.lit(account.id),
        BillingAccountName=pl.lit(account.name),
        BillingAccountType=pl.lit(account.type),
        BillingCurrency=pl.lit(CURRENCY),
        PricingCurrency=pl.lit(CURRENCY),
        ProviderName=pl.lit(account.provider_name),
        ServiceProviderName=pl.lit(account.provider_name),
        HostProviderName=pl.lit(account.provider_name),
        InvoiceIssuerName=pl.lit(account.invoice_issuer),
        InvoiceId=pl.format("{}-{}", pl.lit(account.provider.upper()), pl.col("_day").dt.strftime("%Y%m"))
        + pl.lit("-" + account.id[-6:]),
        ResourceId=pl.col("_resource_id"),
        ResourceName=pl.col("_resource_name"),
        AvailabilityZone=pl.when((pl.col("ResourceType") == "Instance") & pl.lit(account.provider == "aws"))
        .then(pl.col("RegionId") + pl.lit("a"))
        .otherwise(None),
        RegionName=pl.col("RegionId").replace_strict(REGIONS, default=None, return_dtype=pl.String),
    )
    columns = focus_columns(account.focus_version) + list(PROVIDER_X_COLUMNS[account.provider])
    missing = [c for c in columns if c not in full.columns]
    full = full.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)
    return full.select(columns)


def _format_label(account: BillingAccount) -> str:
    return {"parquet": "Parquet", "csv.gz": "gzip CSV", "csv": "CSV"}[account.file_format]


def _write_months(frame: pl.DataFrame, folder: Path, account: BillingAccount) -> list[Path]:
    """One file per billing period, ``folder/billing_period=YYYY-MM/part-0.<ext>``."""
    paths = []
    for month in sorted(frame["_month"].unique()):
        data = _focus_frame(frame.filter(pl.col("_month") == month), account)
        path = folder / f"billing_period={month}" / f"part-0.{account.file_format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if account.file_format == "parquet":
            data.with_columns(pl.col(c).dt.replace_time_zone("UTC") for c in TIMESTAMP_COLUMNS).write_parquet(
                path, compression="zstd", statistics=False
            )
        else:
            text = data.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ")
            if account.file_format == "csv.gz":
                buffer = io.BytesIO()
                with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:  # mtime 0: same bytes every run
                    gz.write(text.encode("utf-8"))
                path.write_bytes(buffer.getvalue())
            else:
                path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------
# Native exports: the same spend as each cloud's own billing export writes it
# --------------------------------------------------------------------------------------
#
# Each native export expresses exactly the ground truth's monthly billed and effective cost,
# by the documented rules of its format (see ../shared/FORMATS.md and the tests):
#
# * AWS CUR 2.0: billed = sum(line_item_unblended_cost); effective = amortized cost by
#   line_item_line_item_type (SavingsPlanCoveredUsage → savings_plan_savings_plan_effective_cost,
#   SavingsPlanRecurringFee → total_commitment_to_date − used_commitment, SavingsPlanNegation → 0,
#   DiscountedUsage → reservation_effective_cost, RIFee → unused upfront + unused recurring fee,
#   anything else → unblended cost).
# * Google Cloud billing export: billed = effective = cost + sum(credits.amount).
# * Azure EA exports: billed = sum(CostInBillingCurrency) of the ActualCost export,
#   effective = the same sum of the AmortizedCost export.

AWS_BUCKET = "larkspur-billing"
AWS_PREFIX = "cur"
AWS_EXPORT_NAME = "larkspur-cur2"
AWS_EXPORT_ARN = (
    "arn:aws:bcm-data-exports:us-east-1:849302117465:export/larkspur-cur2-3f0c9a52-6b1d-4e7a-9c2f-81d5e4a7b6c3"
)
AWS_ORIGINAL_FOLDER = f"cur-{RESTATED_MONTH}-original"
"""The export as it stood after 2026-08's first delivery: a copy of s3://larkspur-billing/cur/ holding only that period."""


@dataclasses.dataclass(frozen=True)
class ReservedInstance:
    """An RDS Reserved Instance, 1 year, No Upfront: an hourly fee for every hour of its term."""

    arn: str
    start: date
    end: date  # exclusive


RESERVED_SERIES = "aws-shared-gateway-db"
"""The LLM gateway's spend-log database runs on a Reserved Instance its whole life (renewed once)."""
RESERVED_INSTANCES = (
    ReservedInstance("arn:aws:rds:us-east-1:311482930051:ri:llm-gateway-spendlogs-2024", date(2024, 10, 1), date(2025, 10, 1)),
    ReservedInstance("arn:aws:rds:us-east-1:311482930051:ri:llm-gateway-spendlogs-2025", date(2025, 10, 1), date(2026, 10, 1)),
)  # fmt: skip
RI_HOURLY_FEE = RDS_R6G_L.list_price
"""What an hour of the database costs the company (the ground truth's price): the RI's hourly fee."""
RI_PUBLIC_ON_DEMAND_RATE = "0.37"
"""The public on-demand price the RI is measured against in the CUR (the FOCUS files know no RI)."""
RI_USAGE_TYPE = "USE1-HeavyUsage:db.r6g.large"
RI_OPERATION = "CreateDBInstance:0014"

GCP_EXPORT_TABLE = "gcp_billing_export_resource_v1_01F3A2_9B7C4D_E5A610"
GCP_SERVICE_IDS = {
    "Vertex AI": ("C7E2-9256-1C43", "aiplatform.googleapis.com"),
    "Compute Engine": ("6F81-5844-456A", "compute.googleapis.com"),
    "BigQuery": ("24E6-581D-38E5", "bigquery.googleapis.com"),
    "Cloud Storage": ("95FF-2EF5-5EA1", "storage.googleapis.com"),
}
GCP_USAGE_UNITS = {  # FOCUS pricing unit → (usage.unit, usage units per pricing unit, usage.pricing_unit)
    "Hours": ("seconds", 3600, "hour"),
    "1M Tokens": ("count", 1_000_000, "1000000 count"),
    "Images": ("count", 1, "count"),
    "Tebibytes": ("tebibyte", 1, "tebibyte"),
    "Gibibyte months": ("gibibyte month", 1, "gibibyte month"),
}

AZURE_STORAGE_ACCOUNT_ID = (
    "/subscriptions/d4a7c3e2-5f16-4b89-8e0a-1c2b3d4e5f60/resourceGroups/rg-finops"
    "/providers/Microsoft.Storage/storageAccounts/lkfinopsexports"
)
AZURE_ROOT_FOLDER = "exports"
AZURE_EXPORTS = {"ActualCost": "larkspur-ea-actual-cost", "AmortizedCost": "larkspur-ea-amortized-cost"}
AZURE_DATA_VERSION = "2021-10-01"
AZURE_API_VERSION = "2023-07-01-preview"
AZURE_RESERVED_SERIES = "azure-support-search"
"""Customer Support's AI Search service runs on a 3-year reservation paid monthly."""
AZURE_RESERVATION_ORDER = "c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e5f"
AZURE_RESERVATION_ID = "5e7a9c1b-3d5f-4a7b-9c1d-2e4f6a8b0c2d"
AZURE_RESERVATION_NAME = "lk-support-search-s1"
AZURE_RESERVATION_START = date(2025, 3, 1)
AZURE_RESERVATION_TERM_MONTHS = 36
AZURE_CONSUMED_SERVICES = {
    "Azure OpenAI": "Microsoft.CognitiveServices",
    "Azure Machine Learning": "Microsoft.MachineLearningServices",
    "Azure AI Search": "Microsoft.Search",
    "Virtual Machines": "Microsoft.Compute",
    "Storage": "Microsoft.Storage",
}
AZURE_UNITS = {"Hours": "1 Hour", "GB/Month": "1 GB/Month", "1K Tokens": "1K"}

TAG_PAIRS = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))
"""A map as polars writes it before it becomes a Parquet map (or a list of {key, value} in JSON)."""


def _relative(path: Path | None, out_dir: Path) -> str | None:
    return None if path is None else path.relative_to(out_dir).as_posix()


def _stable_uuid(*parts: str) -> str:
    """A UUID-shaped id that depends only on its parts (export runs, executions)."""
    text = _stable_id(*parts, length=32)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _as_double(micros: pl.Expr) -> pl.Expr:
    """Micro-units as the double nearest to them, whose shortest text is the amount itself (12.345678).

    Dividing by 1e6 in polars is off by an ulp for many values (it multiplies by 1e-6); the
    Decimal → Float64 cast rounds correctly.
    """
    return (micros.cast(pl.Decimal(38, 0)) * pl.lit(Decimal("0.000001"), dtype=pl.Decimal(38, 6))).cast(pl.Float64)


def _decimal_text(micros: pl.Expr) -> pl.Expr:
    """Micro-units as plain decimal text without trailing zeros ("12.3", "-0.000001", "0")."""
    absolute = micros.abs()
    fraction = (absolute % MICRO).cast(pl.String).str.zfill(6).str.strip_chars_end("0")
    return (
        pl.when(micros < 0).then(pl.lit("-")).otherwise(pl.lit(""))
        + (absolute // MICRO).cast(pl.String)
        + pl.when(fraction == "").then(pl.lit("")).otherwise(pl.lit(".") + fraction)
    )


def _tag_pairs(provider: Provider, prefix: str = "") -> pl.DataFrame:
    """``_series`` → its tags as a list of {key, value} (keys prefixed), one row per tagged series."""
    series = [s for s in SERIES if s.provider == provider and s.tags]
    return pl.DataFrame(
        {
            "_series": [s.key for s in series],
            "_tag_pairs": [[{"key": prefix + k, "value": v} for k, v in s.tags.items()] for s in series],
        },
        schema={"_series": pl.String, "_tag_pairs": TAG_PAIRS},
    )


def _with_tag_pairs(frame: pl.DataFrame, provider: Provider, prefix: str = "") -> pl.DataFrame:
    return frame.join(_tag_pairs(provider, prefix), on="_series", how="left").with_columns(
        pl.col("_tag_pairs").fill_null(pl.lit([], dtype=TAG_PAIRS))
    )


def _pairs(**values: pl.Expr) -> pl.Expr:
    """A {key, value} list of the non-null values (a CUR ``product`` map)."""
    items = pl.concat_list([pl.struct(key=pl.lit(k), value=v.cast(pl.String)) for k, v in values.items()])
    return items.list.eval(pl.element().filter(pl.element().struct.field("value").is_not_null())).cast(TAG_PAIRS)


def _arrow_map(column: pa.ChunkedArray | pa.Array) -> pa.MapArray:
    """A list of {key, value} structs as an Arrow map<string, string> (Parquet MAP)."""
    pairs = pa.struct([("key", pa.string()), ("value", pa.string())])
    items = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    items = items.cast(pa.list_(pairs))
    flat = items.flatten()
    return pa.MapArray.from_arrays(items.offsets, flat.field("key"), flat.field("value"))


def _gzip_bytes(data: bytes) -> bytes:
    buffer = io.BytesIO()
    # mtime 0: the same bytes every run; level 6 (gzip's command-line default) is fast enough for CI
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buffer.getvalue()


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# -- AWS CUR 2.0 ------------------------------------------------------------------------


def _reservation_arn(day: pl.Expr) -> pl.Expr:
    arn = pl.lit(None, dtype=pl.String)
    for ri in reversed(RESERVED_INSTANCES):
        arn = pl.when(day.is_between(ri.start, ri.end, closed="left")).then(pl.lit(ri.arn)).otherwise(arn)
    return arn


def _cur_lines(aws: pl.DataFrame) -> pl.DataFrame:
    """AWS rows as CUR 2.0 line items (money still in micro-dollars).

    Savings-Plan-covered usage becomes a SavingsPlanCoveredUsage line at its on-demand cost and
    a SavingsPlanNegation line taking that cost back out; each day's Savings Plan fee a
    SavingsPlanRecurringFee line. The gateway database's hours become DiscountedUsage lines (no
    unblended cost) billed by one RIFee line a month. ``_unblended`` is what AWS bills,
    ``_amortized`` the effective cost by the line item type rule, equal to the truth's
    ``_effective`` on every line that has one.
    """
    usage = pl.col("ChargeCategory") == "Usage"
    fee = pl.col("ChargeCategory") == "Purchase"
    covered = usage & pl.col("CommitmentDiscountId").is_not_null()
    reserved = usage & (pl.col("_series") == RESERVED_SERIES)
    lines = aws.with_columns(
        _line_type=pl.when(covered)
        .then(pl.lit("SavingsPlanCoveredUsage"))
        .when(reserved)
        .then(pl.lit("DiscountedUsage"))
        .when(usage)
        .then(pl.lit("Usage"))
        .when(fee)
        .then(pl.lit("SavingsPlanRecurringFee"))
        .otherwise(pl.col("ChargeCategory")),
        _unblended=pl.when(covered).then(pl.col("_list")).when(reserved).then(0).otherwise(pl.col("_billed")),
        _rate=pl.when(covered | fee)
        .then(pl.col("_list_price"))
        .when(reserved)
        .then(pl.lit("0"))
        .otherwise(pl.col("_billed_price")),
        _public=pl.when(reserved)
        .then(_money(pl.col("_qty"), pl.lit(RI_PUBLIC_ON_DEMAND_RATE)))
        .when(usage)
        .then(pl.col("_list"))
        .otherwise(0),
        _public_rate=pl.when(reserved).then(pl.lit(RI_PUBLIC_ON_DEMAND_RATE)).when(usage).then(pl.col("_list_price")),
        _sp_effective=pl.when(covered).then(pl.col("_effective")),
        _sp_total=pl.when(fee).then(pl.col("_billed")),
        _sp_used=pl.when(fee).then(pl.col("_billed") - pl.col("_effective")),
        _ri_effective=pl.when(reserved).then(pl.col("_effective")),
        _ri_arn=pl.when(reserved).then(_reservation_arn(pl.col("_day"))),
        _amortized=pl.col("_effective"),
        _quantity=pl.col("_qty"),
    )
    sp_rates = {
        (price, rate): _dec_str(Decimal(price) * Decimal(str(rate)))
        for price, rate in lines.filter(covered).select("_list_price", "_sp_rate").unique().iter_rows()
    }
    lines = lines.with_columns(
        _sp_rate_text=pl.when(covered).then(
            pl.concat_str("_list_price", pl.col("_sp_rate").cast(pl.String), separator="|").replace_strict(
                {f"{p}|{r}": t for (p, r), t in sp_rates.items()}, default=None
            )
        )
    )
    # A negation carries no usage amount, so summing usage over all lines does not count covered hours twice.
    negations = lines.filter(pl.col("_line_type") == "SavingsPlanCoveredUsage").with_columns(
        _line_type=pl.lit("SavingsPlanNegation"),
        _unblended=-pl.col("_list"),
        _rate=pl.lit("-") + pl.col("_list_price"),
        _public=pl.lit(0, dtype=pl.Int64),
        _public_rate=pl.lit(None, dtype=pl.String),
        _sp_effective=pl.lit(None, dtype=pl.Int64),
        _amortized=pl.lit(0, dtype=pl.Int64),
        _quantity=pl.lit(0, dtype=pl.Int64),
        ChargeDescription=pl.format(
            "SavingsPlanNegation used by AccountId : {} and UsageSku : {}", pl.col("SubAccountId"), pl.col("SkuId")
        ),
    )
    ri_fees = (
        lines.filter(pl.col("_line_type") == "DiscountedUsage")
        .group_by("_month", "_series", "_ri_arn", "SubAccountId", "SubAccountName", "RegionId", "RegionName")
        .agg(
            pl.col("_billed").sum().alias("_unblended"),
            pl.col("_qty").sum().alias("_quantity"),
            pl.col("BillingPeriodStart").first(),
            pl.col("BillingPeriodEnd").first(),
            pl.col("_day").min(),
        )
        .with_columns(
            _line_type=pl.lit("RIFee"),
            _rate=pl.lit(RI_HOURLY_FEE),
            _public=pl.lit(0, dtype=pl.Int64),
            _amortized=pl.lit(0, dtype=pl.Int64),  # unused upfront + unused recurring fee: every hour was used
            _ri_unused=pl.lit(0, dtype=pl.Int64),
            _resource_id=pl.col("_ri_arn"),
            ChargeCategory=pl.lit("Purchase"),
            ChargePeriodStart=pl.col("BillingPeriodStart"),
            ChargePeriodEnd=pl.col("BillingPeriodEnd"),
            ChargeDescription=pl.lit(f"USD {RI_HOURLY_FEE} hourly fee per PostgreSQL, db.r6g.large instance"),
            ServiceName=pl.lit(SERVICES["rds"].name),
            x_ServiceCode=pl.lit(SERVICES["rds"].code),
            x_UsageType=pl.lit(RI_USAGE_TYPE),
            x_Operation=pl.lit(RI_OPERATION),
            SkuId=pl.lit(_sku_id("aws", RDS_R6G_L)),
            SkuPriceDetails=pl.lit(json.dumps(RDS_R6G_L.details)),
            PricingUnit=pl.lit("Hours"),
            ResourceType=pl.lit("ReservedInstance"),
        )
    )
    order = {"Usage": 0, "DiscountedUsage": 1, "SavingsPlanCoveredUsage": 2, "SavingsPlanNegation": 3,
             "SavingsPlanRecurringFee": 4, "RIFee": 5, "Credit": 6, "Tax": 7}  # fmt: skip
    return (
        pl.concat([lines, negations, ri_fees], how="diagonal_relaxed")
        .with_columns(_type_order=pl.col("_line_type").replace_strict(order, return_dtype=pl.Int8))
        .sort("_month", "ChargePeriodStart", "SubAccountId", "_series", "_resource_id", "_type_order",
              nulls_last=True, maintain_order=True)
        .drop("_type_order")
    )  # fmt: skip


CUR_MAP_COLUMNS = ("cost_category", "product", "resource_tags")


def _cur_frame(lines: pl.DataFrame) -> pl.DataFrame:
    """The CUR 2.0 columns of line items (maps still as {key, value} lists), in the export's order."""
    payer = BILLING_ACCOUNTS["aws"]
    money = _as_double
    is_line = pl.col("_line_type").is_in
    instance = pl.col("SkuPriceDetails").str.json_path_match("$.InstanceType")
    model = pl.col("SkuPriceDetails").str.json_path_match("$.Model")
    family = (
        pl.when(is_line(["SavingsPlanRecurringFee"]))
        .then(pl.lit("Savings Plan"))
        .when(pl.col("x_ServiceCode") == "AmazonEC2")
        .then(pl.lit("Compute Instance"))
        .when(pl.col("x_ServiceCode") == "AmazonRDS")
        .then(pl.lit("Database Instance"))
        .when(pl.col("x_ServiceCode") == "AmazonS3")
        .then(pl.lit("Storage"))
        .when(pl.col("x_ServiceCode") == "AmazonSageMaker")
        .then(pl.lit("ML Instance"))
        .when(pl.col("x_ServiceCode") == "AmazonBedrock")
        .then(pl.lit("Generative AI"))
    )
    sp = is_line(["SavingsPlanCoveredUsage", "SavingsPlanNegation", "SavingsPlanRecurringFee"])
    sp_fee = is_line(["SavingsPlanRecurringFee"])
    ri = is_line(["DiscountedUsage", "RIFee"])
    ri_start = pl.lit(None, dtype=pl.String)
    ri_end = pl.lit(None, dtype=pl.String)
    for r in RESERVED_INSTANCES:
        ri_start = pl.when(pl.col("_ri_arn") == r.arn).then(pl.lit(f"{r.start.isoformat()}T00:00:00Z")).otherwise(ri_start)
        ri_end = pl.when(pl.col("_ri_arn") == r.arn).then(pl.lit(f"{r.end.isoformat()}T00:00:00Z")).otherwise(ri_end)
    sp_end = SAVINGS_PLAN_START.replace(year=SAVINGS_PLAN_START.year + 3)
    sp_monthly = (
        pl.col("BillingPeriodEnd").dt.date() - pl.col("BillingPeriodStart").dt.date()
    ).dt.total_days() * int(Decimal(SAVINGS_PLAN_HOURLY) * 24 * MICRO)
    timestamp = "%Y-%m-%dT%H:%M:%SZ"
    # The product map is the same for every line of a product: build it once per product.
    product_keys = ["x_ServiceCode", "ServiceName", "RegionId", "RegionName", "SkuPriceDetails", "x_UsageType",
                    "x_Operation", "_line_type"]  # fmt: skip
    products = lines.select(product_keys).unique().with_columns(
        _product=_pairs(
            servicecode=pl.col("x_ServiceCode"),
            servicename=pl.col("ServiceName"),
            product_family=family,
            region=pl.col("RegionId"),
            location=pl.col("RegionName"),
            instance_type=instance,
            model=model,
            usagetype=pl.col("x_UsageType"),
            operation=pl.col("x_Operation"),
        )
    )
    lines = lines.join(products, on=product_keys, how="left", nulls_equal=True, maintain_order="left")
    return _with_tag_pairs(lines, "aws", prefix="user_").select(
        bill_bill_type=pl.lit("Anniversary"),
        bill_billing_entity=pl.lit("AWS"),
        bill_billing_period_end_date=pl.col("BillingPeriodEnd"),
        bill_billing_period_start_date=pl.col("BillingPeriodStart"),
        bill_invoice_id=pl.lit("1") + pl.col("BillingPeriodStart").dt.strftime("%Y%m") + pl.lit(payer.id[-4:]),
        bill_invoicing_entity=pl.lit("Amazon Web Services, Inc."),
        bill_payer_account_id=pl.lit(payer.id),
        bill_payer_account_name=pl.lit(payer.name),
        cost_category=pl.lit([], dtype=TAG_PAIRS),
        identity_line_item_id=pl.concat_str(
            "_line_type", "SubAccountId", "_resource_id", "x_UsageType", "ChargePeriodStart", "_series",
            separator="|", ignore_nulls=True,
        ).hash(seed=SEED).cast(pl.String).str.zfill(20),
        identity_time_interval=pl.col("ChargePeriodStart").dt.strftime(timestamp)
        + pl.lit("/")
        + pl.col("ChargePeriodEnd").dt.strftime(timestamp),
        line_item_availability_zone=pl.when(pl.col("ResourceType") == "Instance")
        .then(pl.col("RegionId") + pl.lit("a"))
        .otherwise(pl.lit("")),
        line_item_blended_cost=money(pl.col("_unblended")),
        line_item_blended_rate=pl.col("_rate").fill_null(""),
        line_item_currency_code=pl.lit(CURRENCY),
        line_item_legal_entity=pl.lit("Amazon Web Services, Inc."),
        line_item_line_item_description=pl.col("ChargeDescription"),
        line_item_line_item_type=pl.col("_line_type"),
        line_item_net_unblended_cost=money(pl.col("_unblended")),
        line_item_net_unblended_rate=pl.col("_rate").fill_null(""),
        line_item_operation=pl.col("x_Operation").fill_null(""),
        line_item_product_code=pl.col("x_ServiceCode").fill_null(pl.col("ServiceName")),
        line_item_resource_id=pl.col("_resource_id").fill_null(""),
        line_item_tax_type=pl.when(is_line(["Tax"])).then(pl.lit("Sales Tax")).otherwise(pl.lit("")),
        line_item_unblended_cost=money(pl.col("_unblended")),
        line_item_unblended_rate=pl.col("_rate").fill_null(""),
        line_item_usage_account_id=pl.col("SubAccountId"),
        line_item_usage_account_name=pl.col("SubAccountName"),
        line_item_usage_amount=money(pl.col("_quantity").fill_null(0)),
        line_item_usage_end_date=pl.col("ChargePeriodEnd"),
        line_item_usage_start_date=pl.col("ChargePeriodStart"),
        line_item_usage_type=pl.col("x_UsageType").fill_null(""),
        pricing_currency=pl.lit(CURRENCY),
        pricing_lease_contract_length=pl.when(ri).then(pl.lit("1yr")).when(sp_fee).then(pl.lit("3yr")).otherwise(pl.lit("")),
        pricing_offering_class=pl.when(ri).then(pl.lit("standard")).otherwise(pl.lit("")),
        pricing_public_on_demand_cost=money(pl.col("_public").fill_null(0)),
        pricing_public_on_demand_rate=pl.col("_public_rate").fill_null(""),
        pricing_purchase_option=pl.when(ri | sp_fee).then(pl.lit("No Upfront")).otherwise(pl.lit("")),
        pricing_term=pl.when(ri)
        .then(pl.lit("Reserved"))
        .when(pl.col("PricingCategory") == "Dynamic")
        .then(pl.lit("Spot"))
        .when(is_line(["Usage", "SavingsPlanCoveredUsage"]))
        .then(pl.lit("OnDemand"))
        .otherwise(pl.lit("")),
        pricing_unit=pl.col("PricingUnit").replace({"Hours": "Hrs"}).fill_null(""),
        product=pl.col("_product"),
        product_instance_type=instance.fill_null(""),
        product_product_family=family.fill_null(""),
        product_region_code=pl.col("RegionId").fill_null(""),
        product_servicecode=pl.col("x_ServiceCode").fill_null(""),
        product_servicename=pl.col("ServiceName"),
        product_sku=pl.col("SkuId").fill_null(""),
        reservation_amortized_upfront_cost_for_usage=pl.when(is_line(["DiscountedUsage"])).then(pl.lit(0.0)),
        reservation_amortized_upfront_fee_for_billing_period=pl.when(is_line(["RIFee"])).then(pl.lit(0.0)),
        reservation_effective_cost=money(pl.col("_ri_effective")),
        reservation_end_time=pl.when(ri).then(ri_end).otherwise(pl.lit("")),
        reservation_number_of_reservations=pl.when(ri).then(pl.lit("1")).otherwise(pl.lit("")),
        reservation_recurring_fee_for_usage=money(pl.col("_ri_effective")),
        reservation_reservation_a_r_n=pl.col("_ri_arn").fill_null(""),
        reservation_start_time=pl.when(ri).then(ri_start).otherwise(pl.lit("")),
        reservation_unused_amortized_upfront_fee_for_billing_period=money(pl.col("_ri_unused")),
        reservation_unused_quantity=money(pl.col("_ri_unused")),
        reservation_unused_recurring_fee=money(pl.col("_ri_unused")),
        reservation_upfront_value=pl.when(is_line(["RIFee"])).then(pl.lit(0.0)),
        resource_tags=pl.col("_tag_pairs"),
        savings_plan_amortized_upfront_commitment_for_billing_period=pl.when(is_line(["SavingsPlanRecurringFee"])).then(pl.lit(0.0)),
        savings_plan_end_time=pl.when(sp).then(pl.lit(f"{sp_end.isoformat()}T00:00:00.000Z")).otherwise(pl.lit("")),
        savings_plan_net_savings_plan_effective_cost=money(pl.col("_sp_effective")),
        savings_plan_offering_type=pl.when(sp).then(pl.lit("ComputeSavingsPlans")).otherwise(pl.lit("")),
        savings_plan_payment_option=pl.when(sp).then(pl.lit("No Upfront")).otherwise(pl.lit("")),
        savings_plan_purchase_term=pl.when(sp).then(pl.lit("3yr")).otherwise(pl.lit("")),
        savings_plan_recurring_commitment_for_billing_period=money(
            pl.when(is_line(["SavingsPlanRecurringFee"])).then(sp_monthly)
        ),
        savings_plan_region=pl.lit(""),
        savings_plan_savings_plan_a_r_n=pl.when(sp).then(pl.lit(SAVINGS_PLAN_ID)).otherwise(pl.lit("")),
        savings_plan_savings_plan_effective_cost=money(pl.col("_sp_effective")),
        savings_plan_savings_plan_rate=pl.col("_sp_rate_text").fill_null(""),
        savings_plan_start_time=pl.when(sp).then(pl.lit(f"{SAVINGS_PLAN_START.isoformat()}T00:00:00.000Z")).otherwise(pl.lit("")),
        savings_plan_total_commitment_to_date=money(pl.col("_sp_total")),
        savings_plan_used_commitment=money(pl.col("_sp_used")),
    )  # fmt: skip


def _cur_table(lines: pl.DataFrame) -> pa.Table:
    """Line items as the Arrow table of CUR 2.0 Parquet: strings, doubles, timestamps, maps (plus ``_month``)."""
    frame = _cur_frame(lines).with_columns(lines["_month"])
    table = frame.to_arrow()
    columns = []
    fields = []
    for name, dtype in frame.schema.items():
        column = table.column(name)
        if name in CUR_MAP_COLUMNS:
            columns.append(_arrow_map(column))
            fields.append(pa.field(name, pa.map_(pa.string(), pa.string())))
            continue
        arrow_type = {pl.Float64: pa.float64(), pl.String: pa.string()}.get(dtype.base_type(), pa.timestamp("ms"))
        columns.append(column.cast(arrow_type))
        fields.append(pa.field(name, arrow_type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _cur_column_types(schema: pa.Schema) -> list[dict[str, str]]:
    names = {pa.string(): "string", pa.float64(): "double", pa.timestamp("ms"): "timestamp"}
    return [{"name": f.name, "type": names.get(f.type, "map<string,string>")} for f in schema]


def _write_cur_months(lines: pl.DataFrame, export_root: Path, delivery: str) -> list[Path]:
    """One Parquet file and one manifest per billing period under ``export_root`` (Data Exports layout)."""
    table = _cur_table(lines).drop_columns(["_month"])
    spans = lines.with_row_index("_line").group_by("_month").agg(first=pl.col("_line").min(), rows=pl.len()).sort("_month")
    paths = []
    for month, first, rows in spans.iter_rows():
        if lines["_month"][first + rows - 1] != month:
            raise AssertionError("CUR lines must be sorted by billing period")
        part = table.slice(first, rows)
        relative = f"data/BILLING_PERIOD={month}/{AWS_EXPORT_NAME}-00001.snappy.parquet"
        path = export_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path, compression="snappy")
        start = date.fromisoformat(f"{month}-01")
        end = (start + timedelta(days=32)).replace(day=1)
        manifest = {
            "exportArn": AWS_EXPORT_ARN,
            "exportName": AWS_EXPORT_NAME,
            "executionId": _stable_uuid(AWS_EXPORT_NAME, month, delivery),
            "billingPeriod": {"start": f"{start.isoformat()}T00:00:00.000Z", "end": f"{end.isoformat()}T00:00:00.000Z"},
            "bucket": AWS_BUCKET,
            "dataFiles": [f"s3://{AWS_BUCKET}/{AWS_PREFIX}/{AWS_EXPORT_NAME}/{relative}"],
            "dataFileFormat": "PARQUET",
            "columns": _cur_column_types(part.schema),
            "additionalOutputFiles": [],
        }
        _write_json(export_root / f"metadata/BILLING_PERIOD={month}/{AWS_EXPORT_NAME}-Manifest.json", manifest)
        paths.append(path)
    return paths


def _cur_summary(lines: pl.DataFrame) -> dict[str, Any]:
    """Per month: rows, unblended and amortized cost, and the same per line item type."""
    out: dict[str, Any] = {}
    by_type = lines.group_by("_month", "_line_type").agg(
        rows=pl.len(), unblended=pl.col("_unblended").sum(), amortized=pl.col("_amortized").sum()
    )
    for month in sorted(lines["_month"].unique()):
        part = by_type.filter(pl.col("_month") == month).sort("_line_type")
        out[month] = {
            "rows": int(part["rows"].sum()),
            "unblended_cost": _usd(part["unblended"].sum()),
            "amortized_cost": _usd(part["amortized"].sum()),
            "by_line_item_type": {
                r["_line_type"]: {"rows": r["rows"], "unblended_cost": _usd(r["unblended"]), "amortized_cost": _usd(r["amortized"])}
                for r in part.iter_rows(named=True)
            },
        }
    return out


def _write_aws_cur(out_dir: Path, aws: pl.DataFrame, first_aws: pl.DataFrame) -> tuple[Delivery, Delivery, dict[str, Any]]:
    """CUR 2.0 Parquet in the Data Exports layout: 2026-08 as first delivered, then every month as finally billed.

    ``aws/cur/`` and ``aws/cur-2026-08-original/`` are each a copy of s3://larkspur-billing/cur/
    at one time: after 2026-08's first delivery, and after its restatement. Manifests name data
    files by their s3:// URI; the key after the bucket's ``cur/`` prefix is the path under the copy.
    """
    final_root = out_dir / "aws" / AWS_PREFIX / AWS_EXPORT_NAME
    original_root = out_dir / "aws" / AWS_ORIGINAL_FOLDER / AWS_EXPORT_NAME
    final_lines = _cur_lines(aws)
    original_lines = _cur_lines(first_aws)
    original_paths = _write_cur_months(original_lines, original_root, "first delivery")
    final_paths = _write_cur_months(final_lines, final_root, "final")
    months = sorted(final_lines["_month"].unique())
    original = Delivery(
        f"AWS CUR 2.0 export (Parquet, Data Exports layout), {RESTATED_MONTH} as first delivered",
        original_paths, "aws-cur", original_root,
    )  # fmt: skip
    final = Delivery(
        f"AWS CUR 2.0 export (Parquet, Data Exports layout), {months[0]}..{months[-1]} ({RESTATED_MONTH} restated after close)",
        final_paths, "aws-cur", final_root,
    )  # fmt: skip

    def execution(root: Path, month: str) -> str:
        manifest = root / f"metadata/BILLING_PERIOD={month}/{AWS_EXPORT_NAME}-Manifest.json"
        return json.loads(manifest.read_text(encoding="utf-8"))["executionId"]

    truth = {
        "format": "AWS Data Exports CUR 2.0, Parquet (snappy), daily line items, money as double",
        "s3_uri": f"s3://{AWS_BUCKET}/{AWS_PREFIX}/{AWS_EXPORT_NAME}",
        "bucket": AWS_BUCKET,
        "prefix": AWS_PREFIX,
        "export_name": AWS_EXPORT_NAME,
        "export_arn": AWS_EXPORT_ARN,
        "export_root": _relative(final_root, out_dir),
        "original_export_root": _relative(original_root, out_dir),
        "tag_key_prefix": "user_",
        "amortized_cost_rule": {
            "SavingsPlanCoveredUsage": "savings_plan_savings_plan_effective_cost",
            "SavingsPlanRecurringFee": "savings_plan_total_commitment_to_date - savings_plan_used_commitment",
            "SavingsPlanNegation": "0",
            "SavingsPlanUpfrontFee": "0",
            "DiscountedUsage": "reservation_effective_cost",
            "RIFee": "reservation_unused_amortized_upfront_fee_for_billing_period + reservation_unused_recurring_fee",
            "other": "line_item_unblended_cost",
        },
        "monthly": _cur_summary(final_lines),
        "restatement": {
            "billing_period": RESTATED_MONTH,
            "original": {**_cur_summary(original_lines)[RESTATED_MONTH], "execution_id": execution(original_root, RESTATED_MONTH)},
            "restated": {**_cur_summary(final_lines.filter(pl.col("_month") == RESTATED_MONTH))[RESTATED_MONTH],
                         "execution_id": execution(final_root, RESTATED_MONTH)},
        },  # fmt: skip
        "savings_plan": {
            "arn": SAVINGS_PLAN_ID,
            "offering_type": "ComputeSavingsPlans",
            "term": "3yr",
            "payment_option": "No Upfront",
            "hourly_commitment": SAVINGS_PLAN_HOURLY,
            "start": SAVINGS_PLAN_START.isoformat(),
            "fee_lines": "one SavingsPlanRecurringFee line a day (24 hours of commitment)",
        },
        "reserved_instances": [
            {
                "arn": ri.arn,
                "service": "AmazonRDS",
                "instance_type": "db.r6g.large",
                "term": "1yr",
                "payment_option": "No Upfront",
                "start": ri.start.isoformat(),
                "end": ri.end.isoformat(),
                "hourly_fee": RI_HOURLY_FEE,
                "public_on_demand_rate": RI_PUBLIC_ON_DEMAND_RATE,
                "usage_account_id": SUB_ACCOUNTS["larkspur-shared-services"].id,
                "covers_resource_id": next(s.resource_id for s in SERIES if s.key == RESERVED_SERIES),
            }
            for ri in RESERVED_INSTANCES
        ],
    }
    return original, final, truth


# -- Google Cloud billing export ----------------------------------------------------------


def _gcp_credits(usage: pl.DataFrame) -> pl.DataFrame:
    """Credits riding on usage rows: ``_row`` → ``_credit`` (micro-dollars, negative) and the credit's names.

    A promotional credit is spent on its SKUs from its day on, row by row, never more than a
    row's cost, until its amount is used up.
    """
    parts = []
    for credit in CREDITS:
        if credit.provider != "gcp":
            continue
        amount = -int(Decimal(credit.amount) * MICRO)
        sub = SUB_ACCOUNTS[credit.account]
        target = (
            (pl.col("SubAccountId") == sub.id)
            & (pl.col("ServiceName") == SERVICES[credit.service].name)
            & (pl.col("_day") >= credit.day)
            & (pl.col("_month") == credit.day.strftime("%Y-%m"))
            & pl.col("ChargeDescription").str.starts_with(credit.applies_to or "")
        )
        spent = (
            usage.filter(target)
            .sort("_day", "_series", "_resource_id")
            .with_columns(_before=pl.col("_billed").cum_sum() - pl.col("_billed"))
            .with_columns(_credit=-pl.min_horizontal(pl.col("_billed"), (pl.lit(amount) - pl.col("_before")).clip(0)))
            .filter(pl.col("_credit") != 0)
        )
        if -spent["_credit"].sum() != amount:
            raise AssertionError(f"{credit.description}: its SKUs cost less than the credit in {credit.day:%Y-%m}")
        credit_id = "promotion-" + _stable_id("gcp", credit.description, length=12)
        parts.append(
            spent.select(
                "_row",
                "_credit",
                _credit_name=pl.lit(credit.description.split(": ", 1)[-1]),
                _credit_full_name=pl.lit(credit.description),
                _credit_id=pl.lit(credit_id),
                _credit_type=pl.lit("PROMOTION"),
            )
        )
    schema = {"_row": pl.UInt32, "_credit": pl.Int64, "_credit_name": pl.String, "_credit_full_name": pl.String,
              "_credit_id": pl.String, "_credit_type": pl.String}  # fmt: skip
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def _gcp_export_rows(gcp: pl.DataFrame) -> pl.DataFrame:
    """Google Cloud rows as the detailed billing export has them: usage rows, credits riding on them."""
    usage = gcp.filter(pl.col("ChargeCategory") == "Usage").with_row_index("_row")
    if gcp.height - usage.height != sum(1 for c in CREDITS if c.provider == "gcp"):
        raise AssertionError("Google Cloud rows other than usage and credits have no export shape here")
    rows = _with_tag_pairs(usage.join(_gcp_credits(usage), on="_row", how="left"), "gcp")
    units = pl.col("PricingUnit")
    per_pricing_unit = units.replace_strict({k: v[1] for k, v in GCP_USAGE_UNITS.items()}, return_dtype=pl.Int64)
    timestamp = "%Y-%m-%d %H:%M:%S UTC"
    credit = pl.struct(
        name=pl.col("_credit_name"),
        amount=_as_double(pl.col("_credit")),
        full_name=pl.col("_credit_full_name"),
        id=pl.col("_credit_id"),
        type=pl.col("_credit_type"),
    )
    credit_type = pl.List(
        pl.Struct({"name": pl.String, "amount": pl.Float64, "full_name": pl.String, "id": pl.String, "type": pl.String})
    )
    projects = [s for s in SUB_ACCOUNTS.values() if s.provider == "gcp"]
    project_numbers = {s.id: str(int(_stable_id("gcp-project", s.id, length=10), 16))[:12] for s in projects}
    services = pl.col("ServiceName")
    return rows.select(
        "_month",
        "_billed",
        "_credit",
        billing_account_id=pl.lit(BILLING_ACCOUNTS["gcp"].id),
        service=pl.struct(
            id=services.replace_strict({k: v[0] for k, v in GCP_SERVICE_IDS.items()}),
            description=services,
        ),
        sku=pl.struct(id=pl.col("SkuId"), description=pl.col("ChargeDescription")),
        usage_start_time=pl.col("ChargePeriodStart").dt.strftime(timestamp),
        usage_end_time=pl.col("ChargePeriodEnd").dt.strftime(timestamp),
        project=pl.struct(
            id=pl.col("SubAccountId"),
            number=pl.col("SubAccountId").replace_strict(project_numbers),
            name=pl.col("SubAccountName"),
            labels=pl.lit([], dtype=TAG_PAIRS),
            ancestry_numbers=pl.lit("/518274630092/"),
        ),
        labels=pl.col("_tag_pairs"),
        system_labels=pl.lit([], dtype=TAG_PAIRS),
        location=pl.struct(
            location=pl.col("RegionId"),
            country=pl.lit("US"),
            region=pl.col("RegionId"),
            zone=pl.lit(None, dtype=pl.String),
        ),
        resource=pl.struct(
            name=pl.col("_resource_name"),
            global_name=pl.lit("//")
            + services.replace_strict({k: v[1] for k, v in GCP_SERVICE_IDS.items()})
            + pl.lit("/")
            + pl.col("_resource_id"),
        ),
        export_time=(pl.col("ChargePeriodEnd") + pl.duration(hours=5, minutes=42)).dt.strftime(timestamp),
        cost=_as_double(pl.col("_billed")),
        currency=pl.lit(CURRENCY),
        currency_conversion_rate=pl.lit(1.0),
        usage=pl.struct(
            amount=_as_double(pl.col("_qty") * per_pricing_unit),
            unit=units.replace_strict({k: v[0] for k, v in GCP_USAGE_UNITS.items()}),
            amount_in_pricing_units=_as_double(pl.col("_qty")),
            pricing_unit=units.replace_strict({k: v[2] for k, v in GCP_USAGE_UNITS.items()}),
        ),
        credits=pl.when(pl.col("_credit").is_not_null()).then(pl.concat_list(credit)).otherwise(pl.lit([], dtype=credit_type)),
        invoice=pl.struct(month=pl.col("_month").str.replace("-", ""), publisher_type=pl.lit("Google")),
        cost_type=pl.lit("regular"),
        adjustment_info=pl.lit(
            None, dtype=pl.Struct({"id": pl.String, "description": pl.String, "mode": pl.String, "type": pl.String})
        ),
        cost_at_list=_as_double(pl.col("_list")),
    )  # fmt: skip


def _write_gcp_export(out_dir: Path, gcp: pl.DataFrame) -> tuple[Delivery, dict[str, Any]]:
    """The detailed (resource-level) billing export as ``bq extract`` writes it: gzip newline JSON per invoice month."""
    rows = _gcp_export_rows(gcp)
    folder = out_dir / "gcp" / "billing_export"
    paths, monthly = [], {}
    for month in sorted(rows["_month"].unique()):
        part = rows.filter(pl.col("_month") == month)
        path = folder / month.replace("-", "") / f"{GCP_EXPORT_TABLE}-000000000000.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_gzip_bytes(part.drop("_month", "_billed", "_credit").write_ndjson().encode("utf-8")))
        paths.append(path)
        cost, credits = int(part["_billed"].sum()), int(part["_credit"].fill_null(0).sum())
        monthly[month] = {"rows": part.height, "cost": _usd(cost), "credits": _usd(credits), "net_cost": _usd(cost + credits)}
    months = sorted(monthly)
    delivery = Delivery(
        f"Google Cloud detailed billing export (newline JSON, gzip), invoice months {months[0]}..{months[-1]}",
        paths, "gcp-export", folder,
    )  # fmt: skip
    truth = {
        "format": "BigQuery detailed usage cost export extracted as newline-delimited JSON (gzip), one file per invoice month",
        "table": GCP_EXPORT_TABLE,
        "folder": _relative(folder, out_dir),
        "net_cost_rule": "cost + sum(credits.amount)",
        "monthly": monthly,
        "credits": [
            {
                "description": c.description,
                "amount": c.amount,
                "type": "PROMOTION",
                "project_id": SUB_ACCOUNTS[c.account].id,
                "invoice_month": c.day.strftime("%Y%m"),
                "applies_to_skus_starting": c.applies_to,
                "rows": int(rows.filter(pl.col("_credit").is_not_null() & (pl.col("_month") == c.day.strftime("%Y-%m"))).height),
            }
            for c in CREDITS
            if c.provider == "gcp"
        ],
    }
    return delivery, truth


# -- Azure cost exports ---------------------------------------------------------------------

AZURE_COLUMNS = (
    "InvoiceSectionName", "AccountName", "AccountOwnerId", "SubscriptionId", "SubscriptionName", "ResourceGroup",
    "ResourceLocation", "Date", "ProductName", "MeterCategory", "MeterSubCategory", "MeterId", "MeterName",
    "MeterRegion", "UnitOfMeasure", "Quantity", "EffectivePrice", "CostInBillingCurrency", "CostCenter",
    "ConsumedService", "ResourceId", "Tags", "OfferId", "AdditionalInfo", "ServiceInfo1", "ServiceInfo2",
    "ResourceName", "ReservationId", "ReservationName", "UnitPrice", "ProductOrderId", "ProductOrderName", "Term",
    "PublisherType", "PublisherName", "ChargeType", "Frequency", "PricingModel", "AvailabilityZone",
    "BillingAccountId", "BillingAccountName", "BillingCurrencyCode", "BillingPeriodStartDate",
    "BillingPeriodEndDate", "BillingProfileId", "BillingProfileName", "InvoiceSectionId", "IsAzureCreditEligible",
    "PartNumber", "PayGPrice", "PlanName", "ServiceFamily", "CostAllocationRuleName", "BenefitId", "BenefitName",
)  # fmt: skip
"""EA cost details columns, in the order an EA export writes them."""


def _azure_lines(azure: pl.DataFrame, dataset: Literal["ActualCost", "AmortizedCost"]) -> pl.DataFrame:
    """Azure rows as one month's EA export of ``dataset`` sees them (money still in micro-dollars).

    The AI Search reservation is paid monthly: ActualCost shows its usage at no cost and a
    Purchase line per month; AmortizedCost shows the usage at the reservation's hourly price
    and no purchase. The monthly payment is that month's hours at the hourly price, so each
    month's actual and amortized totals agree, as the ground truth records them.
    """
    reserved = pl.col("_series") == AZURE_RESERVED_SERIES
    benefit_id = f"/providers/Microsoft.Capacity/reservationOrders/{AZURE_RESERVATION_ORDER}/reservations/{AZURE_RESERVATION_ID}"
    lines = azure.with_columns(
        _cost=pl.when(reserved & pl.lit(dataset == "ActualCost")).then(0).otherwise(pl.col("_billed")),
        _effective_price=pl.when(reserved & pl.lit(dataset == "ActualCost")).then(pl.lit("0")).otherwise(pl.col("_billed_price")),
        _charge_type=pl.lit("Usage"),
        _frequency=pl.lit("UsageBased"),
        _pricing_model=pl.when(reserved).then(pl.lit("Reservation")).otherwise(pl.lit("OnDemand")),
        _reservation_id=pl.when(reserved).then(pl.lit(AZURE_RESERVATION_ID)),
        _reservation_name=pl.when(reserved).then(pl.lit(AZURE_RESERVATION_NAME)),
        _benefit_id=pl.when(reserved).then(pl.lit(benefit_id)),
        _quantity=pl.col("_qty"),
    )  # fmt: skip
    if dataset == "ActualCost":
        sub = SUB_ACCOUNTS["lk-support-prod"]
        purchases = (
            lines.filter(reserved)
            .group_by("_month")
            .agg(pl.col("_billed").sum().alias("_cost"), pl.col("BillingPeriodStart").first(), pl.col("BillingPeriodEnd").first())
            .with_columns(
                _day=pl.col("BillingPeriodStart").dt.date(),
                _series=pl.lit(AZURE_RESERVED_SERIES + "-purchase"),
                _charge_type=pl.lit("Purchase"),
                _frequency=pl.lit("Recurring"),
                _pricing_model=pl.lit("Reservation"),
                _reservation_id=pl.lit(AZURE_RESERVATION_ID),
                _reservation_name=pl.lit(AZURE_RESERVATION_NAME),
                _benefit_id=pl.lit(benefit_id),
                _quantity=pl.lit(MICRO, dtype=pl.Int64),
                _effective_price=_decimal_text(pl.col("_cost")),
                _contracted_price=_decimal_text(pl.col("_cost")),
                SubAccountId=pl.lit(sub.id),
                SubAccountName=pl.lit(sub.name),
                ServiceName=pl.lit(SERVICES["azure_search"].name),
                RegionId=pl.lit("eastus2"),
                Tags=pl.lit("{}"),
            )
        )  # fmt: skip
        lines = pl.concat([lines, purchases], how="diagonal_relaxed")
    return lines.sort("_day", "SubAccountId", "_series", "_resource_id", "_charge_type", nulls_last=True, maintain_order=True)


def _azure_frame(lines: pl.DataFrame) -> pl.DataFrame:
    """The EA export's columns as text, in order (dates MM/DD/YYYY, tags without braces)."""
    account = BILLING_ACCOUNTS["azure"]
    purchase = pl.col("_charge_type") == "Purchase"
    us_date = "%m/%d/%Y"
    region_names = {"eastus": "US East", "eastus2": "US East 2"}
    meter_ids = {sku: _stable_uuid("azure-meter", sku) for sku in lines["SkuId"].drop_nulls().unique()}
    product = (
        pl.col("x_SkuMeterCategory") + pl.lit(" ") + pl.col("x_SkuMeterSubcategory") + pl.lit(" - ") + pl.col("x_SkuMeterName")
        + pl.lit(" - ") + pl.col("RegionId").replace_strict(region_names, default="")
    )  # fmt: skip
    text = {
        "InvoiceSectionName": pl.lit("Larkspur Labs"),
        "AccountName": pl.lit("Larkspur Cloud Platform"),
        "AccountOwnerId": pl.lit("cloud-platform@larkspur.example"),
        "SubscriptionId": pl.col("SubAccountId").str.strip_prefix("/subscriptions/"),
        "SubscriptionName": pl.col("SubAccountName"),
        "ResourceGroup": pl.col("x_ResourceGroupName"),
        "ResourceLocation": pl.col("RegionId"),
        "Date": pl.col("_day").dt.strftime(us_date),
        "ProductName": pl.when(purchase).then(pl.lit("Azure AI Search Standard S1 - Reserved Capacity")).otherwise(product),
        "MeterCategory": pl.col("x_SkuMeterCategory"),
        "MeterSubCategory": pl.col("x_SkuMeterSubcategory"),
        "MeterId": pl.col("SkuId").replace_strict(meter_ids, default=None),
        "MeterName": pl.col("x_SkuMeterName"),
        "MeterRegion": pl.col("RegionId").replace_strict(region_names, default=None),
        "UnitOfMeasure": pl.when(purchase)
        .then(pl.lit("1"))
        .otherwise(pl.col("PricingUnit").replace_strict(AZURE_UNITS, default=None)),
        "Quantity": _decimal_text(pl.col("_quantity")),
        "EffectivePrice": pl.col("_effective_price"),
        "CostInBillingCurrency": _decimal_text(pl.col("_cost")),
        "CostCenter": pl.lit(""),
        "ConsumedService": pl.when(purchase).then(pl.lit("Microsoft.Capacity")).otherwise(
            pl.col("ServiceName").replace_strict(AZURE_CONSUMED_SERVICES, default=None)
        ),
        "ResourceId": pl.col("_resource_id"),
        "Tags": pl.col("Tags").str.strip_prefix("{").str.strip_suffix("}"),
        "OfferId": pl.lit("MS-AZR-0017P"),
        "AdditionalInfo": pl.lit('{"ServiceType": "') + pl.col("SkuPriceDetails").str.json_path_match("$.InstanceType") + pl.lit('"}'),
        "ServiceInfo1": pl.lit(""),
        "ServiceInfo2": pl.lit(""),
        "ResourceName": pl.col("_resource_name"),
        "ReservationId": pl.col("_reservation_id"),
        "ReservationName": pl.col("_reservation_name"),
        "UnitPrice": pl.col("_contracted_price"),
        "ProductOrderId": pl.when(pl.col("_reservation_id").is_not_null()).then(pl.lit(AZURE_RESERVATION_ORDER)),
        "ProductOrderName": pl.when(pl.col("_reservation_id").is_not_null()).then(
            pl.lit("Azure AI Search Standard S1, US East 2, 3 Years")
        ),
        "Term": pl.when(pl.col("_reservation_id").is_not_null()).then(pl.lit(str(AZURE_RESERVATION_TERM_MONTHS))),
        "PublisherType": pl.lit("Azure"),
        "PublisherName": pl.lit("Microsoft"),
        "ChargeType": pl.col("_charge_type"),
        "Frequency": pl.col("_frequency"),
        "PricingModel": pl.col("_pricing_model"),
        "AvailabilityZone": pl.lit(""),
        "BillingAccountId": pl.lit(account.id),
        "BillingAccountName": pl.lit(account.name),
        "BillingCurrencyCode": pl.lit(CURRENCY),
        "BillingPeriodStartDate": pl.col("BillingPeriodStart").dt.strftime(us_date),
        "BillingPeriodEndDate": (pl.col("BillingPeriodEnd") - pl.duration(days=1)).dt.strftime(us_date),
        "BillingProfileId": pl.lit(account.id),
        "BillingProfileName": pl.lit(account.name),
        "InvoiceSectionId": pl.lit(""),
        "IsAzureCreditEligible": pl.when(purchase).then(pl.lit("False")).otherwise(pl.lit("True")),
        "PartNumber": pl.lit(""),
        "PayGPrice": pl.when(purchase).then(pl.lit("0")).otherwise(pl.col("_list_price")),
        "PlanName": pl.lit(""),
        "ServiceFamily": pl.when(pl.col("ServiceName").is_in(["Virtual Machines", "Azure Machine Learning"])).then(
            pl.lit("Compute")
        ).when(pl.col("ServiceName") == "Storage").then(pl.lit("Storage")).otherwise(pl.lit("AI + Machine Learning")),
        "CostAllocationRuleName": pl.lit(""),
        "BenefitId": pl.col("_benefit_id"),
        "BenefitName": pl.col("_reservation_name"),
    }  # fmt: skip
    if set(text) != set(AZURE_COLUMNS):
        raise AssertionError(f"Azure columns out of step: {set(text) ^ set(AZURE_COLUMNS)}")
    # An empty field is written bare (,,), as Cost Management writes it, not as a quoted "".
    return lines.select(**{name: pl.when(text[name] != "").then(text[name]) for name in AZURE_COLUMNS})


def _write_azure_exports(out_dir: Path, azure: pl.DataFrame) -> tuple[Delivery, dict[str, Any]]:
    """Cost Management exports (v2 layout): per month and dataset one run with a CSV part and a manifest.json.

    ``azure/`` is the storage container's root; manifest ``blobName`` values are relative to it.
    """
    container = out_dir / "azure"
    paths: list[Path] = []
    monthly: dict[str, dict[str, Any]] = {}
    for dataset, export_name in AZURE_EXPORTS.items():
        lines = _azure_lines(azure, dataset)  # type: ignore[arg-type]
        text = _azure_frame(lines).with_columns(lines["_month"], lines["_cost"])
        for month in sorted(lines["_month"].unique()):
            part = text.filter(pl.col("_month") == month)
            start = date.fromisoformat(f"{month}-01")
            end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            run_id = _stable_uuid("azure-export", export_name, month)
            folder = f"{AZURE_ROOT_FOLDER}/{export_name}/{start:%Y%m%d}-{end:%Y%m%d}/{run_id}"
            data = part.drop("_month", "_cost").write_csv().encode("utf-8")
            path = container / folder / "part_0_0001.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            paths.append(path)
            submitted = (end + timedelta(days=3)).isoformat() + "T06:18:44.0000000Z"
            _write_json(
                container / folder / "manifest.json",
                {
                    "manifestVersion": "2024-04-01",
                    "byteCount": len(data),
                    "blobCount": 1,
                    "dataRowCount": part.height,
                    "exportConfig": {
                        "exportName": export_name,
                        "resourceId": f"/providers/Microsoft.Billing/billingAccounts/{BILLING_ACCOUNTS['azure'].id}"
                        f"/providers/Microsoft.CostManagement/exports/{export_name}",
                        "dataVersion": AZURE_DATA_VERSION,
                        "apiVersion": AZURE_API_VERSION,
                        "type": dataset,
                        "timeFrame": "TheLastMonth",
                        "granularity": "Daily",
                    },
                    "deliveryConfig": {
                        "partitionData": True,
                        "dataOverwriteBehavior": "CreateNewReport",
                        "fileFormat": "Csv",
                        "compressionMode": "None",
                        "containerUri": AZURE_STORAGE_ACCOUNT_ID,
                        "rootFolderPath": AZURE_ROOT_FOLDER,
                    },
                    "runInfo": {
                        "executionType": "Scheduled",
                        "submittedTime": submitted,
                        "runId": run_id,
                        "startDate": f"{start.isoformat()}T00:00:00",
                        "endDate": f"{end.isoformat()}T00:00:00",
                    },
                    "blobs": [{"blobName": f"{folder}/part_0_0001.csv", "byteCount": len(data), "dataRowCount": part.height}],
                },
            )
            key = "actual" if dataset == "ActualCost" else "amortized"
            monthly.setdefault(month, {})[key] = {"rows": part.height, "cost": _usd(part["_cost"].sum())}
    months = sorted(monthly)
    delivery = Delivery(
        f"Azure EA cost exports, actual and amortized (CSV, export runs with manifests), {months[0]}..{months[-1]}",
        sorted(paths), "azure", container,
    )  # fmt: skip
    search = next(s for s in SERIES if s.key == AZURE_RESERVED_SERIES)
    truth = {
        "format": "Cost Management exports (v2), EA cost details CSV, one run per month and dataset with manifest.json",
        "container_root": _relative(container, out_dir),
        "root_folder": AZURE_ROOT_FOLDER,
        "exports": AZURE_EXPORTS,
        "billed_cost_rule": "sum(CostInBillingCurrency) of the ActualCost export",
        "effective_cost_rule": "sum(CostInBillingCurrency) of the AmortizedCost export",
        "date_format": "MM/DD/YYYY",
        "monthly": monthly,
        "reservation": {
            "reservation_id": AZURE_RESERVATION_ID,
            "reservation_order_id": AZURE_RESERVATION_ORDER,
            "name": AZURE_RESERVATION_NAME,
            "subscription_id": SUB_ACCOUNTS["lk-support-prod"].id,
            "covers_resource_id": search.resource_id,
            "start": AZURE_RESERVATION_START.isoformat(),
            "term_months": AZURE_RESERVATION_TERM_MONTHS,
            "billing": "monthly: each month's hours at the hourly price (not Azure's equal monthly split,"
            " which would make actual and amortized differ by month length)",
            "hourly_price": _dec_str(Decimal(search.sku.list_price) * Decimal(BILLING_ACCOUNTS["azure"].contract_discount)),
        },
    }
    return delivery, truth


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


def _dec_str(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _usd(micros: int) -> str:
    """Micro-dollars as a decimal string with six places."""
    return str((Decimal(int(micros)) / MICRO).quantize(Decimal("0.000001")))


def _totals(frame: pl.DataFrame, *keys: str) -> dict[str, Any]:
    """Nested {key1: {key2: {billed_cost, effective_cost}}} of a frame's micro-dollar sums."""
    grouped = frame.group_by(*keys).agg(
        billed=pl.col("_billed").sum(), effective=pl.col("_effective").sum(), rows=pl.len()
    ).sort(*keys)
    out: dict[str, Any] = {}
    for row in grouped.iter_rows(named=True):
        node = out
        for key in keys[:-1]:
            node = node.setdefault(str(row[key]), {})
        node[str(row[keys[-1]])] = {"billed_cost": _usd(row["billed"]), "effective_cost": _usd(row["effective"])}
    return out


def _ground_truth(
    seed: int,
    frames: dict[Provider, pl.DataFrame],
    first_aws: pl.DataFrame,
    expected: dict[tuple[str, date], int],
) -> dict[str, Any]:
    truth_rows = pl.concat(list(frames.values()), how="diagonal_relaxed")
    months = sorted(truth_rows["_month"].unique())

    monthly: dict[str, Any] = {}
    rows = truth_rows.group_by("_month", "_provider").agg(
        billed=pl.col("_billed").sum(), effective=pl.col("_effective").sum(), rows=pl.len()
    )
    for r in rows.sort("_month", "_provider").iter_rows(named=True):
        monthly.setdefault(r["_month"], {})[r["_provider"]] = {
            "billed_cost": _usd(r["billed"]),
            "effective_cost": _usd(r["effective"]),
            "rows": r["rows"],
        }

    aws_restated = frames["aws"].filter(pl.col("_month") == RESTATED_MONTH)

    def summary(f: pl.DataFrame) -> dict[str, Any]:
        return {
            "billed_cost": _usd(f["_billed"].sum()),
            "effective_cost": _usd(f["_effective"].sum()),
            "rows": f.height,
        }

    series, (first, last) = DOUBLE_METERED
    doubled = aws_restated.filter((pl.col("_series") == series) & pl.col("_day").is_between(first, last))
    orphan = first_aws.filter(pl.col("_first_delivery_only"))
    credit = aws_restated.filter(pl.col("ChargeCategory") == "Credit")
    tax_change = (
        aws_restated.filter(pl.col("ChargeCategory") == "Tax")["_billed"].sum()
        - first_aws.filter(pl.col("ChargeCategory") == "Tax")["_billed"].sum()
    )
    original, restated = summary(first_aws), summary(aws_restated)
    restatement = {
        "provider": "aws",
        "billing_period": RESTATED_MONTH,
        "billing_account_id": BILLING_ACCOUNTS["aws"].id,
        "original": original,
        "restated": restated,
        "billed_cost_change": _usd(aws_restated["_billed"].sum() - first_aws["_billed"].sum()),
        "effective_cost_change": _usd(aws_restated["_effective"].sum() - first_aws["_effective"].sum()),
        "changes": [
            {
                "change": "double-metered endpoint hours corrected",
                "resource_ids": sorted(doubled["_resource_id"].unique().to_list()),
                "dates": [first.isoformat(), last.isoformat()],
                "billed_cost_change": _usd(-doubled["_billed"].sum()),
            },
            {
                "change": "charges for a deleted notebook instance removed",
                "resource_ids": sorted(orphan["_resource_id"].unique().to_list()),
                "rows": orphan.height,
                "billed_cost_change": _usd(-orphan["_billed"].sum()),
            },
            {
                "change": "SLA credit added",
                "sub_account_id": credit["SubAccountId"].to_list(),
                "billed_cost_change": _usd(credit["_billed"].sum()),
            },
            {"change": "tax recalculated", "billed_cost_change": _usd(tax_change)},
        ],
    }

    anomalies = []
    series_by_key = {s.key: s for s in SERIES}
    azure = frames["azure"]
    for day in ANOMALY.days:
        hit = azure.filter(pl.col("_series").is_in(ANOMALY.series) & (pl.col("_day") == day))
        actual = int(hit["_effective"].sum())
        base = sum(expected[(k, day)] for k in ANOMALY.series)
        first_series = series_by_key[ANOMALY.series[0]]
        anomalies.append(
            {
                "date": day.isoformat(),
                "department": first_series.sub_account.department,
                "provider": "azure",
                "provider_name": BILLING_ACCOUNTS["azure"].provider_name,
                "service": SERVICES[first_series.service].name,
                "sub_account_id": first_series.sub_account.id,
                "resource_id": first_series.resource_id,
                "skus": [series_by_key[k].sku.meter for k in ANOMALY.series],
                "description": ANOMALY.description,
                "expected_cost": _usd(base),
                "actual_cost": _usd(actual),
                "impact": _usd(actual - base),
                "cost_basis": "EffectiveCost (equal to BilledCost here)",
            }
        )

    untagged_series = [s for s in SERIES if s.owner and s.owner != allocate(s.sub_account.id, s.tags)]
    untagged_rows = truth_rows.filter(pl.col("_series").is_in([s.key for s in untagged_series]))
    untagged = {
        "department": "Marketing",
        "allocated_to": UNALLOCATED,
        "provider": "aws",
        "sub_account_id": SUB_ACCOUNTS["larkspur-shared-services"].id,
        "resource_ids": sorted({s.resource_id for s in untagged_series}),
        "monthly": _totals(untagged_rows, "_month"),
        "total": summary(untagged_rows),
    }

    workloads = _totals(truth_rows, "_month", "_workload")
    departments = _totals(truth_rows, "_month", "_department")
    owners = _totals(truth_rows, "_month", "_owner")

    quarter = truth_rows.filter(pl.col("_month").is_in(["2026-07", "2026-08", "2026-09"]))
    ai = quarter.filter(pl.col("_workload") != "non-AI")
    inference = ai.filter(pl.col("_workload") == "inference")
    headline = {
        "quarter": HEADLINE_QUARTER,
        "total": summary(quarter),
        "ai": summary(ai),
        "inference": summary(inference),
        "inference_share_of_ai_effective_cost": str(
            (Decimal(int(inference["_effective"].sum())) / Decimal(int(ai["_effective"].sum()))).quantize(Decimal("0.0001"))
        ),
    }

    resources = (
        truth_rows.filter(pl.col("_resource_id").is_not_null())
        .group_by("_provider", "_series", "SubAccountId", "_workload", "_owner", "_department")
        .agg(resource_ids=pl.col("_resource_id").unique().sort().head(3), resources=pl.col("_resource_id").n_unique())
        .sort("_provider", "_series")
    )

    return {
        "company": COMPANY_NAME,
        "seed": seed,
        "start": START.isoformat(),
        "end": END.isoformat(),
        "billing_periods": months,
        "currency": CURRENCY,
        "cost_basis": "EffectiveCost unless a field says billed_cost",
        "headline": headline,
        "providers": {
            p: {
                "provider_name": a.provider_name,
                "billing_account_id": a.id,
                "focus_version": a.focus_version,
                "format": a.file_format,
            }
            for p, a in BILLING_ACCOUNTS.items()
        },
        "departments": [
            {
                "name": d.name,
                "owner": d.owner,
                "sub_accounts": [s.id for s in SUB_ACCOUNTS.values() if s.department == d.name],
                "tag_values": list(d.tag_values),
            }
            for d in DEPARTMENTS
        ],
        "tag_keys": list(TAG_KEYS),
        "rows": truth_rows.height,
        "monthly_totals": monthly,
        "restatement": restatement,
        "anomalies": anomalies,
        "untagged": untagged,
        "workload_cost": workloads,
        "department_cost": departments,
        "owner_cost": owners,
        "savings_plan": {
            "id": SAVINGS_PLAN_ID,
            "start": SAVINGS_PLAN_START.isoformat(),
            "hourly_commitment": SAVINGS_PLAN_HOURLY,
            "sub_account_id": SUB_ACCOUNTS[SAVINGS_PLAN_ACCOUNT].id,
        },
        "resources": [
            {
                "provider": r["_provider"],
                "series": r["_series"],
                "sub_account_id": r["SubAccountId"],
                "workload": r["_workload"],
                "owner": r["_owner"],
                "allocated_to": r["_department"],
                "resources": r["resources"],
                "example_resource_ids": r["resource_ids"],
            }
            for r in resources.iter_rows(named=True)
        ],
    }

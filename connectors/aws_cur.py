"""AWS cost exports (CUR 2.0, legacy CUR, the AWS FOCUS export) into the `charges` table.

Where the data comes from (``uri``):

* ``s3://BUCKET/PREFIX/EXPORT_NAME`` — an AWS Data Exports delivery, read with boto3 and the
  default credential chain (``profile`` and ``endpoint_url`` choose another). Layout::

      <export>/data/BILLING_PERIOD=YYYY-MM/*.parquet | *.csv.gz
      <export>/metadata/BILLING_PERIOD=YYYY-MM/[…/]<export-name>-Manifest.json

  Legacy CUR layouts (``<report>/YYYYMMDD-YYYYMMDD/<report>-Manifest.json``) work too.
* a local directory in the same layout (a copy of the bucket, or the sample company), or
* local files or globs of export files without a manifest: billing periods come from the rows.

How a load goes:

1. For each billing period the newest manifest is the truth: AWS rewrites a period several
   times a day while it is open, and restates it for days after it closes. A manifest whose
   sha256 equals the one saved with the last load of that period is skipped before any data
   file is downloaded (``AwsIngestReport.skipped``).
2. Exactly the files the manifest lists are read (Data Exports ``dataFiles``, legacy
   ``reportKeys``); a listed file that is missing is an error naming it. Every file is checked
   first (readable, complete gzip, the columns a CUR has) and nothing is written for a refused
   period.
3. One SQL statement per period maps the line items to FOCUS columns (see :func:`_focus_sql`)
   and the warehouse replaces the period's (source, payer account, billing period) partitions
   in one transaction, saving the manifest's checksum with them. A restated period therefore
   replaces the old rows — also those of sub accounts that vanished from the restatement —
   and a killed load leaves the previous version in place.
4. Bad rows are quarantined with the column and the reason, never loaded half-right: an
   unreadable amount or date, a missing payer account, a line item type this module does not
   know (its amortization is unknown, so it cannot be given an EffectiveCost), a row whose
   billing period is not the delivery's.

Money is exact. CSV amounts are read as text and cast to DECIMAL. CUR Parquet stores amounts as
DOUBLE; DuckDB's direct DOUBLE → DECIMAL(38, 10) cast scales in binary floating point and turns
780857.137942 into 780857.1379419999, so doubles are cast where that is provably exact (below
100,000) and otherwise through their shortest text form, the digits AWS wrote (see
:func:`_money_from_double`): sums reconcile to the cent and to the last digit.

Amortization (EffectiveCost) follows the line item type, as AWS's own dashboards do:
SavingsPlanCoveredUsage → savings_plan_savings_plan_effective_cost; SavingsPlanRecurringFee →
total commitment to date − used commitment (the unused part); SavingsPlanNegation and
SavingsPlanUpfrontFee → 0; DiscountedUsage → reservation_effective_cost; RIFee → unused
amortized upfront fee + unused recurring fee; every other type → line_item_unblended_cost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import duckdb
import polars as pl

from connectors import focus
from connectors.files import FileFormat, detect_format, expand, read_sql, sql_literal, verify_gzip
from finops.exceptions import SourceError
from finops.warehouse import FOCUS_COLUMNS, MONEY, PARTITION_COLUMNS, LoadResult, SourceFile, Warehouse

SOURCE_KIND = "aws-cur"

ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as manifests are read and files loaded."""

Dialect = Literal["cur2", "legacy", "focus"]

DATA_SUFFIXES = (".parquet", ".csv.gz", ".csv", ".gz")

# -- columns --------------------------------------------------------------------------------
# Canonical names are CUR 2.0's snake_case. Legacy CUR headers (`lineItem/UnblendedCost`) are
# translated to them by `_canonical_name`; legacy Parquet (Athena style) already uses them.

MONEY_FIELDS = (
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "line_item_usage_amount",
    "line_item_unblended_rate",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
)
TIME_FIELDS = (
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
)
TEXT_FIELDS = (
    "bill_payer_account_id",
    "bill_payer_account_name",
    "bill_invoice_id",
    "bill_invoicing_entity",
    "bill_billing_entity",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_resource_id",
    "line_item_currency_code",
    "line_item_line_item_description",
    "line_item_availability_zone",
    "line_item_legal_entity",
    "pricing_term",
    "pricing_purchase_option",
    "pricing_unit",
    "product_servicename",
    "product_product_name",
    "product_region_code",
    "product_region",
    "product_location",
    "product_instance_type",
    "product_sku",
    "savings_plan_savings_plan_a_r_n",
    "reservation_reservation_a_r_n",
)
MAP_FIELDS = ("resource_tags", "product")

# CUR 2.0 folds many product columns into the `product` map; a top-level column wins.
PRODUCT_MAP_KEYS = {
    "product_servicename": "servicename",
    "product_product_name": "product_name",
    "product_region_code": "region_code",
    "product_region": "region",
    "product_location": "location",
    "product_instance_type": "instance_type",
    "product_sku": "sku",
}

REQUIRED_FIELDS = {
    "bill_payer_account_id": "bill/PayerAccountId",
    "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
    "bill_billing_period_end_date": "bill/BillingPeriodEndDate",
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_usage_end_date": "lineItem/UsageEndDate",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_currency_code": "lineItem/CurrencyCode",
}
"""Columns every CUR has (CUR 2.0 name → legacy header): a file without them is not a CUR."""

NOT_NULL_FIELDS = {
    "bill_payer_account_id": "every line item needs the payer account",
    "bill_billing_period_start_date": "every line item needs its billing period",
    "bill_billing_period_end_date": "every line item needs its billing period",
    "line_item_usage_start_date": "every line item needs its charge period",
    "line_item_usage_end_date": "every line item needs its charge period",
    "line_item_line_item_type": "the line item type decides the amortized cost",
    "line_item_unblended_cost": "it is the billed cost",
    "line_item_currency_code": "every amount needs its currency",
}

LINE_ITEM_TYPES: dict[str, tuple[str, str]] = {
    # type: (FOCUS ChargeCategory, ChargeFrequency)
    "Usage": ("Usage", "Usage-Based"),
    "DiscountedUsage": ("Usage", "Usage-Based"),
    "SavingsPlanCoveredUsage": ("Usage", "Usage-Based"),
    "Fee": ("Purchase", "One-Time"),
    "RIFee": ("Purchase", "Recurring"),
    "SavingsPlanRecurringFee": ("Purchase", "Recurring"),
    "SavingsPlanUpfrontFee": ("Purchase", "One-Time"),
    "Tax": ("Tax", "One-Time"),
    "Credit": ("Credit", "One-Time"),
    "Refund": ("Credit", "One-Time"),
    "SavingsPlanNegation": ("Adjustment", "Usage-Based"),
    "BundledDiscount": ("Adjustment", "Usage-Based"),
    "Discount": ("Adjustment", "Usage-Based"),
    "EdpDiscount": ("Adjustment", "Usage-Based"),
    "PrivateRateDiscount": ("Adjustment", "Usage-Based"),
    "DistributorDiscount": ("Adjustment", "Usage-Based"),
}
"""The line item types whose amortization is known. Any other type is quarantined with its
name: guessing its EffectiveCost would put a wrong number in every chargeback."""

AI_CATEGORY = "AI and Machine Learning"
SERVICES: dict[str, tuple[str, str, str | None]] = {
    # product code: (readable name, FOCUS ServiceCategory, ServiceSubcategory)
    "AmazonSageMaker": ("Amazon SageMaker", AI_CATEGORY, "AI Platforms"),
    "AmazonBedrock": ("Amazon Bedrock", AI_CATEGORY, "Generative AI"),
    "AmazonBedrockService": ("Amazon Bedrock", AI_CATEGORY, "Generative AI"),
    "AmazonQ": ("Amazon Q", AI_CATEGORY, "Generative AI"),
    "comprehend": ("Amazon Comprehend", AI_CATEGORY, "Natural Language Processing"),
    "AmazonComprehend": ("Amazon Comprehend", AI_CATEGORY, "Natural Language Processing"),
    "AmazonComprehendMedical": ("Amazon Comprehend Medical", AI_CATEGORY, "Natural Language Processing"),
    "AmazonRekognition": ("Amazon Rekognition", AI_CATEGORY, "Machine Learning"),
    "AmazonTextract": ("Amazon Textract", AI_CATEGORY, "Machine Learning"),
    "transcribe": ("Amazon Transcribe", AI_CATEGORY, "Natural Language Processing"),
    "translate": ("Amazon Translate", AI_CATEGORY, "Natural Language Processing"),
    "AmazonPolly": ("Amazon Polly", AI_CATEGORY, "Natural Language Processing"),
    "AmazonLex": ("Amazon Lex", AI_CATEGORY, "Natural Language Processing"),
    "AmazonKendra": ("Amazon Kendra", AI_CATEGORY, "Machine Learning"),
    "AmazonPersonalize": ("Amazon Personalize", AI_CATEGORY, "Machine Learning"),
    "AmazonForecast": ("Amazon Forecast", AI_CATEGORY, "Machine Learning"),
    "AmazonFraudDetector": ("Amazon Fraud Detector", AI_CATEGORY, "Machine Learning"),
    "AmazonEC2": ("Amazon Elastic Compute Cloud", "Compute", None),
    "AWSLambda": ("AWS Lambda", "Compute", None),
    "AmazonECS": ("Amazon Elastic Container Service", "Compute", None),
    "AmazonEKS": ("Amazon Elastic Kubernetes Service", "Compute", None),
    "AmazonLightsail": ("Amazon Lightsail", "Compute", None),
    "AmazonS3": ("Amazon Simple Storage Service", "Storage", None),
    "AmazonEFS": ("Amazon Elastic File System", "Storage", None),
    "AmazonFSx": ("Amazon FSx", "Storage", None),
    "AmazonGlacier": ("Amazon Glacier", "Storage", None),
    "AWSBackup": ("AWS Backup", "Storage", None),
    "AmazonRDS": ("Amazon Relational Database Service", "Databases", None),
    "AmazonDynamoDB": ("Amazon DynamoDB", "Databases", None),
    "AmazonElastiCache": ("Amazon ElastiCache", "Databases", None),
    "AmazonDocDB": ("Amazon DocumentDB", "Databases", None),
    "AmazonNeptune": ("Amazon Neptune", "Databases", None),
    "AmazonRedshift": ("Amazon Redshift", "Analytics", None),
    "AmazonAthena": ("Amazon Athena", "Analytics", None),
    "AWSGlue": ("AWS Glue", "Analytics", None),
    "AmazonKinesis": ("Amazon Kinesis", "Analytics", None),
    "ElasticMapReduce": ("Amazon EMR", "Analytics", None),
    "AmazonES": ("Amazon OpenSearch Service", "Analytics", None),
    "AmazonQuickSight": ("Amazon QuickSight", "Analytics", None),
    "AWSDataTransfer": ("AWS Data Transfer", "Networking", None),
    "AmazonCloudFront": ("Amazon CloudFront", "Networking", None),
    "AmazonVPC": ("Amazon Virtual Private Cloud", "Networking", None),
    "AmazonRoute53": ("Amazon Route 53", "Networking", None),
    "AWSELB": ("Elastic Load Balancing", "Networking", None),
    "AWSDirectConnect": ("AWS Direct Connect", "Networking", None),
    "AmazonCloudWatch": ("Amazon CloudWatch", "Management and Governance", None),
    "AWSCloudTrail": ("AWS CloudTrail", "Management and Governance", None),
    "AWSConfig": ("AWS Config", "Management and Governance", None),
    "awskms": ("AWS Key Management Service", "Security", None),
    "AWSSecretsManager": ("AWS Secrets Manager", "Security", None),
    "AmazonGuardDuty": ("Amazon GuardDuty", "Security", None),
    "awswaf": ("AWS WAF", "Security", None),
    "AmazonSNS": ("Amazon Simple Notification Service", "Integration", None),
    "AWSQueueService": ("Amazon Simple Queue Service", "Integration", None),
    "AmazonMQ": ("Amazon MQ", "Integration", None),
    "AWSEvents": ("Amazon EventBridge", "Integration", None),
    "AmazonStates": ("AWS Step Functions", "Integration", None),
}
"""Product codes → readable ServiceName, FOCUS ServiceCategory and ServiceSubcategory.
Unknown codes keep product_servicename (or the code) and the category "Other"; any service
whose name says Bedrock or SageMaker (e.g. a Bedrock marketplace model) is AI."""


# -- what a load returns --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CurFile:
    """An export file checked to be a CUR (or AWS FOCUS export): where its columns are."""

    uri: str  # where it came from: s3://… or the local path
    path: PurePosixPath | Path  # for display (.name); the local copy for local sources
    local: Path  # the file DuckDB reads (a downloaded copy for S3)
    dialect: Dialect
    format: FileFormat
    compression: str | None
    columns: dict[str, str]  # canonical name → the file's own column name
    types: dict[str, str]  # the file's column name → DuckDB type
    tag_columns: dict[str, str]  # legacy one-column-per-tag: column name → tag key
    ignored_columns: tuple[str, ...] = ()
    focus_file: focus.FocusFile | None = None


@dataclasses.dataclass(frozen=True)
class PeriodLoad:
    """One delivery loaded (one billing period, or a set of files without manifest).

    Shaped like :class:`connectors.focus.IngestReport`, so the CLI prints it the same way.
    """

    period: str | None  # YYYY-MM; None for files without manifest (their periods are in period_totals)
    manifest: str | None  # the manifest's URI, None without one
    export_id: str  # x_ExportId of the loaded rows
    dialect: Dialect
    result: LoadResult
    files: list[CurFile]
    period_totals: pl.DataFrame  # billing_period, rows, billed_cost, effective_cost
    quarantine_sample: pl.DataFrame  # file, row_number, column_name, reason (first 20)


@dataclasses.dataclass(frozen=True)
class AwsIngestReport:
    """What an AWS load did: the periods loaded and those skipped as unchanged."""

    loads: list[PeriodLoad]
    skipped: list[tuple[str, int]]  # (YYYY-MM, batch_id that loaded the same manifest)


# -- public entry point ---------------------------------------------------------------------


def ingest(
    wh: Warehouse,
    uri: str | Sequence[str],
    *,
    periods: Sequence[str] | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    progress: ProgressCallback | None = None,
) -> AwsIngestReport:
    """Load an AWS cost export into ``charges``; return the periods loaded and skipped.

    Parameters
    ----------
    wh
        The warehouse.
    uri
        ``s3://bucket/prefix/export-name``, a local directory in the same layout, or local
        export files / globs without manifest (a list of them is fine).
    periods
        Billing periods (``YYYY-MM``) to load; default every period the export has.
    profile, endpoint_url
        boto3 profile and S3 endpoint (e.g. a test server); default credential chain otherwise.
    progress
        ``progress(description, completed, total)``, called as manifests and files are read.

    Returns
    -------
    AwsIngestReport
        ``loads``: one :class:`PeriodLoad` per period loaded (one for a set of files without
        manifest); ``skipped``: ``(period, batch_id)`` for periods whose manifest had not changed.
    """
    report = progress or (lambda *_: None)
    wanted = _check_periods(periods)
    uris = [uri] if isinstance(uri, str) else list(uri)
    if not uris:
        raise SourceError("no AWS export given", hint="pass s3://bucket/prefix/export-name, a directory or files")
    if len(uris) == 1 and (uris[0].startswith("s3://") or _has_manifests(uris[0])):
        source: _Export = (
            _S3Export(uris[0], profile=profile, endpoint_url=endpoint_url)
            if uris[0].startswith("s3://")
            else _LocalExport(Path(uris[0]).expanduser())
        )
        return _ingest_export(wh, source, wanted, report)
    if any(u.startswith("s3://") for u in uris):
        raise SourceError(
            "give one s3:// export at a time, without local files beside it",
            hint="finops ingest aws-cur s3://BUCKET/PREFIX/EXPORT_NAME",
        )
    return AwsIngestReport([_ingest_files(wh, uris, wanted, report)], [])


# -- export with manifests ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Manifest:
    period: str  # YYYY-MM
    uri: str
    modified: float  # for picking the newest of several in one period


_DATA_EXPORTS_MANIFEST = re.compile(r"^metadata/BILLING_PERIOD=(\d{4}-\d{2})/(.+/)?[^/]*Manifest\.json$", re.I)
_LEGACY_MANIFEST = re.compile(r"^(\d{4})(\d{2})01-\d{8}/[^/]*-Manifest\.json$", re.I)
# Where a listed data file sits below the export root (so a bucket copy or a local mirror
# resolves it even when the manifest names the bucket AWS delivered to).
_DATA_BELOW_ROOT = re.compile(r"(?:^|/)((?:data/BILLING_PERIOD=[^/]+|\d{8}-\d{8})/.+)$")


class _Export:
    """Where an export lives: lists manifests, reads them, fetches the files they list."""

    root: str  # s3://bucket/prefix/export or the directory, for messages and state keys

    def manifests(self) -> list[_Manifest]:
        raise NotImplementedError

    def read(self, uri: str) -> bytes:
        raise NotImplementedError

    def resolve(self, listed: str) -> str:
        """The URI of a file a manifest lists, in this copy of the export."""
        raise NotImplementedError

    @contextlib.contextmanager
    def fetched(self, uris: Sequence[str], progress: ProgressCallback, *, listed_by: str) -> Iterator[dict[str, Path]]:
        """Local paths of ``uris`` (downloaded to a temp dir for S3) for as long as the block runs.

        A file that is not there is an error naming the manifest (``listed_by``) that lists it.
        """
        raise NotImplementedError

    def uri_sql(self, local_path_sql: str) -> str:
        """SQL turning the local path DuckDB read back into the file's URI."""
        return local_path_sql


class _LocalExport(_Export):
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise SourceError(f"{root}: not a directory")
        self.path = root.resolve()
        self.root = str(self.path)

    def manifests(self) -> list[_Manifest]:
        found = []
        for path in self.path.rglob("*anifest.json"):
            rel = path.relative_to(self.path).as_posix()
            period = _manifest_period(rel)
            if period:
                found.append(_Manifest(period, str(path), path.stat().st_mtime))
        return found

    def read(self, uri: str) -> bytes:
        try:
            return Path(uri).read_bytes()
        except OSError as exc:
            raise SourceError(f"{uri}: cannot be read: {exc.strerror}") from exc

    def resolve(self, listed: str) -> str:
        below = _DATA_BELOW_ROOT.search(listed)
        if below:
            return str(self.path / below.group(1))
        candidate = Path(listed)
        return str(candidate if candidate.is_absolute() else self.path / listed)

    @contextlib.contextmanager
    def fetched(self, uris: Sequence[str], progress: ProgressCallback, *, listed_by: str) -> Iterator[dict[str, Path]]:
        missing = [u for u in uris if not Path(u).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise SourceError(f"{listed_by} lists {missing[0]}, which is not there{more}", hint=_INCOMPLETE_HINT)
        yield {uri: Path(uri) for uri in uris}


class _S3Export(_Export):
    """An export in S3, read with boto3 (list_objects_v2, get_object, download_file)."""

    def __init__(self, uri: str, *, profile: str | None, endpoint_url: str | None) -> None:
        match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri.strip())
        if not match:
            raise SourceError(f"{uri!r} is not an S3 URI", hint="use s3://BUCKET/PREFIX/EXPORT_NAME")
        self.bucket = match.group(1)
        self.prefix = match.group(2).strip("/")
        self.root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._profile = profile
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._session: Any = None
        self._download_root: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            import botocore.exceptions

            try:
                self._session = boto3.Session(profile_name=self._profile) if self._profile else boto3.Session()
                self._client = self._session.client("s3", endpoint_url=self._endpoint_url)
            except botocore.exceptions.BotoCoreError as exc:
                raise SourceError(
                    f"cannot set up the S3 client for {self.root}: {self._redact(str(exc))}",
                    hint="check --profile and --endpoint-url, or the AWS_* environment",
                ) from None
        return self._client

    def _redact(self, text: str) -> str:
        """``text`` without the credentials in use (botocore messages should not have them)."""
        secrets: list[str] = []
        with contextlib.suppress(Exception):
            credentials = self._session.get_credentials() if self._session else None
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                secrets = [s for s in (frozen.secret_key, frozen.token, frozen.access_key) if s]
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
            if os.environ.get(name):
                secrets.append(os.environ[name])
        for secret in sorted(set(secrets), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def _call(self, what: str, fn: Callable[[], Any], *, missing: str | None = None) -> Any:
        """Run one S3 call; map botocore's errors to SourceError naming the object, not the keys.

        ``missing`` is the message for an object that is not there (e.g. which manifest listed it).
        """
        import botocore.exceptions

        try:
            return fn()
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            message = error.get("Message") or ""
            if missing and code in ("404", "NoSuchKey"):
                raise SourceError(missing, hint=_INCOMPLETE_HINT) from None
            hint = {
                "NoSuchBucket": "check the bucket name",
                "NoSuchKey": "the export changed while it was read: run again",
                "404": "the export changed while it was read: run again",
                "AccessDenied": "the credentials need s3:ListBucket and s3:GetObject on the export",
                "403": "the credentials need s3:ListBucket and s3:GetObject on the export",
                "InvalidAccessKeyId": "check the AWS credentials (profile or AWS_* environment)",
                "SignatureDoesNotMatch": "check the AWS credentials (profile or AWS_* environment)",
                "ExpiredToken": "refresh the AWS session credentials",
            }.get(code, "check the S3 URI, the credentials and --endpoint-url")
            raise SourceError(f"S3 {what}: {code} {self._redact(message)}".rstrip(), hint=hint) from None
        except botocore.exceptions.NoCredentialsError:
            raise SourceError(
                f"S3 {what}: no AWS credentials found",
                hint="set AWS_PROFILE or pass --profile, or configure the default credential chain",
            ) from None
        except botocore.exceptions.ProfileNotFound:
            raise SourceError(f"S3 {what}: AWS profile {self._profile!r} not found", hint="check --profile") from None
        except botocore.exceptions.BotoCoreError as exc:  # endpoint unreachable, timeouts, …
            raise SourceError(
                f"S3 {what}: {self._redact(str(exc))}", hint="check the network and --endpoint-url"
            ) from None

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        def pages() -> list[dict[str, Any]]:
            paginator = self.client.get_paginator("list_objects_v2")
            return list(paginator.paginate(Bucket=self.bucket, Prefix=prefix))

        for page in self._call(f"listing s3://{self.bucket}/{prefix}", pages):
            yield from page.get("Contents", [])

    def manifests(self) -> list[_Manifest]:
        root = f"{self.prefix}/" if self.prefix else ""
        found = []
        # Data Exports keep manifests under metadata/; legacy CUR beside the data: list both.
        for obj in [*self._list(f"{root}metadata/"), *self._legacy_candidates(root)]:
            rel = obj["Key"][len(root) :]
            period = _manifest_period(rel)
            if period:
                found.append(_Manifest(period, f"s3://{self.bucket}/{obj['Key']}", obj["LastModified"].timestamp()))
        return found

    def _legacy_candidates(self, root: str) -> Iterator[dict[str, Any]]:
        """Objects directly in legacy period folders (``YYYYMMDD-YYYYMMDD/``), not their data."""

        def folders() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            prefixes = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root, Delimiter="/"):
                prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            return prefixes

        for folder in self._call(f"listing {self.root}", folders):
            if re.fullmatch(r"\d{8}-\d{8}/", folder[len(root) :]):

                def in_folder(folder: str = folder) -> list[dict[str, Any]]:
                    page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=folder, Delimiter="/")
                    return page.get("Contents", [])

                yield from self._call(f"listing s3://{self.bucket}/{folder}", in_folder)

    def read(self, uri: str) -> bytes:
        bucket, key = _split_s3(uri)
        return self._call(f"reading {uri}", lambda: self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def resolve(self, listed: str) -> str:
        below = _DATA_BELOW_ROOT.search(listed)
        if below:
            return f"{self.root}/{below.group(1)}"
        if listed.startswith("s3://"):
            return listed
        return f"s3://{self.bucket}/{listed.lstrip('/')}"  # legacy reportKeys are bucket keys

    @contextlib.contextmanager
    def fetched(self, uris: Sequence[str], progress: ProgressCallback, *, listed_by: str) -> Iterator[dict[str, Path]]:
        with tempfile.TemporaryDirectory(prefix="finops-aws-cur-") as tmp:
            self._download_root = tmp
            local = {}
            for i, uri in enumerate(uris):
                bucket, key = _split_s3(uri)
                target = Path(tmp, bucket, key)
                target.parent.mkdir(parents=True, exist_ok=True)
                progress(f"downloading {PurePosixPath(key).name}", i, len(uris))
                self._call(
                    f"downloading {uri}",
                    lambda b=bucket, k=key, t=target: self.client.download_file(b, k, str(t)),
                    missing=f"{listed_by} lists {uri}, which is not there",
                )
                local[uri] = target
            progress("downloaded", len(uris), len(uris))
            try:
                yield local
            finally:
                self._download_root = None

    def uri_sql(self, local_path_sql: str) -> str:
        assert self._download_root is not None, "uri_sql is only meaningful while files are fetched"
        return f"('s3://' || substr({local_path_sql}, {len(self._download_root) + 2}))"


_INCOMPLETE_HINT = "the delivery is incomplete or being rewritten: wait for AWS to finish, or copy it again"


def _split_s3(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise SourceError(f"{uri!r} is not an S3 object URI")
    return match.group(1), match.group(2)


def _manifest_period(relative: str) -> str | None:
    """The billing period (YYYY-MM) of a manifest at ``relative`` below the export root."""
    match = _DATA_EXPORTS_MANIFEST.search(relative)
    if match:
        return match.group(1)
    # Legacy CUR: the period folder's manifest is the current one (copies sit in assembly folders).
    match = _LEGACY_MANIFEST.search(relative)
    return f"{match.group(1)}-{match.group(2)}" if match else None


def _has_manifests(path: str) -> bool:
    root = Path(path).expanduser()
    if not root.is_dir():
        return False
    return any(_manifest_period(p.relative_to(root).as_posix()) for p in root.rglob("*anifest.json"))


def _ingest_export(wh: Warehouse, export: _Export, wanted: list[str] | None, report: ProgressCallback) -> AwsIngestReport:
    report(f"listing manifests in {export.root}", 0, 0)
    newest: dict[str, _Manifest] = {}
    for manifest in export.manifests():
        current = newest.get(manifest.period)
        if current is None or (manifest.modified, manifest.uri) > (current.modified, current.uri):
            newest[manifest.period] = manifest
    if not newest:
        raise SourceError(
            f"no CUR manifests under {export.root}",
            hint="expected <export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json"
            " (Data Exports) or <report>/YYYYMMDD-YYYYMMDD/<report>-Manifest.json (legacy CUR);"
            " for files without manifest, name the files",
        )
    if wanted:
        missing = [p for p in wanted if p not in newest]
        if missing:
            raise SourceError(
                f"{export.root} has no delivery for {', '.join(missing)}",
                hint=f"periods with a manifest: {', '.join(sorted(newest))}",
            )
    chosen = [newest[p] for p in sorted(newest) if not wanted or p in wanted]
    state = wh.source_state(SOURCE_KIND, "manifest/")
    loads: list[PeriodLoad] = []
    skipped: list[tuple[str, int]] = []
    for manifest in chosen:
        raw = export.read(manifest.uri)
        sha256 = hashlib.sha256(raw).hexdigest()
        key = f"manifest/{export.root}/{manifest.period}"
        previous = state.get(key)
        if previous and previous.get("sha256") == sha256 and _still_loaded(wh, int(previous["batch_id"])):
            skipped.append((manifest.period, int(previous["batch_id"])))
            report(f"{manifest.period}: unchanged", 0, 0)
            continue
        parsed = _parse_manifest(raw, manifest.uri)
        listed = parsed.get("dataFiles") or parsed.get("reportKeys") or []
        if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
            raise SourceError(f"{manifest.uri}: dataFiles / reportKeys is not a list of file names")
        uris = list(dict.fromkeys(export.resolve(x) for x in listed))
        export_id = str(parsed.get("executionId") or parsed.get("assemblyId") or sha256[:32])
        with export.fetched(uris, report, listed_by=manifest.uri) as local:
            files = _inspect_all([(uri, local[uri]) for uri in uris], report)
            loads.append(
                _load(
                    wh,
                    files,
                    export=export,
                    uri=manifest.uri,
                    period=manifest.period,
                    export_id=export_id,
                    manifest=manifest.uri,
                    state={key: {"sha256": sha256, "export_id": export_id, "manifest": manifest.uri, "files": len(uris)}},
                    wanted=None,
                    report=report,
                )
            )
    return AwsIngestReport(loads, skipped)


def _still_loaded(wh: Warehouse, batch_id: int) -> bool:
    """Whether `charges` still holds every row the batch that loaded a manifest wrote (a later
    load of the same partitions from another copy of the export would have replaced them)."""
    counts = wh.query(
        "SELECT b.rows_loaded AS loaded, (SELECT count(*) FROM charges WHERE x_BatchId = b.batch_id) AS remaining"
        " FROM ingest_batches AS b WHERE b.batch_id = ?",
        [batch_id],
    )
    return counts.height == 1 and counts["loaded"][0] == counts["remaining"][0]


def _parse_manifest(raw: bytes, uri: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{uri}: not a JSON manifest: {exc}") from None
    if not isinstance(parsed, dict):
        raise SourceError(f"{uri}: not a manifest (expected a JSON object)")
    if "dataFiles" not in parsed and "reportKeys" not in parsed:
        raise SourceError(
            f"{uri}: not a CUR manifest: it lists no dataFiles (Data Exports) or reportKeys (legacy CUR)"
        )
    return parsed


# -- files without manifest -----------------------------------------------------------------


def _ingest_files(wh: Warehouse, patterns: Sequence[str], wanted: list[str] | None, report: ProgressCallback) -> PeriodLoad:
    paths = [p for p in expand(patterns, suffixes=DATA_SUFFIXES) if not p.name.lower().endswith("manifest.json")]
    files = _inspect_all([(str(p), p) for p in paths], report)
    report("checksums", 0, len(files))
    sources = [SourceFile.of(f.local) for f in files]
    digest = hashlib.sha256("".join(sorted(f.sha256 for f in sources)).encode()).hexdigest()
    return _load(
        wh,
        files,
        sources=sources,
        export=None,
        uri=", ".join(patterns),
        period=None,
        export_id=f"files-sha256:{digest[:32]}",
        manifest=None,
        state=None,
        wanted=wanted,
        report=report,
    )


# -- checking files -------------------------------------------------------------------------


def _canonical_name(name: str) -> str:
    """CUR 2.0 name of a column: legacy ``lineItem/UnblendedCost`` → ``line_item_unblended_cost``,
    ``savingsPlan/SavingsPlanARN`` → ``savings_plan_savings_plan_a_r_n`` (AWS's own rule)."""
    name = name.strip()
    if "/" not in name:
        return name.lower()
    category, field = name.split("/", 1)
    return f"{_snake(category)}_{_snake(field)}"


def _snake(text: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", text).lower()


def _tag_key(raw: str) -> str:
    """The user's tag key: ``user:team`` / ``user_team`` → ``team``; ``aws:createdBy`` stays,
    ``aws_createdBy`` (CUR 2.0 map key) → ``aws:createdBy``."""
    if raw.startswith(("user:", "user_")):
        return raw[5:]
    if raw.startswith("aws_"):
        return "aws:" + raw[4:]
    return raw


def _inspect_all(files: Sequence[tuple[str, Path]], report: ProgressCallback) -> list[CurFile]:
    checked = []
    with Warehouse.scratch() as con:
        for i, (uri, local) in enumerate(files):
            report(f"checking {PurePosixPath(uri).name}", i, len(files))
            checked.append(_inspect(con, uri, local))
    if not checked:
        return checked
    dialects = {f.dialect for f in checked}
    if len(dialects) > 1:
        raise SourceError(
            f"one delivery mixes export kinds ({', '.join(sorted(dialects))}): "
            + ", ".join(f"{f.path.name} is {f.dialect}" for f in checked[:4]),
            hint="load each export (CUR 2.0, legacy CUR, FOCUS) on its own",
        )
    return checked


def _inspect(con: duckdb.DuckDBPyConnection, uri: str, local: Path) -> CurFile:
    """Check that ``local`` (the copy of ``uri``) is a readable CUR or AWS FOCUS export file."""
    shown = PurePosixPath(uri) if uri.startswith("s3://") else local
    fmt, compression = detect_format(local)
    if compression == "gzip":
        try:
            verify_gzip(local)
        except SourceError as exc:
            raise SourceError(str(exc).replace(str(local), uri)) from None
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {read_sql(local, fmt, compression)}").fetchall()
    except duckdb.Error as exc:
        raise SourceError(f"{uri}: cannot be read as {fmt.upper()}: {_first_line(exc, local, uri)}") from None
    types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
    lower = {name.strip().lower(): name for name in types}
    if all(c.lower() in lower for c in focus.REQUIRED_COLUMNS):
        [focus_file] = focus.inspect([local])
        return CurFile(uri, shown, local, "focus", fmt, compression, {}, types, {}, focus_file.ignored_columns, focus_file)
    legacy = any("/" in name for name in types)
    columns: dict[str, str] = {}
    tag_columns: dict[str, str] = {}
    for name in types:
        stripped = name.strip()
        if stripped.lower().startswith("resourcetags/"):
            tag_columns[name] = _tag_key(stripped.split("/", 1)[1])
        elif stripped.lower().startswith("resource_tags_"):
            tag_columns[name] = _tag_key(stripped[len("resource_tags_") :])
        else:
            columns.setdefault(_canonical_name(name), name)
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    if missing:
        named = [REQUIRED_FIELDS[c] if legacy else c for c in missing]
        raise SourceError(
            f"{uri}: not an AWS Cost and Usage Report: missing column{'s' if len(missing) > 1 else ''} {', '.join(named)}",
            hint="CUR 2.0, legacy CUR and AWS FOCUS exports are read; a FOCUS file from elsewhere: finops ingest focus",
        )
    return CurFile(uri, shown, local, "legacy" if legacy or tag_columns else "cur2", fmt, compression, columns, types, tag_columns)


# -- loading --------------------------------------------------------------------------------


def _load(
    wh: Warehouse,
    files: list[CurFile],
    *,
    sources: list[SourceFile] | None = None,
    export: _Export | None,
    uri: str,
    period: str | None,
    export_id: str,
    manifest: str | None,
    state: dict[str, dict[str, Any]] | None,
    wanted: list[str] | None,
    report: ProgressCallback,
) -> PeriodLoad:
    """Load one delivery's files in one batch (one transaction)."""
    label = period or "files"
    report(f"{label}: checksums", 0, len(files))
    if sources is None:
        sources = [SourceFile.of(f.local) for f in files]
    sources = [dataclasses.replace(source, path=f.uri) for source, f in zip(sources, files, strict=True)]
    dialect: Dialect = files[0].dialect if files else "cur2"
    uri_sql = export.uri_sql if export is not None else (lambda col: col)
    with wh.load(SOURCE_KIND, uri, sources) as batch:
        report(f"{label}: reading {len(files)} file{'s' if len(files) != 1 else ''}", 0, len(files))
        if dialect == "focus":
            rows_sql, quarantine_sql, rows_read = _stage_focus(batch, files, period, export_id, uri_sql, report)
        else:
            rows_sql, quarantine_sql, rows_read = _stage_cur(batch, files, period, wanted, export_id, uri_sql, report)
        if state:
            for value in state.values():
                value["batch_id"] = batch.batch_id
        report(f"{label}: replacing partitions", len(files), len(files))
        # Row order means nothing inside `charges`; not keeping it lets DuckDB write in parallel
        # with less memory. (Only now: staged CSV rows take their line numbers from their order.)
        batch.execute("SET preserve_insertion_order = false")
        try:
            result = batch.replace_partitions(
                "charges",
                rows_sql,
                partition_by=PARTITION_COLUMNS,
                rows_read=rows_read,
                quarantine_sql=quarantine_sql,
                state=state,
            )
        except duckdb.Error as exc:
            raise SourceError(f"{uri}: cannot be loaded: {_first_line(exc)}; nothing was written") from None
        period_totals = batch.period_totals()
        sample = batch.quarantine_sample()
    return PeriodLoad(period, manifest, export_id, dialect, result, files, period_totals, sample)


def _stage_focus(batch, files, period, export_id, uri_sql, report) -> tuple[str, str, int]:
    """An AWS FOCUS export: FOCUS's own mapping, with AWS lineage and the delivery's checks.

    The FOCUS connector's staging step is reused rather than ``focus.ingest``, which opens its
    own batch: the manifest's checksum (skip state) and x_ExportId must be written in the same
    transaction as the rows they describe.
    """
    rows_read = 0
    for i, file in enumerate(files):
        report(f"reading {file.path.name}", i, len(files))
        assert file.focus_file is not None
        rows_read += focus._stage_file(batch, i, file.focus_file, first=i == 0)
    outside = "false"
    if period:
        outside = f"coalesce(strftime(BillingPeriodStart, '%Y-%m') <> {sql_literal(period)}, false)"
    columns = ", ".join(f'"{c}"' for c in FOCUS_COLUMNS)
    rows_sql = (
        f"SELECT {columns}, '{SOURCE_KIND}' AS x_Source, {batch.batch_id} AS x_BatchId,"
        f" {uri_sql('_file')} AS x_SourceFile, _row AS x_SourceRow, {sql_literal(export_id)} AS x_ExportId"
        f" FROM focus_rows WHERE len(_errors) = 0 AND NOT {outside}"
    )
    quarantine_sql = (
        f"SELECT {uri_sql('_file')} AS file, _row AS row_number, regexp_extract(_errors[1], '^(\\w+):', 1) AS column_name,"
        " array_to_string(_errors, '; ') AS reason, _raw AS raw_row FROM focus_rows WHERE len(_errors) > 0"
        f" UNION ALL SELECT {uri_sql('_file')}, _row, 'BillingPeriodStart',"
        f" 'BillingPeriodStart: billing period ' || strftime(BillingPeriodStart, '%Y-%m') || ' is outside this delivery''s period {period}',"
        " NULL FROM focus_rows WHERE len(_errors) = 0 AND " + outside
        + f" UNION ALL SELECT {uri_sql('file')}, row_number, column_name, reason, raw_row FROM focus_rejects"
    )
    return rows_sql, quarantine_sql, rows_read


@dataclasses.dataclass(frozen=True)
class _Relation:
    """Rows of one or more files with the same columns, as DuckDB reads them."""

    sql: str  # FROM-able SQL
    file_sql: str  # the row's file URI
    row_sql: str  # the row's 1-based data row in its file
    columns: dict[str, str]  # canonical → column name
    types: dict[str, str]
    tag_columns: dict[str, str]
    text_input: bool  # CSV: every column is text


def _stage_cur(batch, files, period, wanted, export_id, uri_sql, report) -> tuple[str, str | None, int]:
    """Stage what must be staged (CSV text, a service table) and return (rows SQL, quarantine SQL,
    rows read). Parquet is read in place by the statements that load it: staging ten million
    line items in a temp table first would cost gigabytes of memory for nothing."""
    relations: list[_Relation] = []
    rejects: list[str] = []
    parquet = [f for f in files if f.format == "parquet"]
    if parquet:
        relations.append(_parquet_relation(batch, parquet, uri_sql))
    for i, file in enumerate(f for f in files if f.format == "csv"):
        report(f"reading {file.path.name}", i, len(files))
        relation, reject_sql = _csv_relation(batch, i, file)
        relations.append(relation)
        rejects.append(reject_sql)
    batch.stage(
        "aws_services",
        "SELECT * FROM (VALUES "
        + ", ".join(
            f"({sql_literal(code)}, {sql_literal(name)}, {sql_literal(category)}, {sql_literal(sub) if sub else 'NULL'})"
            for code, (name, category, sub) in SERVICES.items()
        )
        + ") AS s(code, name, category, subcategory)",
    )
    if not relations:
        empty = _empty_relation()
        relations.append(empty)
    # Rows without a readable period stay in scope: they are quarantined, never silently dropped.
    scope = None
    if wanted:
        months = ", ".join(map(sql_literal, wanted))
        scope = f"strftime(bill_billing_period_start_date, '%Y-%m') IN ({months}) OR bill_billing_period_start_date IS NULL"
    typed = " UNION ALL ".join(_typed_sql(r, period) for r in relations)
    if scope:
        typed = f"SELECT * FROM ({typed}) WHERE {scope}"
    rows_read, bad = batch.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT _ok) FROM ({typed})").fetchone()
    rejected = 0
    if rejects:
        rejected = batch.execute(f"SELECT count(*) FROM ({' UNION ALL '.join(rejects)})").fetchone()[0]
    rows_sql = _focus_sql(typed, batch.batch_id, export_id)
    quarantine = [f"SELECT * FROM ({r})" for r in rejects]
    if bad:  # a clean delivery (the usual case) is not read a third time for nothing
        quarantine.insert(
            0,
            "SELECT _file AS file, _row AS row_number, _error_column AS column_name,"
            f" array_to_string(_errors, '; ') AS reason, _raw AS raw_row FROM ({typed}) WHERE NOT _ok",
        )
    quarantine_sql = " UNION ALL ".join(quarantine) if quarantine else None
    return rows_sql, quarantine_sql, rows_read + rejected


def _parquet_relation(batch, files: list[CurFile], uri_sql) -> _Relation:
    paths = "[" + ", ".join(sql_literal(str(f.local)) for f in files) + "]"
    source = f"read_parquet({paths}, filename = true, file_row_number = true, union_by_name = true)"
    described = batch.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {row[0]: row[1] for row in described if row[0] not in ("filename", "file_row_number")}
    columns: dict[str, str] = {}
    tag_columns: dict[str, str] = {}
    for file in files:
        for canonical, name in file.columns.items():
            columns.setdefault(canonical, name)
        tag_columns.update(file.tag_columns)
    return _Relation(source, uri_sql("r.filename"), "r.file_row_number + 1", columns, types, tag_columns, False)


def _csv_relation(batch, index: int, file: CurFile) -> tuple[_Relation, str]:
    """Stage one CSV file as text; its malformed lines go to the quarantine with their line."""
    raw = f"_aws_raw_{index}"
    rejects = f"_aws_rejects_{index}"
    try:
        batch.stage(raw, f"SELECT * FROM {read_sql(file.local, 'csv', file.compression, rejects_table=rejects)}")
    except Exception as exc:
        raise SourceError(f"{file.uri}: cannot be read: {_first_line(exc, file.local, file.uri)}") from None
    rejected = batch.execute(f"SELECT count(*) FROM {rejects}").fetchone()[0]
    if rejected == 0:
        row_sql = "r.rowid + 1"
    else:
        # Staged rows skip the rejected lines: accepted row k is data row k + #{rejected before it}.
        row_sql = (
            "r.rowid + 1 + coalesce((SELECT count(*) FROM (SELECT DISTINCT line - 1 AS d FROM "
            f"{rejects}) q WHERE q.d - (SELECT count(*) FROM (SELECT DISTINCT line - 1 AS d2 FROM {rejects}) q2"
            " WHERE q2.d2 < q.d) <= r.rowid + 1), 0)"
        )
    reject_sql = (
        f"SELECT {sql_literal(file.uri)} AS file, min(line) - 1 AS row_number, any_value(column_name) AS column_name,"
        " 'line ' || min(line) || ': ' || string_agg(DISTINCT error_type || ': ' || error_message, '; ') AS reason,"
        f" to_json({{'csv_line': any_value(csv_line)}}) AS raw_row FROM {rejects} GROUP BY line"
    )
    types = {name: "VARCHAR" for name in file.types}
    relation = _Relation(f'"{raw}"', sql_literal(file.uri), row_sql, file.columns, types, file.tag_columns, True)
    return relation, reject_sql


def _empty_relation() -> _Relation:
    """A relation with no rows (a manifest listing no files), so the period still records its state."""
    types = {name: "VARCHAR" for name in REQUIRED_FIELDS}
    sql = "(SELECT " + ", ".join(f"CAST(NULL AS VARCHAR) AS {name}" for name in REQUIRED_FIELDS) + " WHERE false)"
    return _Relation(sql, "NULL", "NULL", {n: n for n in REQUIRED_FIELDS}, types, {}, True)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed_sql(rel: _Relation, period: str | None) -> str:
    """One row per line item: canonical columns typed, ``_ok``, ``_errors`` (reasons),
    ``_error_column``, ``_file``, ``_row`` and ``_raw`` (the values read, for the quarantine).

    Checks test whether a value is *there* on the column as read (cheap) and whether text
    parses separately, so the load does not convert a column twice.
    """
    exprs: dict[str, str] = {}
    present: dict[str, str] = {}  # field → an expression that is NULL when the value is missing
    checks: list[tuple[str, str, str]] = []  # (condition, column name, reason SQL)

    def source(field: str) -> tuple[str | None, str, str]:
        name = rel.columns.get(field)
        typ = rel.types[name].upper() if name else "VARCHAR"
        return (f"r.{_q(name)}" if name else None), (name or field), typ

    def text_of(col: str, typ: str) -> str:
        if rel.text_input:
            return f"nullif(nullif(trim({col}), ''), 'NULL')"
        return f"nullif({col}, '')" if typ == "VARCHAR" else f"CAST({col} AS VARCHAR)"

    def product_key(field: str) -> str | None:
        key = PRODUCT_MAP_KEYS.get(field)
        name = rel.columns.get("product")
        if not key or not name:
            return None
        if rel.types[name].upper().startswith("MAP"):
            return f"nullif(r.{_q(name)}[{sql_literal(key)}], '')"
        text = text_of(f"r.{_q(name)}", rel.types[name].upper())
        return f"nullif(json_extract_string(CASE WHEN json_valid({text}) THEN {text} END, {sql_literal('$.' + key)}), '')"

    def unreadable(text: str, shown: str, what: str) -> str:
        return f"'{_esc(shown)}: cannot read ''' || left({text}, 60) || ''' as {what}'"

    for field in MONEY_FIELDS:
        col, shown, typ = source(field)
        if col is None:
            exprs[field] = present[field] = f"CAST(NULL AS {MONEY})"
        elif typ.startswith("DECIMAL") or typ in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"):
            exprs[field], present[field] = f"CAST({col} AS {MONEY})", col
        elif typ in ("DOUBLE", "FLOAT", "REAL"):
            exprs[field], present[field] = _money_from_double(col), col
            checks.append((f"NOT isfinite({col})", shown, f"'{_esc(shown)}: ' || {col} || ' is not an amount'"))
        else:
            text = text_of(col, typ)
            exprs[field], present[field] = _money_from_text(text), text
            checks.append((f"{text} IS NOT NULL AND {exprs[field]} IS NULL", shown, unreadable(text, shown, "a number")))
    for field in TIME_FIELDS:
        col, shown, typ = source(field)
        if col is None:
            exprs[field] = present[field] = "CAST(NULL AS TIMESTAMP)"
        elif typ.startswith(("TIMESTAMP", "DATE")):
            exprs[field] = present[field] = f"CAST({col} AS TIMESTAMP)"
        else:
            text = text_of(col, typ)
            exprs[field], present[field] = f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)", text
            checks.append((f"{text} IS NOT NULL AND {exprs[field]} IS NULL", shown, unreadable(text, shown, "a date-time")))
    for field in TEXT_FIELDS:
        col, _, typ = source(field)
        candidates = [text_of(col, typ)] if col is not None else []
        if (from_map := product_key(field)) is not None:
            candidates.append(from_map)
        if not candidates:
            exprs[field] = "CAST(NULL AS VARCHAR)"
        else:
            exprs[field] = candidates[0] if len(candidates) == 1 else f"coalesce({', '.join(candidates)})"
        present[field] = exprs[field]
    exprs["tags"] = _tags_sql(rel, checks)

    for field, why in NOT_NULL_FIELDS.items():
        shown = source(field)[1]
        checks.append((f"{present[field]} IS NULL", shown, f"'{_esc(shown)}: empty, but {why}'"))
    line_type = exprs["line_item_line_item_type"]
    type_name = source("line_item_line_item_type")[1]
    known = ", ".join(sql_literal(t) for t in LINE_ITEM_TYPES)
    unknown = f"'{_esc(type_name)}: unknown line item type ''' || {line_type} || ''': its amortized cost is not known'"
    checks.append((f"{line_type} NOT IN ({known})", type_name, unknown))
    for needing, needed in (
        ("SavingsPlanCoveredUsage", "savings_plan_savings_plan_effective_cost"),
        ("SavingsPlanRecurringFee", "savings_plan_total_commitment_to_date"),
        ("SavingsPlanRecurringFee", "savings_plan_used_commitment"),
        ("DiscountedUsage", "reservation_effective_cost"),
    ):
        shown = source(needed)[1]
        checks.append((f"{line_type} = '{needing}' AND {present[needed]} IS NULL", shown,
                       f"'{_esc(shown)}: empty, but a {needing} line needs it for EffectiveCost'"))
    if period:
        start, shown = exprs["bill_billing_period_start_date"], source("bill_billing_period_start_date")[1]
        first, after = _month_bounds(period)
        outside = f"'{_esc(shown)}: billing period ' || strftime({start}, '%Y-%m') || ' is outside this delivery''s period {period}'"
        checks.append((f"NOT ({start} >= TIMESTAMP '{first}' AND {start} < TIMESTAMP '{after}')", shown, outside))

    conditions = [f"coalesce({cond}, false)" for cond, _, _ in checks]
    ok = "NOT (" + " OR ".join(conditions) + ")"
    reasons = ", ".join(f"CASE WHEN {c} THEN {reason} END" for c, (_, _, reason) in zip(conditions, checks, strict=True))
    errors = f"list_filter([{reasons}]::VARCHAR[], e -> e IS NOT NULL)"
    first_bad = " ".join(f"WHEN {c} THEN {sql_literal(name)}" for c, (_, name, _) in zip(conditions, checks, strict=True))
    read_columns = [*dict.fromkeys([*rel.columns.values(), *rel.tag_columns])]
    raw = "to_json({" + ", ".join(f"{sql_literal(name)}: r.{_q(name)}" for name in read_columns) + "})"
    select = ", ".join(f"{expr} AS {_q(name)}" for name, expr in exprs.items())
    return (
        f"SELECT {select}, {ok} AS _ok, {errors} AS _errors, CASE {first_bad} END AS _error_column,"
        f" {rel.file_sql} AS _file, {rel.row_sql} AS _row, {raw} AS _raw FROM {rel.sql} AS r"
    )


def _money_from_double(col: str) -> str:
    """SQL for exact money from a DOUBLE amount: the decimal AWS wrote, NULL for NaN and infinity.

    DuckDB's DOUBLE → DECIMAL cast scales in binary floating point. Below 100,000 the scaled
    value stays under 2^53 and the rounding errors add up to less than 0.14 of the last digit,
    so a 64-bit DECIMAL(18, 10) cast lands exactly on the 10-decimal amount; larger amounts
    would drift (780857.137942 → 780857.1379419999) and go through their shortest text form,
    which is the digits AWS wrote.
    """
    exact_direct = f"CAST(CAST({col} AS DECIMAL(18, 10)) AS {MONEY})"
    return f"CASE WHEN abs({col}) < 100000 THEN {exact_direct} ELSE {_money_from_text(f'CAST({col} AS VARCHAR)')} END"


def _money_from_text(text: str) -> str:
    """SQL for exact money from its decimal text, NULL when the text is not a number.

    Text goes to a 64-bit DECIMAL(18, 10) first: parsing straight into the 128-bit
    DECIMAL(38, 10) is ~30× slower, and only amounts of 100 million or more need it.
    """
    return f"coalesce(CAST(TRY_CAST({text} AS DECIMAL(18, 10)) AS {MONEY}), TRY_CAST({text} AS {MONEY}))"


def _month_bounds(period: str) -> tuple[str, str]:
    """('2026-07-01', '2026-08-01') for '2026-07'."""
    year, month = map(int, period.split("-"))
    return f"{period}-01", f"{year + month // 12}-{month % 12 + 1:02d}-01"


def _esc(text: str) -> str:
    """``text`` inside a single-quoted SQL literal."""
    return text.replace("'", "''")


_RENAME_KEY = (
    "CASE WHEN starts_with({k}, 'user:') OR starts_with({k}, 'user_') THEN substr({k}, 6)"
    " WHEN starts_with({k}, 'aws_') THEN 'aws:' || substr({k}, 5) ELSE {k} END"
)


def _tags_sql(rel: _Relation, checks: list[tuple[str, str, str]]) -> str:
    """Tags as a string map with the user's keys; NULL when a line has none."""
    name = rel.columns.get("resource_tags")
    if name:
        typ = rel.types[name].upper()
        col = f"r.{_q(name)}"
        if typ.startswith("MAP"):
            entries = f"list_filter(map_entries(CAST({col} AS MAP(VARCHAR, VARCHAR))), e -> coalesce(e.value, '') <> '')"
            renamed = f"list_transform({entries}, e -> {{'key': {_RENAME_KEY.format(k='e.key')}, 'value': e.value}})"
        else:  # CSV: a JSON object as text
            text = f"nullif(nullif(trim({col}), ''), 'NULL')" if typ == "VARCHAR" else f"CAST({col} AS VARCHAR)"
            valid = f"(CASE WHEN json_valid({text}) THEN json_type({text}::JSON) = 'OBJECT' ELSE false END)"
            checks.append((f"{text} IS NOT NULL AND {text} <> '{{}}' AND NOT {valid}", name,
                           f"'{_esc(name)}: not a JSON object: ''' || left({text}, 60) || ''''"))
            entries = (
                f"list_filter(list_transform(CASE WHEN {valid} THEN json_keys({text}::JSON) END,"
                f" k -> {{'key': k, 'value': {text}::JSON ->> k}}), e -> coalesce(e.value, '') <> '')"
            )
            renamed = f"list_transform({entries}, e -> {{'key': {_RENAME_KEY.format(k='e.key')}, 'value': e.value}})"
        return f"CASE WHEN len({entries}) > 0 THEN map_from_entries({renamed}) END"
    if rel.tag_columns:
        items = ", ".join(
            f"{{'key': {sql_literal(key)}, 'value': nullif(trim(CAST(r.{_q(col)} AS VARCHAR)), '')}}"
            for col, key in rel.tag_columns.items()
        )
        entries = f"list_filter([{items}], e -> e.value IS NOT NULL)"
        return f"CASE WHEN len({entries}) > 0 THEN map_from_entries({entries}) END"
    return "CAST(NULL AS MAP(VARCHAR, VARCHAR))"


def _focus_sql(typed: str, batch_id: int, export_id: str) -> str:
    """FOCUS columns of `charges` from the typed line items (rows that passed every check)."""
    t = "c.line_item_line_item_type"
    category = "CASE " + " ".join(f"WHEN {t} = {sql_literal(k)} THEN {sql_literal(v[0])}" for k, v in LINE_ITEM_TYPES.items()) + " END"
    frequency = "CASE " + " ".join(f"WHEN {t} = {sql_literal(k)} THEN {sql_literal(v[1])}" for k, v in LINE_ITEM_TYPES.items()) + " END"
    zero = f"CAST(0 AS {MONEY})"
    effective = (
        f"CASE WHEN {t} = 'SavingsPlanCoveredUsage' THEN c.savings_plan_savings_plan_effective_cost"
        f" WHEN {t} = 'SavingsPlanRecurringFee' THEN c.savings_plan_total_commitment_to_date - c.savings_plan_used_commitment"
        f" WHEN {t} IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN {zero}"
        f" WHEN {t} = 'DiscountedUsage' THEN c.reservation_effective_cost"
        f" WHEN {t} = 'RIFee' THEN coalesce(c.reservation_unused_amortized_upfront_fee_for_billing_period, {zero})"
        f" + coalesce(c.reservation_unused_recurring_fee, {zero})"
        " ELSE c.line_item_unblended_cost END"
    )
    named = "coalesce(c.product_servicename, c.product_product_name, '')"
    pricing_model = (
        f"CASE WHEN {t} IN ('SavingsPlanCoveredUsage', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee',"
        " 'SavingsPlanNegation') THEN 'SavingsPlan'"
        f" WHEN {t} IN ('DiscountedUsage', 'RIFee') THEN 'Reservation'"
        " WHEN c.pricing_term = 'Spot' OR contains(coalesce(c.line_item_usage_type, ''), 'SpotUsage') THEN 'Spot'"
        " WHEN c.pricing_term = 'Reserved' THEN 'Reservation'"
        f" WHEN c.pricing_term = 'OnDemand' OR (c.pricing_term IS NULL AND {t} = 'Usage') THEN 'OnDemand' END"
    )
    is_sp, is_ri = "c.savings_plan_savings_plan_a_r_n IS NOT NULL", "c.reservation_reservation_a_r_n IS NOT NULL"
    # Bedrock token meters: the usage type names the direction (and usually the model); a
    # marketplace model billed through Bedrock names itself "<model> (Amazon Bedrock Edition)".
    bedrock = f"(c.line_item_product_code IN ('AmazonBedrock', 'AmazonBedrockService') OR {named} ILIKE '%bedrock%')"
    usage = "coalesce(c.line_item_usage_type, '')"
    direction = (
        f"CASE WHEN NOT {bedrock} THEN NULL"
        f" WHEN regexp_matches({usage}, '(?i)cache[-_ ]?read') THEN 'cached input'"
        f" WHEN regexp_matches({usage}, '(?i)cache[-_ ]?write') THEN 'cache write'"
        f" WHEN regexp_matches({usage}, '(?i)input[-_ ]?token') THEN 'input'"
        f" WHEN regexp_matches({usage}, '(?i)output[-_ ]?token') THEN 'output' END"
    )
    model = (
        f"CASE WHEN ({direction}) IS NOT NULL THEN coalesce("
        f"nullif(regexp_extract({named}, '(?i)^(.+?) [(]amazon bedrock edition[)]$', 1), ''),"
        f" nullif(regexp_extract({usage}, '(?i)^(?:[A-Z0-9]+-)?(.+?)-(?:batch-)?(?:input|output|cache-?read|cache-?write)', 1), ''))"
        " END"
    )
    values = {
        "AvailabilityZone": "c.line_item_availability_zone",
        "BilledCost": "c.line_item_unblended_cost",
        "BillingAccountId": "c.bill_payer_account_id",
        "BillingAccountName": "c.bill_payer_account_name",
        "BillingCurrency": "c.line_item_currency_code",
        "BillingPeriodEnd": "c.bill_billing_period_end_date",
        "BillingPeriodStart": "c.bill_billing_period_start_date",
        "ChargeCategory": category,
        "ChargeDescription": "c.line_item_line_item_description",
        "ChargeFrequency": frequency,
        "ChargePeriodEnd": "c.line_item_usage_end_date",
        "ChargePeriodStart": "c.line_item_usage_start_date",
        "CommitmentDiscountCategory": f"CASE WHEN {is_sp} THEN 'Spend' WHEN {is_ri} THEN 'Usage' END",
        "CommitmentDiscountId": "coalesce(c.savings_plan_savings_plan_a_r_n, c.reservation_reservation_a_r_n)",
        "CommitmentDiscountStatus": (
            f"CASE WHEN {t} IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Used'"
            f" WHEN {t} IN ('SavingsPlanRecurringFee', 'RIFee') THEN 'Unused' END"
        ),
        "CommitmentDiscountType": f"CASE WHEN {is_sp} THEN 'Savings Plan' WHEN {is_ri} THEN 'Reserved Instance' END",
        "ConsumedQuantity": "c.line_item_usage_amount",
        "ConsumedUnit": "c.pricing_unit",
        "ContractedCost": "coalesce(c.line_item_net_unblended_cost, c.line_item_unblended_cost)",
        "EffectiveCost": effective,
        "InvoiceId": "c.bill_invoice_id",
        "InvoiceIssuerName": "coalesce(c.bill_invoicing_entity, 'AWS')",
        "ListCost": "c.pricing_public_on_demand_cost",
        "ListUnitPrice": "c.pricing_public_on_demand_rate",
        "PricingCategory": (
            f"CASE ({pricing_model}) WHEN 'OnDemand' THEN 'Standard' WHEN 'Spot' THEN 'Dynamic'"
            " WHEN 'SavingsPlan' THEN 'Committed' WHEN 'Reservation' THEN 'Committed' END"
        ),
        "PricingQuantity": "c.line_item_usage_amount",
        "PricingUnit": "c.pricing_unit",
        "ProviderName": "'AWS'",
        "PublisherName": "CASE WHEN c.bill_billing_entity = 'AWS Marketplace' THEN coalesce(c.line_item_legal_entity, 'AWS Marketplace') ELSE 'AWS' END",
        "RegionId": "coalesce(c.product_region_code, c.product_region)",
        "RegionName": "c.product_location",
        "ResourceId": "c.line_item_resource_id",
        "ServiceCategory": (
            f"coalesce(s.category, CASE WHEN {named} ILIKE '%bedrock%' OR {named} ILIKE '%sagemaker%' THEN '{AI_CATEGORY}' ELSE 'Other' END)"
        ),
        "ServiceName": "coalesce(c.product_servicename, s.name, c.product_product_name, c.line_item_product_code)",
        "ServiceSubcategory": "s.subcategory",
        "SkuId": "c.product_sku",
        "SubAccountId": "c.line_item_usage_account_id",
        "SubAccountName": "c.line_item_usage_account_name",
        "Tags": "c.tags",
        "HostProviderName": "'AWS'",
        "ServiceProviderName": "'AWS'",
        "x_Source": f"'{SOURCE_KIND}'",
        "x_BatchId": str(batch_id),
        "x_SourceFile": "c._file",
        "x_SourceRow": "c._row",
        "x_UsageType": "c.line_item_usage_type",
        "x_Operation": "c.line_item_operation",
        "x_LineItemType": t,
        "x_PricingModel": pricing_model,
        "x_InstanceType": "c.product_instance_type",
        "x_Model": model,
        "x_TokenDirection": direction,
        "x_ExportId": sql_literal(export_id),
    }
    select = ", ".join(f"{expr} AS {_q(name)}" for name, expr in values.items())
    return f"SELECT {select} FROM ({typed}) AS c LEFT JOIN aws_services AS s ON s.code = c.line_item_product_code WHERE c._ok"


# -- helpers --------------------------------------------------------------------------------


def _check_periods(periods: Sequence[str] | None) -> list[str] | None:
    if not periods:
        return None
    bad = [p for p in periods if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", p)]
    if bad:
        raise SourceError(f"not a billing period: {', '.join(map(repr, bad))}", hint="use YYYY-MM, e.g. --period 2026-07")
    return sorted(set(periods))


def _first_line(exc: BaseException, local: Path | None = None, uri: str | None = None) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if local is not None and uri is not None:
        line = line.replace(str(local), uri)
    return line

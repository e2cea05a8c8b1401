"""Google Cloud list prices (Cloud Billing Catalog API) and a billing account's projects.

The Cloud Billing API (google-cloud-billing, ``google.cloud.billing_v1``) says what Google
*charges per unit*, not what you spent: :func:`ingest_catalog` stores the list price of every
SKU of the services asked for in ``sku_prices`` (one row per SKU, pricing version and price
tier), and the projects linked to a billing account in ``billing_projects``. Analyses use the
prices to price usage that the bill does not (what-ifs, unit economics), and the projects to
find projects that spend without appearing in a budget.

* Services are named as the catalog names them ("Vertex AI", "Compute Engine";
  case-insensitive) or by service id ("C7E2-9256-1C43"). A name the catalog does not know is
  an error listing the closest names, before anything is written.
* Prices are exact: the API gives ``units`` (int64, sent as a string) and ``nanos``; the
  price is computed from them in DECIMAL, never through a float.
* A load replaces what an earlier catalog load stored for the same services (partition
  ``x_Source``, ``service_id``: a SKU Google retired disappears), and the project list of the
  same billing account (partition ``x_Source``, ``billing_account_id``), each in one
  transaction. They are two batches, because a batch records the row counts of one table.
  A service whose SKU list comes back empty keeps the prices stored before.
* The API's pages are turned into rows in DuckDB SQL (each page's JSON unnested), not in a
  Python loop over SKUs.
* Credentials: ``credentials`` if given; anonymous for a loopback ``http://`` ``api_endpoint``
  (a local test server) or ``anonymous=True``; otherwise Application Default Credentials
  (``gcloud auth application-default login`` or ``GOOGLE_APPLICATION_CREDENTIALS``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from typing import Any

from connectors.files import sql_literal
from connectors.gcp_billing import PROVIDER, google_credentials, google_errors
from finops.exceptions import SourceError
from finops.warehouse import MONEY, LoadResult, Warehouse

SOURCE_KIND = "gcp-catalog"

ProgressCallback = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class CatalogService:
    """A service the catalog load asked for, and how many SKUs and price rows it stored."""

    service_id: str
    name: str
    skus: int
    prices: int


@dataclasses.dataclass(frozen=True)
class CatalogSummary:
    """What :func:`ingest_catalog` stored."""

    services: list[CatalogService]
    prices: LoadResult
    projects: LoadResult | None  # None when no billing account was given
    billing_account: str | None


def ingest_catalog(
    wh: Warehouse,
    services: Sequence[str],
    *,
    billing_account: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    anonymous: bool = False,
    currency: str | None = None,
    progress: ProgressCallback | None = None,
) -> CatalogSummary:
    """Store list prices of ``services``' SKUs in ``sku_prices`` (and projects of ``billing_account``).

    ``currency`` asks the catalog for prices in that currency (default: USD, the API's default).
    """
    from google.cloud import billing_v1

    wanted = [s.strip() for s in services if s and s.strip()]
    if not wanted:
        raise SourceError("no service given", hint='pass --services "Vertex AI,Compute Engine"')
    account = _account_id(billing_account) if billing_account is not None else None
    report = progress or (lambda *_: None)
    creds = google_credentials(api_endpoint, credentials=credentials, anonymous=anonymous)
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    with google_errors("Cloud Billing API"):
        catalog = billing_v1.CloudCatalogClient(transport="rest", client_options=options, credentials=creds)
        report("listing services", 0, len(wanted))
        service_pages = [
            billing_v1.ListServicesResponse.to_json(page, indent=None) for page in catalog.list_services().pages
        ]
    chosen = _match_services(service_pages, wanted)

    sku_pages: list[str] = []
    page_service: list[str] = []
    for i, (service_id, name) in enumerate(chosen):
        report(f"listing SKUs of {name}", i, len(chosen))
        request = billing_v1.ListSkusRequest(parent=f"services/{service_id}", currency_code=currency or "")
        with google_errors(f"Cloud Billing API: SKUs of {name}"):
            for page in catalog.list_skus(request=request).pages:
                sku_pages.append(billing_v1.ListSkusResponse.to_json(page, indent=None))
                page_service.append(service_id)
    project_pages: list[str] = []
    if account:
        report("listing projects", len(chosen), len(chosen))
        with google_errors(f"Cloud Billing API: projects of billing account {account}"):
            billing = billing_v1.CloudBillingClient(transport="rest", client_options=options, credentials=creds)
            project_pages = [
                billing_v1.ListProjectBillingInfoResponse.to_json(page, indent=None)
                for page in billing.list_project_billing_info(name=f"billingAccounts/{account}").pages
            ]

    # Everything is fetched before the warehouse is opened: a failed call writes nothing.
    report("storing prices", len(chosen), len(chosen))
    names = {service_id: name for service_id, name in chosen}
    uri = api_endpoint or "cloudbilling.googleapis.com"
    prices_result, per_service = _store_prices(wh, sku_pages, page_service, names, uri=uri)
    projects_result = _store_projects(wh, project_pages, account, uri=uri) if account else None
    summary = [
        CatalogService(service_id, names[service_id], *per_service.get(service_id, (0, 0))) for service_id, _ in chosen
    ]
    return CatalogSummary(summary, prices_result, projects_result, account)


def _account_id(text: str) -> str:
    account = text.strip().removeprefix("billingAccounts/")
    if not account:
        raise SourceError("empty billing account id", hint="pass --billing-account 01F3A2-9B7C4D-E5A610")
    return account


def _match_services(pages: list[str], wanted: list[str]) -> list[tuple[str, str]]:
    """(service id, display name) for each wanted name or id; unknown names are an error."""
    with Warehouse.scratch() as con:
        con.execute(
            "CREATE TABLE services AS SELECT DISTINCT s->>'serviceId' AS service_id, s->>'displayName' AS name"
            " FROM (SELECT unnest(from_json(page::JSON->'services', '[\"JSON\"]')) AS s FROM (SELECT unnest(?::VARCHAR[]) AS page))",
            [pages],
        )
        found = con.execute(
            "SELECT w.i, s.service_id, s.name FROM (SELECT unnest(?::VARCHAR[]) AS wanted, generate_subscripts(?::VARCHAR[], 1) AS i) w"
            " JOIN services s ON lower(s.name) = lower(w.wanted) OR s.service_id = w.wanted"
            " OR 'services/' || s.service_id = w.wanted ORDER BY w.i, s.service_id",
            [wanted, wanted],
        ).fetchall()
        names = [r[0] for r in con.execute("SELECT name FROM services WHERE name IS NOT NULL").fetchall()]
    matched = {i for i, _, _ in found}
    missing = [w for i, w in enumerate(wanted, start=1) if i not in matched]
    if missing:
        close = sorted({c for m in missing for c in difflib.get_close_matches(m, names, n=3, cutoff=0.5)})
        raise SourceError(
            f"the Cloud Billing catalog has no service named {', '.join(repr(m) for m in missing)}",
            hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
            + "services are named as in the catalog (e.g. 'Vertex AI', 'Compute Engine') or by service id",
        )
    return list(dict.fromkeys((service_id, name) for _, service_id, name in found))


def _store_prices(
    wh: Warehouse, pages: list[str], page_service: list[str], names: dict[str, str], *, uri: str
) -> tuple[LoadResult, dict[str, tuple[int, int]]]:
    """Replace the sku_prices of the services in ``names`` with the SKUs in ``pages``."""
    with wh.load(SOURCE_KIND, uri) as batch:
        batch.stage(
            "catalog_services",
            "SELECT unnest(?::VARCHAR[]) AS service_id, unnest(?::VARCHAR[]) AS service_name",
            [list(names), list(names.values())],
        )
        batch.stage(
            "catalog_skus",
            "SELECT p.service_id, s AS sku FROM (SELECT unnest(?::VARCHAR[]) AS page, unnest(?::VARCHAR[]) AS service_id) p,"
            " unnest(from_json(p.page::JSON->'skus', '[\"JSON\"]')) AS u(s)",
            [pages, page_service],
        )
        # One row per SKU × pricing version × tier; a SKU without prices keeps one row with a
        # NULL price, so it shows as unpriced, never as free.
        rows_read = batch.stage(
            "catalog_prices",
            f"""
            WITH info AS (
                SELECT service_id, sku, unnest(CASE WHEN len(infos) = 0 THEN [NULL::JSON] ELSE infos END) AS info
                FROM (SELECT *, coalesce(from_json(sku->'pricingInfo', '["JSON"]'), []) AS infos FROM catalog_skus)
            ), tiers AS (
                SELECT *, unnest(CASE WHEN len(rates) = 0 THEN [NULL::JSON] ELSE rates END) AS rate
                FROM (SELECT *, coalesce(from_json(info->'pricingExpression'->'tieredRates', '["JSON"]'), []) AS rates FROM info)
            )
            SELECT
                '{PROVIDER}' AS provider,
                service_id,
                service_name,
                nullif(sku->>'skuId', '') AS sku_id,
                nullif(sku->>'description', '') AS sku_description,
                nullif(sku->'category'->>'resourceFamily', '') AS resource_family,
                nullif(sku->'category'->>'resourceGroup', '') AS resource_group,
                nullif(sku->'category'->>'usageType', '') AS usage_type,
                coalesce(from_json(sku->'serviceRegions', '["VARCHAR"]'), []) AS regions,
                nullif(info->'pricingExpression'->>'usageUnit', '') AS pricing_unit,
                nullif(info->'pricingExpression'->>'usageUnitDescription', '') AS pricing_unit_description,
                CASE WHEN rate IS NOT NULL THEN TRY_CAST(coalesce(rate->>'startUsageAmount', '0') AS {MONEY}) END
                    AS tier_start_amount,
                CAST(TRY_CAST(coalesce(rate->'unitPrice'->>'units', '0') AS DECIMAL(38, 0))
                     + TRY_CAST(coalesce(rate->'unitPrice'->>'nanos', '0') AS DECIMAL(38, 0)) * 0.000000001 AS {MONEY})
                    AS unit_price_value,
                rate IS NOT NULL AS priced,
                nullif(rate->'unitPrice'->>'currencyCode', '') AS currency,
                CAST(TRY_CAST(nullif(info->>'effectiveTime', '') AS TIMESTAMPTZ) AS TIMESTAMP) AS effective_time,
                sku::VARCHAR AS raw
            FROM tiers JOIN catalog_services USING (service_id)
            """,
        )
        result = batch.replace_partitions(
            "sku_prices",
            "SELECT provider, service_id, service_name, sku_id, sku_description, resource_family, resource_group,"
            " usage_type, regions, pricing_unit, pricing_unit_description, tier_start_amount,"
            " CASE WHEN priced THEN unit_price_value END AS unit_price, currency, effective_time,"
            f" '{SOURCE_KIND}' AS x_Source, {batch.batch_id} AS x_BatchId"
            " FROM catalog_prices WHERE sku_id IS NOT NULL",
            partition_by=("x_Source", "service_id"),
            rows_read=rows_read,
            quarantine_sql=(
                "SELECT 'services/' || service_id || '/skus' AS file, NULL::BIGINT AS row_number, 'skuId' AS column_name,"
                " 'skuId: empty: a SKU without an id cannot be priced' AS reason, raw::JSON AS raw_row"
                " FROM catalog_prices WHERE sku_id IS NULL"
            ),
        )
        counts = batch.execute(
            "SELECT service_id, count(DISTINCT sku_id), count(*) FROM sku_prices WHERE x_BatchId = ? GROUP BY ALL",
            [batch.batch_id],
        ).fetchall()
    return result, {service_id: (skus, prices) for service_id, skus, prices in counts}


def _store_projects(wh: Warehouse, pages: list[str], account: str, *, uri: str) -> LoadResult:
    """Replace the billing_projects of ``account`` with the projects in ``pages``."""
    with wh.load(SOURCE_KIND, uri) as batch:
        rows_read = batch.stage(
            "catalog_projects",
            "SELECT p AS info FROM (SELECT unnest(?::VARCHAR[]) AS page),"
            " unnest(coalesce(from_json(page::JSON->'projectBillingInfo', '[\"JSON\"]'), [])) AS u(p)",
            [pages],
        )
        good = "nullif(info->>'projectId', '') IS NOT NULL"
        return batch.replace_partitions(
            "billing_projects",
            f"SELECT '{PROVIDER}' AS provider, {sql_literal(account)} AS billing_account_id, info->>'projectId' AS project_id,"
            " NULL AS project_name, CAST(info->>'billingEnabled' AS BOOLEAN) AS billing_enabled,"
            f" '{SOURCE_KIND}' AS x_Source, {batch.batch_id} AS x_BatchId FROM catalog_projects WHERE {good}",
            partition_by=("x_Source", "billing_account_id"),
            rows_read=rows_read,
            quarantine_sql=(
                f"SELECT 'billingAccounts/' || {sql_literal(account)} || '/projects' AS file, NULL::BIGINT AS row_number,"
                " 'projectId' AS column_name, 'projectId: empty' AS reason, info AS raw_row"
                f" FROM catalog_projects WHERE NOT ({good})"
            ),
        )


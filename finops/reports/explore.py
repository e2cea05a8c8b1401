"""Interactive exploration in JupyterLab: filter AI spend and gateway usage with widgets.

``notebooks/explore.ipynb`` shows an :class:`Explorer`: a date range slider and pickers for
department, provider, model and workload class above charts and money tables that redraw in
place on every change.

The warehouse is read once, when the explorer is made, into three small frames:

* :func:`spend_cube` — charges summed per day × department × provider × service × workload
  (about 23,000 rows for the sample company's 18 months, from 91,000 charge rows);
* :func:`gateway_cube` — gateway and model-API calls per day × department × provider × model
  × workload, one source per provider and month as in :func:`finops.analyses.chargeback.gateway_usage`;
* :func:`finops.analyses.chargeback.chargeback` for every billing month the data covers.

A widget change only filters these frames in polars (:func:`filter_spend`,
:func:`filter_gateway`), so moving a slider never reopens the warehouse, and a kernel left
open holds no lock on it. Money stays exact (Decimal) in every frame and table; charts draw
floats.

What each control filters:

* dates (days of ChargePeriodStart, both ends included in the slider), department and
  workload: the bill and the gateway calls (gateway calls are classified by
  :func:`finops.analyses.classify.classify_requests`);
* provider: the bill by ProviderName; gateway calls by who bills them (Bedrock calls under
  AWS, Azure OpenAI under Microsoft, Vertex AI and Gemini under Google Cloud);
* model: gateway calls only (bills name models in too few lines to filter on).

The chargeback table follows the department control and the billing months the dates touch;
it is the whole bill with shared costs split, so provider, model and workload do not apply.
An empty pick means "all".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import polars as pl
from ibis import _

from finops.analyses.chargeback import chargeback, with_request_department
from finops.analyses.classify import AI_WORKLOADS, WORKLOADS, classify, classify_requests, rules_for
from finops.analyses.reconcile import MONEY, gateway_provider
from finops.analyses.spend import _charged_between, _check_range, _timestamp, _with_cost, with_department
from finops.analyses.tables import call_count, charges_table, requests_table
from finops.analyses.usage import SOURCE_PRIORITY
from finops.config import UNALLOCATED, Config, CostBasis
from finops.exceptions import AnalysisError
from finops.reports import charts

if TYPE_CHECKING:
    from finops.warehouse import Warehouse

SPLITS = ("workload", "department", "provider")
"""What the spend-over-time chart can be split by."""

# Gateway provider families (finops.analyses.reconcile.GATEWAY_PROVIDER_SQL) → the first words of the
# ProviderName of the bill they appear on, lower case.
_BILLED_BY: dict[str, tuple[str, ...]] = {
    "AWS Bedrock": ("aws", "amazon"),
    "Azure OpenAI": ("microsoft", "azure"),
    "Google Vertex AI / Gemini": ("google",),
    "OpenAI": ("openai",),
    "Anthropic": ("anthropic",),
}


# -- the frames read once -----------------------------------------------------------------


def spend_cube_expr(charges: ibis.Table, config: Config, start: date, end: date, *, basis: CostBasis) -> ibis.Table:
    """The expression behind :func:`spend_cube`, over any ibis ``charges`` table."""
    _check_range(start, end)
    t = _with_cost(_charged_between(charges, start, end), basis)
    t = with_department(classify(t, rules_for(config)), config)
    return (
        t.group_by(
            date=t.ChargePeriodStart.date(),
            department=t.department,
            provider=t.ProviderName,
            service=t.ServiceName,
            workload=t.workload,
        )
        .aggregate(cost=_._cost.sum())
        .order_by("date", "department", "provider", "service", "workload")
    )


def spend_cube(
    wh: Warehouse, config: Config, start: date, end: date, *, basis: CostBasis | None = None
) -> pl.DataFrame:
    """Spend per day, department, provider, service and workload class: what the explorer filters.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments (see :func:`finops.analyses.spend.with_department`) and workload rules.
    start, end
        Days of ChargePeriodStart (UTC), ``end`` exclusive: the selection of
        :func:`finops.analyses.spend.daily_spend`.
    basis
        ``"effective"`` or ``"billed"``; the config's basis when omitted.

    Returns
    -------
    pl.DataFrame
        ``date``, ``department``, ``provider``, ``service``, ``workload``, ``cost`` (Decimal).
        Any filter of it sums to the same totals as :mod:`finops.analyses.spend` with that filter.

    Why
    ---
    One pass over the charges gives a frame small enough to filter on every widget change.
    """
    with wh.ibis() as con:
        expr = spend_cube_expr(charges_table(con, config), config, start, end, basis=basis or config.basis)
        return expr.to_polars()


def _requests_between(requests: ibis.Table, start: date, end: date) -> ibis.Table:
    ps = requests.period_start
    return requests.filter(ps >= _timestamp(start), ps < _timestamp(end))


def gateway_cube(wh: Warehouse, config: Config, start: date, end: date) -> pl.DataFrame:
    """Gateway and model-API calls per day, department, provider, model and workload class.

    Parameters
    ----------
    wh
        The warehouse.
    config
        Departments with their gateway teams, projects and API keys
        (:func:`finops.analyses.chargeback.with_request_department`).
    start, end
        Days of ``period_start`` (UTC), ``end`` exclusive.

    Returns
    -------
    pl.DataFrame
        ``date``, ``department``, ``provider`` (as the source names it), ``family`` (the
        provider as billed, e.g. ``AWS Bedrock``), ``model``, ``workload``, ``requests``,
        ``input_tokens``, ``output_tokens``, ``cost`` (Decimal; unpriced calls add nothing)
        and ``unpriced_requests``. One source per provider family and month
        (:data:`finops.analyses.usage.SOURCE_PRIORITY`), so calls that a gateway and a usage API
        both saw count once, as in :func:`finops.analyses.chargeback.gateway_usage`.
    """
    _check_range(start, end)
    with wh.ibis() as con:
        return gateway_cube_expr(requests_table(con), config, start, end).to_polars()


def _one_source_per_family(requests: ibis.Table) -> ibis.Table:
    """Keep, per provider family and month, the rows of the first :data:`SOURCE_PRIORITY` source present.

    The ibis form of :func:`finops.analyses.chargeback.one_source_per_provider_sql`: sources not
    listed rank after the listed ones (and are all kept when no listed one is present).
    """
    rank = requests.x_Source.substitute({s: i for i, s in enumerate(SOURCE_PRIORITY)}, else_=len(SOURCE_PRIORITY))
    ranked = requests.mutate(_rank=rank)
    window = ibis.window(group_by=[ranked.period_start.truncate("M"), ranked.family])
    ranked = ranked.mutate(_best=ranked._rank.min().over(window))
    return ranked.filter(ranked._rank == ranked._best).drop("_rank", "_best")


def gateway_cube_expr(requests: ibis.Table, config: Config, start: date, end: date) -> ibis.Table:
    """The expression behind :func:`gateway_cube`, over an `llm_requests` table."""
    t = classify_requests(with_request_department(_requests_between(requests, start, end), config))
    t = _one_source_per_family(t.mutate(family=gateway_provider(t.provider)))
    out = t.group_by(
        date=t.period_start.date(),
        department=t.department,
        provider=t.provider,
        family=t.family,
        model=t.model,
        workload=t.workload,
    ).aggregate(
        requests=t.requests.fill_null(1).sum().cast("int64"),
        input_tokens=t.input_tokens.sum().cast("int64"),
        output_tokens=t.output_tokens.sum().cast("int64"),
        cost=t.cost.sum().cast(MONEY),
        unpriced_requests=call_count(t, where=t.cost.isnull()),
    )
    keys = ("date", "department", "provider", "model", "family", "workload")
    return out.order_by(*(ibis.asc(out[k], nulls_first=False) for k in keys))


def data_range(wh: Warehouse) -> tuple[date, date]:
    """First day and the day after the last day with charges or gateway calls (``end`` exclusive).

    Raises
    ------
    AnalysisError
        The warehouse holds neither: there is nothing to explore.
    """
    with wh.ibis() as con:
        charges, requests = charges_table(con), requests_table(con)
        days = charges.select(day=charges.ChargePeriodStart.date()).union(
            requests.select(day=requests.period_start.date()), distinct=False
        )
        row = days.aggregate(first=days.day.min(), last=days.day.max()).to_polars().row(0)
    if row[0] is None:
        raise AnalysisError(
            f"warehouse {wh.path} has no charges and no gateway calls",
            hint="load data first: `finops demo`, or `finops ingest …`",
        )
    return row[0], row[1] + timedelta(days=1)


# -- filtering ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Selection:
    """What the controls pick: days ``start`` to ``end`` (exclusive) and, per field, the values
    to keep (an empty tuple keeps all)."""

    start: date
    end: date
    departments: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()


def _keep(column: str, values: Sequence[str]) -> pl.Expr:
    return pl.col(column).is_in(list(values)) if values else pl.lit(True)


def _in_dates(selection: Selection) -> pl.Expr:
    return (pl.col("date") >= selection.start) & (pl.col("date") < selection.end)


def filter_spend(cube: pl.DataFrame, selection: Selection) -> pl.DataFrame:
    """The rows of :func:`spend_cube` in the selection (the model pick does not apply to bills)."""
    return cube.filter(
        _in_dates(selection),
        _keep("department", selection.departments),
        _keep("provider", selection.providers),
        _keep("workload", selection.workloads),
    )


def families_billed_by(providers: Sequence[str]) -> list[str]:
    """Gateway provider families whose calls are billed by one of ``providers`` (ProviderName).

    >>> families_billed_by(["AWS", "OpenAI"])
    ['AWS Bedrock', 'OpenAI']
    """
    names = [p.strip().lower() for p in providers]
    return [
        family
        for family, billers in _BILLED_BY.items()
        if any(name.startswith(billers) or name == family.lower() for name in names)
    ]


def filter_gateway(cube: pl.DataFrame, selection: Selection) -> pl.DataFrame:
    """The rows of :func:`gateway_cube` in the selection; providers pick the families they bill."""
    families = families_billed_by(selection.providers) if selection.providers else ()
    return cube.filter(
        _in_dates(selection),
        _keep("department", selection.departments),
        pl.col("family").is_in(families) if selection.providers else pl.lit(True),
        _keep("model", selection.models),
        _keep("workload", selection.workloads),
    )


_TRUNCATE = {"day": "1d", "week": "1w", "month": "1mo"}


def chart_grain(selection: Selection) -> str:
    """``"day"`` for up to 92 days, ``"week"`` up to three years, else ``"month"``: the grain of
    the spend-over-time chart, so it shows a trend rather than noise (and stays a few thousand
    points at most)."""
    days = (selection.end - selection.start).days
    return "day" if days <= 92 else "week" if days <= 3 * 366 else "month"


def selection_totals(spend: pl.DataFrame, gateway: pl.DataFrame) -> pl.DataFrame:
    """One row: ``spend`` (Decimal, the filtered bill), gateway ``requests``, ``tokens``
    (input + output), ``gateway_cost`` (Decimal) and ``unpriced_requests``."""
    bill = spend.select(spend=pl.col("cost").sum())
    calls = gateway.select(
        requests=pl.col("requests").sum(),
        tokens=pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum(),
        gateway_cost=pl.col("cost").sum(),
        unpriced_requests=pl.col("unpriced_requests").sum(),
    )
    return pl.concat([bill, calls], how="horizontal")


def _months_of(selection: Selection) -> tuple[str, str]:
    """First and last billing month (``YYYY-MM``) the selection's days touch."""
    return selection.start.strftime("%Y-%m"), (selection.end - timedelta(days=1)).strftime("%Y-%m")


def filter_chargeback(rows: pl.DataFrame, selection: Selection) -> pl.DataFrame:
    """The rows of :func:`finops.analyses.chargeback.chargeback` for the selection's months and departments."""
    first, last = _months_of(selection)
    return rows.filter(pl.col("month") >= first, pl.col("month") <= last, _keep("department", selection.departments))


# -- the widgets --------------------------------------------------------------------------


def _distinct(*columns: pl.Series) -> list[str]:
    """The distinct non-NULL values of ``columns`` (a handful: departments, providers, models)."""
    return pl.concat([c.cast(pl.String) for c in columns]).drop_nulls().unique().to_list()


def _ordered(values: Sequence[str], first: Sequence[str] = ()) -> list[str]:
    """Distinct ``values``, those in ``first`` in its order, then the rest sorted."""
    present = set(values)
    return [v for v in first if v in present] + sorted(present - set(first))


class Explorer:
    """Widgets over a warehouse: pick dates, departments, providers, models and workload classes;
    the charts and tables in :attr:`output` redraw on every change.

    Display the explorer in a notebook cell (``explorer``) to see the controls. In code and
    tests set a control's ``value`` (``explorer.departments.value = ("Research",)``) and read
    :meth:`totals`, :meth:`spend` or :meth:`gateway`.

    Parameters
    ----------
    wh, config
        The warehouse and finops.toml.
    start, end
        Days to load (``end`` exclusive); default every day the warehouse has data for.
    basis
        ``"effective"`` or ``"billed"``; the config's basis when omitted.
    currency
        Named in the charts and tables; the config's currency when omitted.
    """

    def __init__(
        self,
        wh: Warehouse,
        config: Config,
        *,
        start: date | None = None,
        end: date | None = None,
        basis: CostBasis | None = None,
        currency: str | None = None,
    ) -> None:
        import ipywidgets as widgets

        if start is None or end is None:
            first, after_last = data_range(wh)
            start, end = start or first, end or after_last
        self.basis = basis or config.basis
        self.currency = currency or config.currency
        self.cube = spend_cube(wh, config, start, end, basis=self.basis)
        self.calls = gateway_cube(wh, config, start, end)
        month_end = (end - timedelta(days=1)).replace(day=1) + timedelta(days=32)
        self.chargeback_rows = chargeback(
            wh, config, basis=self.basis, start=start.replace(day=1), end=month_end.replace(day=1)
        )

        days = pl.date_range(start, end - timedelta(days=1), eager=True).to_list()
        departments = _distinct(self.cube["department"], self.calls["department"])
        workloads = _distinct(self.cube["workload"], self.calls["workload"])
        self.dates = widgets.SelectionRangeSlider(
            options=[(d.strftime("%d %b %Y"), d) for d in days],
            index=(0, len(days) - 1),
            description="Dates",
            continuous_update=False,
            layout=widgets.Layout(width="760px"),
        )
        picker = {"rows": 6, "layout": widgets.Layout(width="240px"), "style": {"description_width": "70px"}}
        self.departments = widgets.SelectMultiple(
            options=_ordered(departments, [*config.department_names, UNALLOCATED]), description="Department", **picker
        )
        self.providers = widgets.SelectMultiple(
            options=_ordered(_distinct(self.cube["provider"])), description="Provider", **picker
        )
        self.models = widgets.SelectMultiple(
            options=_ordered(_distinct(self.calls["model"])), description="Model", **picker
        )
        workload_options = _ordered(workloads, WORKLOADS)
        self.workloads = widgets.SelectMultiple(
            options=workload_options,
            value=[w for w in workload_options if w in AI_WORKLOADS],
            description="Workload",
            **picker,
        )
        self.split = widgets.ToggleButtons(options=SPLITS, description="Split by")
        self.output = widgets.Output()
        self.controls = (self.dates, self.departments, self.providers, self.models, self.workloads, self.split)
        hint = widgets.HTML("<small>Ctrl- or Shift-click to pick several; none picked means all.</small>")
        self.widget = widgets.VBox(
            [
                self.dates,
                widgets.HBox([self.departments, self.providers, self.models, self.workloads]),
                hint,
                self.split,
                self.output,
            ]
        )
        for control in self.controls:
            control.observe(self.refresh, names="value")
        self.refresh()

    # -- what is selected ------------------------------------------------------------------

    def selection(self) -> Selection:
        """The controls' current values (the slider's last day included, so ``end`` is the day after)."""
        first, last = self.dates.value
        return Selection(
            start=first,
            end=last + timedelta(days=1),
            departments=tuple(self.departments.value),
            providers=tuple(self.providers.value),
            models=tuple(self.models.value),
            workloads=tuple(self.workloads.value),
        )

    def spend(self) -> pl.DataFrame:
        """The selected rows of the spend cube (Decimal ``cost``)."""
        return filter_spend(self.cube, self.selection())

    def gateway(self) -> pl.DataFrame:
        """The selected rows of the gateway cube."""
        return filter_gateway(self.calls, self.selection())

    def totals(self) -> pl.DataFrame:
        """One row of the selection's totals: see :func:`selection_totals`."""
        return selection_totals(self.spend(), self.gateway())

    # -- what is shown ---------------------------------------------------------------------

    def views(self) -> list[Any]:
        """The charts and tables for the current selection, in the order they are shown."""
        selection = self.selection()
        spend, calls = filter_spend(self.cube, selection), filter_gateway(self.calls, selection)
        by = self.split.value
        money = self.currency
        last_day = selection.end - timedelta(days=1)
        shown: list[Any] = [
            charts.money(
                selection_totals(spend, calls),
                ["spend", "gateway_cost"],
                money,
                titles={"spend": f"Spend ({self.basis})", "gateway_cost": "Gateway cost"},
                caption=f"Selection: {selection.start:%d %b %Y} to {last_day:%d %b %Y}",
            )
        ]
        if spend.height:
            grain = chart_grain(selection)
            over_time = spend.with_columns(pl.col("date").dt.truncate(_TRUNCATE[grain])).group_by("date", by)
            shown.append(charts.spend_over_time(over_time.agg(pl.col("cost").sum()), money, by=by, grain=grain))
            mix = spend.group_by("provider", "service").agg(pl.col("cost").sum())
            shown.append(charts.provider_service_mix(mix, money, title="Spend by provider and service"))
            shown.append(
                charts.money(_by_department(spend), currency=money, shares=["share"], caption="Spend by department")
            )
        if calls.height:
            models = _by_model(calls)
            shown.append(charts.gateway_model_mix(models, money))
            shown.append(charts.money(models, ["cost"], money, caption="Gateway and model-API calls by model"))
        first, last = _months_of(selection)
        shown.append(
            charts.money(
                filter_chargeback(self.chargeback_rows, selection),
                currency=money,
                caption=f"Chargeback, billing months {first} to {last} (whole bill, shared costs split; "
                "department filter only)",
            )
        )
        return shown

    def refresh(self, change: Any = None) -> None:
        """Redraw :attr:`output` for the current selection (called on every control change)."""
        from IPython.core.interactiveshell import InteractiveShell

        fmt = InteractiveShell.instance().display_formatter.format
        outputs = []
        for view in self.views():
            data, metadata = fmt(view)
            outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
        self.output.outputs = tuple(outputs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _by_department(spend: pl.DataFrame) -> pl.DataFrame:
    per = spend.group_by("department").agg(pl.col("cost").sum())
    total = per["cost"].sum()
    share = pl.col("cost").cast(pl.Float64) / float(total) if total else pl.lit(None, pl.Float64)
    return per.with_columns(share=share).sort(["cost", "department"], descending=[True, False])


def _by_model(calls: pl.DataFrame) -> pl.DataFrame:
    return (
        calls.group_by("family", "model")
        .agg(
            pl.col("requests").sum(),
            tokens=pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum(),
            cost=pl.col("cost").sum(),
            unpriced_requests=pl.col("unpriced_requests").sum(),
        )
        .rename({"family": "provider"})
        .sort(["cost", "model"], descending=[True, False], nulls_last=True)
    )

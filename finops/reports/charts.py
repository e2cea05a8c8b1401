"""Charts and money tables for notebooks: the one module a notebook calls to draw.

Each chart function takes a polars frame returned by a :mod:`finops.analyses.spend` function and
returns an Altair chart with a title, axis titles that name the unit and the currency, money
axes formatted like ``$1,234,567`` and a fixed colour per workload class.

Charts aggregate before they draw: a function first sums its input to the grain it shows
(month × department, day × workload, …), so a chart never carries raw rows and Altair's
5,000-row limit stays on as a guard rather than being switched off.

Money is exact in the frames (``Decimal``). Chart marks are drawn from floats, which is
harmless for a picture; every figure a reader copies comes from :func:`money`, which formats
the exact decimals.

Offline HTML
------------
Altair's default output loads Vega from a CDN, so charts in an HTML file opened without a
network are blank. :func:`use_offline_renderer` switches to the ``finops-offline`` renderer:
each chart becomes a ``<div>`` and a small script that hands the spec to a global
``vegaEmbed``. The report template (``finops/reports/templates/finops_report``) inlines Vega,
Vega-Lite and Vega-Embed once in the page head (:func:`vega_javascript`) and announces
itself with the ``finops:vega-ready`` event; charts wait for it. In JupyterLab keep the
default renderer: there is no inlined bundle there.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import altair as alt
import polars as pl

from finops.analyses.classify import NON_AI
from finops.config import UNALLOCATED
from finops.reports.narrative import format_money, format_percent, format_share

OFFLINE_RENDERER = "finops-offline"
VEGA_READY_EVENT = "finops:vega-ready"

# One colour per workload class, the same in every chart and report (Tableau 10 hues).
WORKLOAD_COLOURS: dict[str, str] = {
    "inference": "#4e79a7",
    "training": "#f28e2b",
    "development": "#59a14f",
    "other ai": "#b07aa1",
    "non-ai": "#bab0ac",
}
"""Colours keyed by lower-cased workload (:data:`finops.analyses.classify.WORKLOADS`)."""
_WORKLOAD_ORDER = list(WORKLOAD_COLOURS)

# Providers keep their colour from chart to chart (close to their own brand hues).
PROVIDER_COLOURS: dict[str, str] = {
    "aws": "#f28e2b",
    "amazon web services": "#f28e2b",
    "google cloud": "#4e79a7",
    "microsoft": "#76b7b2",
    "azure": "#76b7b2",
    "openai": "#59a14f",
    "anthropic": "#9c755f",
}

UNALLOCATED_COLOUR = "#bab0ac"  # grey: spend no department owns yet

# Tableau 10 without grey, for everything else.
_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]

CHART_WIDTH = 680
CHART_HEIGHT = 300


# -- formats -----------------------------------------------------------------------------


def axis_format(currency: str, *, cents: bool = False) -> str:
    """d3 format for money: ``$,.0f`` for USD; other currencies a plain ``,.0f`` (d3's ``$`` is
    always the dollar here), with the currency named in the axis title."""
    return f"{'$' if currency.upper() == 'USD' else ''},.{2 if cents else 0}f"


def money_title(what: str, currency: str) -> str:
    """'AI spend (USD)'."""
    return f"{what} ({currency.upper()})"


def _axis(currency: str) -> alt.Axis:
    return alt.Axis(format=axis_format(currency), labelFlush=False, grid=True, tickCount=6)


def _tooltip_money(field: str, currency: str, title: str = "Cost") -> alt.Tooltip:
    return alt.Tooltip(f"{field}:Q", title=money_title(title, currency), format=axis_format(currency, cents=True))


# -- aggregation helpers -----------------------------------------------------------------


def _to_chart_number(frame: pl.DataFrame, column: str = "cost") -> pl.DataFrame:
    """Decimal money → Float64 for the chart marks only (tables keep the exact decimals)."""
    return frame.with_columns(pl.col(column).cast(pl.Float64))


def _month_label(frame: pl.DataFrame, column: str = "period") -> pl.DataFrame:
    """Add ``month`` ("Jul 2026") and its sort key: months as labels, so no time zone can shift them."""
    period = pl.col(column)
    if frame.schema[column] == pl.String:
        period = period.str.to_date(strict=False)
    return frame.with_columns(period.cast(pl.Date).alias("_period")).with_columns(
        pl.col("_period").dt.strftime("%b %Y").alias("month")
    )


def _months_in_order(frame: pl.DataFrame) -> list[str]:
    return frame.select("_period", "month").unique().sort("_period")["month"].to_list()


def _workload_scale(workloads: Sequence[str]) -> alt.Scale:
    """Fixed colours for the known workload classes, in a fixed order; others after them."""
    known = sorted((w for w in workloads if w.lower() in WORKLOAD_COLOURS), key=lambda w: _WORKLOAD_ORDER.index(w.lower()))
    others = sorted(w for w in workloads if w.lower() not in WORKLOAD_COLOURS)
    return _scale(known + others, WORKLOAD_COLOURS)


def _scale(domain: Sequence[str], fixed: dict[str, str]) -> alt.Scale:
    """A colour scale over ``domain`` in its order: ``fixed`` colours (by lower-cased name) where
    known, the palette's unused colours for the rest."""
    unused = [c for c in _PALETTE if c not in {fixed.get(d.lower()) for d in domain}] or _PALETTE
    colours, spare = [], iter(unused * (len(domain) // len(unused) + 1))
    for name in domain:
        colours.append(fixed.get(name.lower()) or next(spare))
    return alt.Scale(domain=list(domain), range=colours)


def _workload_order(frame: pl.DataFrame) -> pl.DataFrame:
    """A stacking order column: inference at the bottom, then training, development, other."""
    rank = {w: i for i, w in enumerate(_WORKLOAD_ORDER)}
    return frame.with_columns(
        pl.col("workload").str.to_lowercase().replace_strict(rank, default=len(rank)).alias("_stack")
    )


def for_departments(frame: pl.DataFrame, departments: Sequence[str] = ()) -> pl.DataFrame:
    """Only the named departments' rows; an empty selection means every department.

    The review's ``departments`` parameter: an empty list shows the whole company.
    """
    if not departments:
        return frame
    return frame.filter(pl.col("department").is_in(list(departments)))


def _by_size(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Total cost per value of ``column``, largest first (ties by name, so every run agrees)."""
    return frame.group_by(column).agg(pl.col("cost").sum()).sort(["cost", column], descending=[True, False])


def _top_n_and_rest(frame: pl.DataFrame, column: str, keep: int, rest_label: str) -> pl.DataFrame:
    """Keep the ``keep`` largest values of ``column`` by total cost; fold the others into one."""
    totals = _by_size(frame, column)
    if totals.height <= keep + 1:
        return frame
    kept = totals[column].head(keep).to_list()
    return frame.with_columns(
        pl.when(pl.col(column).is_in(kept)).then(pl.col(column)).otherwise(pl.lit(rest_label)).alias(column)
    )


# -- charts ------------------------------------------------------------------------------


def monthly_spend_by_department(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Spend by department and month", keep: int = 8
) -> alt.Chart:
    """Stacked bars: each month's spend, split by department, largest department at the bottom.

    Parameters
    ----------
    df
        :func:`finops.analyses.spend.spend_by_department` with ``grain="month"``: ``period``,
        ``department``, ``cost``.
    currency
        Currency of ``cost``, named in the axis title.
    keep
        Departments shown by name; smaller ones are summed into "Other departments".
    """
    frame = _top_n_and_rest(df.select("period", "department", "cost"), "department", keep, "Other departments")
    frame = _month_label(frame).group_by("_period", "month", "department").agg(pl.col("cost").sum())
    departments = _by_size(frame, "department")["department"].to_list()
    frame = (
        _to_chart_number(frame)
        .with_columns(pl.col("department").replace_strict({d: i for i, d in enumerate(departments)}).alias("_stack"))
        .sort("_period", "_stack")
    )
    return (
        alt.Chart(frame.drop("_period"), title=title)
        .mark_bar()
        .encode(
            x=alt.X("month:O", sort=_months_in_order(frame), title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(cost):Q", title=money_title("Spend", currency), axis=_axis(currency)),
            color=alt.Color(
                "department:N",
                sort=departments,
                title="Department",
                scale=_scale(departments, {UNALLOCATED.lower(): UNALLOCATED_COLOUR}),
            ),
            order=alt.Order("_stack:Q", sort="ascending"),
            tooltip=["month:O", "department:N", _tooltip_money("cost", currency)],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )


def workload_split_over_time(
    df: pl.DataFrame,
    currency: str = "USD",
    *,
    title: str = "AI spend by workload: inference, training, development",
    ai_only: bool = True,
) -> alt.Chart:
    """Stacked bars per month of AI spend by workload class, in the fixed workload colours.

    ``df`` is :func:`finops.analyses.spend.workload_split`: ``period``, ``workload``, ``cost``.
    Non-AI spend is left out unless ``ai_only`` is false.
    """
    frame = df.select("period", "workload", "cost")
    if ai_only:
        frame = frame.filter(pl.col("workload") != NON_AI)
    frame = _month_label(frame)
    frame = frame.group_by("_period", "month", "workload").agg(pl.col("cost").sum())
    frame = _workload_order(_to_chart_number(frame)).sort("_period", "_stack", "workload")
    workloads = frame["workload"].unique().to_list()
    scale = _workload_scale(workloads)
    return (
        alt.Chart(frame.drop("_period"), title=title)
        .mark_bar()
        .encode(
            x=alt.X("month:O", sort=_months_in_order(frame), title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(cost):Q", title=money_title("AI spend", currency), axis=_axis(currency)),
            color=alt.Color("workload:N", title="Workload", scale=scale, sort=scale.domain),
            order=alt.Order("_stack:Q", sort="ascending"),
            tooltip=["month:O", "workload:N", _tooltip_money("cost", currency)],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )


def provider_service_mix(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Spend by provider and service", keep: int = 12
) -> alt.Chart:
    """Horizontal bars, largest first: spend per service, coloured by provider.

    ``df`` is :func:`finops.analyses.spend.spend_by_provider_service`: ``provider``, ``service``,
    ``cost`` (``share`` is recomputed after aggregation). The ``keep`` largest services are
    named; the rest are summed into "Other services" per provider.
    """
    frame = df.select("provider", "service", "cost").with_columns(
        (pl.col("provider") + " · " + pl.col("service")).alias("label")
    )
    frame = _top_n_and_rest(frame, "label", keep, "")
    frame = frame.with_columns(
        (pl.col("label") == "").alias("_rest"),
        pl.when(pl.col("label") == "").then(pl.col("provider") + " · Other services").otherwise(pl.col("label")).alias("label"),
    )
    frame = frame.group_by("provider", "label").agg(pl.col("cost").sum(), pl.col("_rest").first())
    total = frame["cost"].sum()
    # Largest first, the folded "Other services" bars last, whatever their size.
    frame = frame.with_columns(
        (pl.col("cost").cast(pl.Float64) / (float(total) if total else 1.0)).alias("share")
    ).sort("_rest", "cost", "label", descending=[False, True, False])
    order = frame["label"].to_list()
    frame = _to_chart_number(frame.drop("_rest"))
    providers = _by_size(frame, "provider")["provider"].to_list()
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
            x=alt.X("cost:Q", title=money_title("Spend", currency), axis=_axis(currency)),
            color=alt.Color("provider:N", title="Provider", scale=_scale(providers, PROVIDER_COLOURS), sort=providers),
            tooltip=[
                "provider:N",
                alt.Tooltip("label:N", title="Service"),
                _tooltip_money("cost", currency),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
            ],
        )
        .properties(width=CHART_WIDTH, height=alt.Step(22))
    )


def daily_spend(
    df: pl.DataFrame,
    currency: str = "USD",
    *,
    by: str = "workload",
    title: str = "Daily AI spend by workload",
    ai_only: bool = True,
) -> alt.Chart:
    """Lines of spend per day, one per workload class (or whatever ``by`` names).

    ``df`` is :func:`finops.analyses.spend.daily_spend`: ``date``, the ``by`` column, ``cost``. When
    split by workload, non-AI spend is left out unless ``ai_only`` is false.
    """
    frame = df.select("date", by, "cost")
    if by == "workload" and ai_only:
        frame = frame.filter(pl.col("workload") != NON_AI)
    frame = frame.group_by("date", by).agg(pl.col("cost").sum())
    frame = _to_chart_number(frame.with_columns(pl.col("date").cast(pl.Date))).sort("date", by)
    if by == "workload":
        scale = _workload_scale(frame["workload"].unique().to_list())
        colour = alt.Color("workload:N", title="Workload", scale=scale, sort=scale.domain)
    else:
        names = sorted(frame[by].unique().to_list())
        fixed = PROVIDER_COLOURS if by == "provider" else {UNALLOCATED.lower(): UNALLOCATED_COLOUR}
        colour = alt.Color(f"{by}:N", title=by.capitalize(), scale=_scale(names, fixed))
    return (
        alt.Chart(frame, title=title)
        .mark_line(strokeWidth=2, interpolate="monotone")
        .encode(
            # utc time units: dates are UTC days, and must not move with the reader's time zone
            x=alt.X("utcyearmonthdate(date):T", title=None, axis=alt.Axis(format="%d %b", labelAngle=0)),
            y=alt.Y("cost:Q", title=money_title("Spend per day", currency), axis=_axis(currency)),
            color=colour,
            tooltip=[
                alt.Tooltip("utcyearmonthdate(date):T", title="Day", format="%a %d %b %Y"),
                f"{by}:N",
                _tooltip_money("cost", currency),
            ],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )


# -- tables ------------------------------------------------------------------------------


class MoneyTable:
    """A small frame formatted for reading: money as ``$1,234,567.89``, shares as ``12.3%``.

    Displays as an HTML table in notebooks and reports (``_repr_html_``) and as aligned text
    elsewhere. The frame's values are formatted from the exact decimals.
    """

    def __init__(self, frame: pl.DataFrame, *, right_aligned: Sequence[str] = (), caption: str | None = None) -> None:
        self.frame = frame
        self.right_aligned = set(right_aligned)
        self.caption = caption

    def _repr_html_(self) -> str:
        numeric = self.right_aligned
        head = "".join(
            f'<th class="num">{html.escape(c)}</th>' if c in numeric else f"<th>{html.escape(c)}</th>"
            for c in self.frame.columns
        )
        rows = []
        for row in self.frame.iter_rows():  # a display table: a few dozen rows at most
            cells = "".join(
                f'<td class="num">{html.escape(v)}</td>' if c in numeric else f"<td>{html.escape(v)}</td>"
                for c, v in zip(self.frame.columns, row, strict=True)
            )
            rows.append(f"<tr>{cells}</tr>")
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (
            # JupyterLab typesets text between two "$" as LaTeX unless told not to.
            f'<table class="finops-table tex2jax_ignore mathjax_ignore">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def __repr__(self) -> str:
        columns = self.frame.columns
        widths = [max([len(c), *(len(v) for v in self.frame[c])]) for c in columns]

        def line(values: Sequence[str]) -> str:
            cells = (
                v.rjust(w) if c in self.right_aligned else v.ljust(w)
                for c, v, w in zip(columns, values, widths, strict=True)
            )
            return "  ".join(cells).rstrip()

        lines = [self.caption] if self.caption else []
        lines += [line(columns), *(line(row) for row in self.frame.iter_rows())]
        return "\n".join(lines)


def money(
    df: pl.DataFrame,
    columns: Sequence[str] | None = None,
    currency: str = "USD",
    *,
    shares: Sequence[str] = (),
    percents: Sequence[str] = (),
    titles: dict[str, str] | None = None,
    caption: str | None = None,
) -> MoneyTable:
    """A frame ready to show: money columns as ``$1,234,567.89``, other columns as text.

    Parameters
    ----------
    df
        A small frame from a finops function (a table for people, not a data dump).
    columns
        Money columns; ``None`` means every Decimal column.
    currency
        Currency the money columns are in.
    shares
        Columns holding fractions of one, shown as ``12.3%``.
    percents
        Columns already in percent, shown signed (``+12.3%``).
    titles
        Column renames for the header, e.g. ``{"ai_cost": "AI spend"}``; other names get
        their underscores replaced and a capital first letter.
    caption
        A line above the table.

    Examples
    --------
    >>> from decimal import Decimal
    >>> money(pl.DataFrame({"department": ["Research", "Legal"], "cost": [Decimal("1234.5"), None]}))
    Department       Cost
    Research    $1,234.50
    Legal             n/a
    """
    money_columns = list(columns) if columns is not None else [c for c, t in df.schema.items() if isinstance(t, pl.Decimal)]

    def text(column: str, value: Any) -> str:
        if value is None:
            return "" if column not in money_columns else "n/a"
        if column in money_columns:
            return format_money(value, currency)
        if column in shares:
            return format_share(value)
        if column in percents:
            return format_percent(value, signed=True)
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M UTC")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        if isinstance(value, float | Decimal):
            return f"{value:,.2f}"
        if isinstance(value, list | tuple | pl.Series):
            return ", ".join(str(v) for v in value)
        return str(value)

    formatted = df.select(
        pl.col(c).map_elements(functools.partial(text, c), return_dtype=pl.String, skip_nulls=False) for c in df.columns
    )
    names = titles or {}
    headers = {c: names.get(c, c.replace("_", " ").capitalize()) for c in df.columns}
    aligned = [c for c, t in df.schema.items() if c in money_columns or c in shares or c in percents or t.is_numeric()]
    return MoneyTable(formatted.rename(headers), right_aligned=[headers[c] for c in aligned], caption=caption)


def chargeback_by_month(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Direct and shared costs by month"
) -> alt.Chart:
    """Stacked bars per billing month: a department's direct cost and its share of pooled costs.

    ``df`` has ``month`` (``YYYY-MM``), ``direct_cost`` and ``shared_cost``: the rows of one
    department in :func:`finops.analyses.chargeback.chargeback` (or its statement's ``months``).
    """
    frame = df.select("month", "direct_cost", "shared_cost").unpivot(
        index="month", variable_name="part", value_name="cost"
    )
    frame = _to_chart_number(frame).with_columns(
        pl.col("part").replace_strict({"direct_cost": "Direct", "shared_cost": "Shared (pools)"}),
        _stack=pl.col("part").replace_strict({"direct_cost": 0, "shared_cost": 1}),
    )
    parts = ["Direct", "Shared (pools)"]
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("month:O", sort=sorted(frame["month"].unique().to_list()), title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(cost):Q", title=money_title("Charged", currency), axis=_axis(currency)),
            color=alt.Color("part:N", title="Cost", sort=parts, scale=alt.Scale(domain=parts, range=["#4c78a8", "#9ecae9"])),
            order=alt.Order("_stack:Q", sort="ascending"),
            tooltip=["month:O", "part:N", _tooltip_money("cost", currency)],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )


def chargeback_by_department(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Charged by department and month", keep: int = 8
) -> alt.Chart:
    """Stacked bars of :func:`finops.analyses.chargeback.chargeback` (department, month, total_cost): what
    each department is charged per billing month, pools included; each bar is the month's bill."""
    frame = df.select(
        period=pl.col("month").str.to_date("%Y-%m"), department=pl.col("department"), cost=pl.col("total_cost")
    )
    return monthly_spend_by_department(frame, currency, title=title, keep=keep).encode(
        y=alt.Y("sum(cost):Q", title=money_title("Charged", currency), axis=_axis(currency))
    )


def forecast_ranges(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Next quarter's forecast with 80% and 95% intervals"
) -> alt.Chart:
    """One row per series of :func:`finops.analyses.forecast.quarter_forecast`: the forecast as a tick,
    the 95% interval as a thin bar and the 80% interval as a thick one. The Total row is left
    out (its scale would flatten the others; the summary states it)."""
    frame = _to_chart_number(
        df.filter(pl.col("series") != "Total").select("series", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"),
        "forecast",
    ).with_columns(pl.col(c).cast(pl.Float64) for c in ("lo_80", "hi_80", "lo_95", "hi_95"))
    order = frame.sort("forecast", descending=True)["series"].to_list()
    y = alt.Y("series:N", sort=order, title=None)
    money_axis = alt.X("lo_95:Q", title=money_title("Forecast", currency), axis=_axis(currency))
    tooltip = ["series:N", _tooltip_money("forecast", currency, "Forecast"), _tooltip_money("lo_95", currency, "95% from"),
               _tooltip_money("hi_95", currency, "95% to")]  # fmt: skip
    base = alt.Chart(frame, title=title)
    wide = base.mark_bar(height=4, color="#9ecae9").encode(x=money_axis, x2="hi_95:Q", y=y, tooltip=tooltip)
    narrow = base.mark_bar(height=12, color="#4c78a8").encode(x="lo_80:Q", x2="hi_80:Q", y=y, tooltip=tooltip)
    point = base.mark_tick(color="black", thickness=2, size=18).encode(x="forecast:Q", y=y, tooltip=tooltip)
    return (wide + narrow + point).properties(width=CHART_WIDTH, height=max(120, 34 * frame.height))


def unit_cost_trend(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Cost per 1M tokens by model and month", keep: int = 8
) -> alt.Chart:
    """Lines per model of :func:`finops.analyses.unit_economics.token_unit_costs` with ``grain="month"``
    (``period``, ``provider``, ``model``, ``cost``, ``cost_per_1m_tokens``): the ``keep``
    costliest models, so a price change or a shift to longer prompts shows as a kink."""
    period = next(c for c in ("period", "month", "week") if c in df.columns)
    top = df.group_by("provider", "model").agg(pl.col("cost").sum()).sort("cost", descending=True).head(keep)
    frame = (
        df.join(top.select("provider", "model"), on=["provider", "model"])
        .filter(pl.col("cost_per_1m_tokens").is_not_null())
        .select(period=pl.col(period), model=pl.col("provider") + " / " + pl.col("model"),
                cost=pl.col("cost_per_1m_tokens").cast(pl.Float64))  # fmt: skip
    )
    return (
        alt.Chart(frame, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("yearmonth(period):O", title=None, axis=alt.Axis(format="%b %Y", labelAngle=0)),
            y=alt.Y("cost:Q", title=money_title("Cost per 1M tokens", currency), axis=alt.Axis(format="$,.2f")),
            color=alt.Color("model:N", title="Model"),
            tooltip=["model:N", alt.Tooltip("yearmonth(period):O", format="%b %Y", title="Month"), alt.Tooltip("cost:Q", format="$,.2f", title="Per 1M tokens")],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )


# -- offline rendering -------------------------------------------------------------------


def _script_json(value: Any) -> str:
    """JSON safe inside an HTML <script>: no '</script>' or '<!--' can close it early."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def offline_html(spec: dict[str, Any]) -> str:
    """A chart as a ``<div>`` and a script that draws it with the page's inlined ``vegaEmbed``.

    The script finds its ``<div>`` as its previous sibling (no generated ids, so the output is
    the same on every run) and waits for the ``finops:vega-ready`` event if the bundle — a
    deferred module script — has not run yet. Outside a report page (the document already
    loaded and no ``vegaEmbed``) it says so instead of leaving a blank space.
    """
    return (
        '<div class="finops-chart"></div>'
        "<script>(function(){"
        "var el=document.currentScript.previousElementSibling;"
        f"var spec={_script_json(spec)};"
        "function draw(){window.vegaEmbed(el,spec,{actions:false,renderer:'svg'})"
        ".catch(function(e){el.textContent='Chart failed to draw: '+e;});}"
        "if(window.vegaEmbed){draw();}"
        f"else if(document.readyState==='loading'){{window.addEventListener('{VEGA_READY_EVENT}',draw,{{once:true}});}}"
        # Shown outside a finops report page (e.g. JupyterLab with offline=True): no bundle will come.
        "else{el.textContent='This chart draws in the finops HTML report; use the default Altair renderer here.';}"
        "})();</script>"
    )


def _offline_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, str]:
    return {"text/html": offline_html(spec), "text/plain": "<Altair chart>"}


alt.renderers.register(OFFLINE_RENDERER, _offline_renderer)


def use_offline_renderer() -> None:
    """Render charts for a self-contained HTML report (the page must inline :func:`vega_javascript`)."""
    alt.renderers.enable(OFFLINE_RENDERER)


@functools.lru_cache(maxsize=1)
def vega_javascript() -> str:
    """Vega, Vega-Lite and Vega-Embed as one ES module that sets ``window.vegaEmbed``.

    Built by vl-convert from the copies it ships (no network), matched to the Vega-Lite
    version Altair writes specs for. Include it once per page in ``<script type="module">``;
    when it has run it dispatches ``finops:vega-ready`` on ``window``.
    """
    import vl_convert as vlc

    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    version = major_minor if major_minor in vlc.get_vegalite_versions() else None
    snippet = (
        "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;\n"
        f"window.dispatchEvent(new Event('{VEGA_READY_EVENT}'));\n"
    )
    bundle = vlc.javascript_bundle(snippet, vl_version=version) if version else vlc.javascript_bundle(snippet)
    # The bundle goes inside <script>: make sure nothing in it can end the element early.
    return bundle.replace("</script", "<\\/script")


# -- gateway usage (appended for finops/reports/explore.py) ----------------------------------------


def gateway_model_mix(
    df: pl.DataFrame, currency: str = "USD", *, title: str = "Gateway and model-API cost by model", keep: int = 12
) -> alt.Chart:
    """Horizontal bars, largest first: the cost of each model's calls, coloured by provider.

    ``df`` has ``provider``, ``model``, ``cost`` and optionally ``requests`` (e.g. the gateway
    calls of :func:`finops.analyses.chargeback.gateway_usage` or :func:`finops.reports.explore.gateway_cube`,
    at any grain: it is summed per provider and model first). The ``keep`` costliest models
    are named; the rest are summed into "Other models".
    """
    frame = df.with_columns(pl.col("model").fill_null("unknown model"), pl.col("provider").fill_null("unknown"))
    if "requests" not in frame.columns:
        frame = frame.with_columns(requests=pl.lit(None, pl.Int64))
    frame = _top_n_and_rest(frame.with_columns(pl.col("cost").fill_null(0)), "model", keep, "Other models")
    frame = frame.group_by("provider", "model").agg(pl.col("cost").sum(), pl.col("requests").sum())
    order = _by_size(frame, "model")["model"].to_list()
    providers = _by_size(frame, "provider")["provider"].to_list()
    fixed = {name.lower(): colour for name, colour in PROVIDER_COLOURS.items()}
    fixed.update({"aws bedrock": PROVIDER_COLOURS["aws"], "azure openai": PROVIDER_COLOURS["azure"]})
    fixed["google vertex ai / gemini"] = PROVIDER_COLOURS["google cloud"]
    return (
        alt.Chart(_to_chart_number(frame), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
            x=alt.X("sum(cost):Q", title=money_title("Cost", currency), axis=_axis(currency)),
            color=alt.Color("provider:N", title="Provider", scale=_scale(providers, fixed), sort=providers),
            tooltip=["provider:N", "model:N", _tooltip_money("cost", currency), alt.Tooltip("requests:Q", format=",")],
        )
        .properties(width=CHART_WIDTH, height=alt.Step(22))
    )


def spend_over_time(
    df: pl.DataFrame,
    currency: str = "USD",
    *,
    by: str = "workload",
    grain: str = "day",
    title: str | None = None,
    keep: int = 8,
) -> alt.Chart:
    """Lines of spend per day, week or month, one per value of ``by`` (workload, department, provider…).

    ``df`` has ``date`` (the day, or the first day of the week or month), the ``by`` column and
    ``cost``; it is summed per date and value first. Workloads keep their fixed colours; for
    other splits the ``keep`` largest values are named and the rest summed into "Other". Why:
    a long range drawn per day is noise and, over a few thousand points, more than Altair
    embeds; per week or month the trend reads at a glance.
    """
    frame = df.select("date", by, "cost").with_columns(pl.col(by).fill_null("unknown"))
    if by != "workload":
        frame = _top_n_and_rest(frame, by, keep, "Other")
    frame = frame.group_by("date", by).agg(pl.col("cost").sum())
    frame = _to_chart_number(frame.with_columns(pl.col("date").cast(pl.Date))).sort("date", by)
    if by == "workload":
        scale = _workload_scale(frame["workload"].unique().to_list())
    else:
        names = _by_size(frame, by)[by].to_list()
        fixed = PROVIDER_COLOURS if by == "provider" else {UNALLOCATED.lower(): UNALLOCATED_COLOUR}
        scale = _scale(names, fixed)
    day_format = "%b %Y" if grain == "month" else "%d %b %Y"
    return (
        alt.Chart(frame, title=title or f"Spend per {grain} by {by}")
        .mark_line(strokeWidth=2, interpolate="monotone", point=grain == "month")
        .encode(
            # utc time units: dates are UTC days, and must not move with the reader's time zone
            x=alt.X("utcyearmonthdate(date):T", title=None, axis=alt.Axis(format="%d %b %y", labelAngle=0)),
            y=alt.Y("cost:Q", title=money_title(f"Spend per {grain}", currency), axis=_axis(currency)),
            color=alt.Color(f"{by}:N", title=by.capitalize(), scale=scale, sort=scale.domain),
            tooltip=[
                alt.Tooltip("utcyearmonthdate(date):T", title=grain.capitalize(), format=day_format),
                f"{by}:N",
                _tooltip_money("cost", currency),
            ],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )

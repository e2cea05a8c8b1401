"""Sentences with the numbers in them: what a CFO reads before the first chart.

The functions here turn the one-row and small frames that :mod:`finops.analyses.spend` returns into
Markdown or plain text. They format, they never compute spend: the numbers come from the
analysis functions, so the report, the CLI and the tests all show the same figure.

Money is formatted from :class:`~decimal.Decimal` exactly (half-up to the cent), never via
float, so ``$1,234,567.89`` in the review is the warehouse's number to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl

from finops.config import UNALLOCATED
from finops.periods import Quarter

CURRENCY_SYMBOLS: dict[str, str] = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}
"""Currencies written with a symbol before the amount; any other code is written after it."""

_CENT = Decimal("0.01")


def format_money(amount: Decimal | float | int | None, currency: str = "USD", *, cents: bool = True) -> str:
    """An amount as a reader expects it: ``$1,234,567.89``, ``-$12.00``, ``1,234.50 CHF``.

    Parameters
    ----------
    amount
        The amount; a float is converted through ``str`` so it is not widened to binary noise.
        ``None`` (no data) gives ``"n/a"``, never ``$0.00``.
    currency
        ISO 4217 code. USD, EUR, GBP, JPY, CAD and AUD get their symbol in front.
    cents
        Two decimals (half-up) when true, whole units otherwise.

    Examples
    --------
    >>> format_money(Decimal("1234567.885"))
    '$1,234,567.89'
    >>> format_money(Decimal("-12"), "EUR")
    '-€12.00'
    >>> format_money(Decimal("999.5"), "CHF", cents=False)
    '1,000 CHF'
    >>> format_money(None)
    'n/a'
    """
    if amount is None:
        return "n/a"
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    value = value.quantize(_CENT if cents else Decimal(1), rounding=ROUND_HALF_UP)
    if value == 0:
        value = abs(value)  # no "-$0.00"
    digits = f"{abs(value):,.{2 if cents else 0}f}"
    sign = "-" if value < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency.upper()}"


def format_percent(value: Decimal | float | None, *, signed: bool = False, digits: int = 1) -> str:
    """A percentage already in percent units (``12.34`` → ``12.3%``); ``None`` gives ``n/a``.

    >>> format_percent(12.345)
    '12.3%'
    >>> format_percent(Decimal("-4.05"), signed=True)
    '-4.1%'
    >>> format_percent(3, signed=True)
    '+3.0%'
    >>> format_percent(-0.0001, signed=True)  # rounds to zero: no "-0.0%"
    '0.0%'
    """
    if value is None:
        return "n/a"
    number = Decimal(str(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP) + 0
    sign = "+" if signed and number > 0 else ""
    return f"{sign}{number:.{digits}f}%"


def format_share(value: Decimal | float | None, *, digits: int = 1) -> str:
    """A share given as a fraction of one (``0.6821`` → ``68.2%``); ``None`` gives ``n/a``.

    >>> format_share(0.6821)
    '68.2%'
    """
    if value is None:
        return "n/a"
    return format_percent(Decimal(str(value)) * 100, digits=digits)


def heading(quarter: Quarter, company: str, basis: str = "effective", currency: str = "USD") -> str:
    """The review's title and the line under it, as Markdown: which quarter, whose, which cost.

    >>> print(heading(Quarter(2026, 3), "Example Corp"))
    # AI spend review, 2026Q3
    <BLANKLINE>
    Example Corp · billing months July to September 2026 · effective cost (commitments amortized), USD
    """
    q = quarter
    months = q.months()
    cost = "effective cost (commitments amortized)" if basis == "effective" else "billed cost (as invoiced)"
    return (
        f"# AI spend review, {q.label}\n\n"
        f"{company} · billing months {months[0]:%B} to {months[-1]:%B %Y} · {cost}, {currency.upper()}"
    )


def total_ai_spend_line(summary: pl.DataFrame, currency: str = "USD") -> str:
    """``Total AI spend 2026Q3: $1,234,567.89`` from a :func:`finops.analyses.spend.quarter_summary` row.

    The report's checked output: one deterministic line that nbval and the report test
    compare against the warehouse.

    >>> total_ai_spend_line(pl.DataFrame({"quarter": ["2026Q3"], "ai_cost": [Decimal("1234567.891")]}))
    'Total AI spend 2026Q3: $1,234,567.89'
    """
    row = _one_row(summary, "quarter_summary")
    return f"Total AI spend {row['quarter']}: {format_money(row['ai_cost'], currency)}"


def executive_summary(summary: pl.DataFrame, top: pl.DataFrame, currency: str = "USD") -> str:
    """The review's first screen, as Markdown: AI spend, its change, inference share, top spenders.

    Dollar signs are escaped (``\\$``): Jupyter reads text between two ``$`` as LaTeX.

    Parameters
    ----------
    summary
        The one row of :func:`finops.analyses.spend.quarter_summary` (``quarter``, ``total_cost``,
        ``ai_cost``, ``previous_ai_cost``, ``ai_change_pct``, ``year_ago_ai_cost``,
        ``ai_change_yoy_pct``, ``inference_cost``, ``inference_share``, ``training_cost``,
        ``training_share``). ``*_pct`` columns are in percent, ``*_share`` columns fractions.
    top
        :func:`finops.analyses.spend.top_departments`: ``department``, ``ai_cost``, ``share``, …
    currency
        The currency the amounts are in.

    Examples
    --------
    >>> summary = pl.DataFrame({
    ...     "quarter": ["2026Q3"], "total_cost": [Decimal("400")], "ai_cost": [Decimal("100")],
    ...     "previous_ai_cost": [Decimal("80")], "ai_change_pct": [25.0],
    ...     "year_ago_ai_cost": [None], "ai_change_yoy_pct": [None],
    ...     "inference_cost": [Decimal("70")], "inference_share": [0.7],
    ...     "training_cost": [Decimal("20")], "training_share": [0.2]})
    >>> top = pl.DataFrame({"department": ["Research"], "ai_cost": [Decimal("60")], "share": [0.6]})
    >>> print(executive_summary(summary, top))
    **AI spend in 2026Q3 was \\$100.00**, up 25.0% from \\$80.00 the quarter before. AI was 25.0% of all cloud spend (\\$400.00).
    <BLANKLINE>
    **Inference was 70.0% of AI spend** (\\$70.00); training 20.0% (\\$20.00).
    <BLANKLINE>
    **Largest AI spenders:** Research \\$60.00 (60.0%).
    """
    row = _one_row(summary, "quarter_summary")

    def money(value: Decimal | None) -> str:
        return markdown_text(format_money(value, currency))

    headline = f"**AI spend in {row['quarter']} was {money(row['ai_cost'])}**"
    previous = row.get("previous_ai_cost")
    change = row.get("ai_change_pct")
    if previous is None or change is None:
        headline += ", with no AI spend recorded the quarter before to compare against."
    else:
        headline += f", {_direction(change)} from {money(previous)} the quarter before."
    year_ago, yoy = row.get("year_ago_ai_cost"), row.get("ai_change_yoy_pct")
    if year_ago is not None and yoy is not None:
        headline += f" A year earlier it was {money(year_ago)} ({format_percent(yoy, signed=True)})."
    total = row.get("total_cost")
    if total:
        ai_share = Decimal(str(row["ai_cost"] or 0)) / Decimal(str(total))
        headline += f" AI was {format_share(ai_share)} of all cloud spend ({money(total)})."

    mix = (
        f"**Inference was {format_share(row.get('inference_share'))} of AI spend** "
        f"({money(row.get('inference_cost'))}); training {format_share(row.get('training_share'))} "
        f"({money(row.get('training_cost'))})."
    )

    if top.height:
        spenders = "; ".join(
            f"{name} {money(cost)} ({format_share(share)})"
            for name, cost, share in top.select("department", "ai_cost", "share").iter_rows()
        )
        leaders = f"**Largest AI spenders:** {spenders}."
    else:
        leaders = "**Largest AI spenders:** no AI spend was attributed to a department this quarter."
    return "\n\n".join([headline, mix, leaders])


def markdown_text(text: str) -> str:
    r"""``text`` safe in Markdown that Jupyter renders: ``$`` escaped, or two amounts become math.

    >>> markdown_text("$1.00 to $2.00")
    '\\$1.00 to \\$2.00'
    """
    return text.replace("$", r"\$")


def _direction(change_pct: Decimal | float) -> str:
    """'up 12.3%' / 'down 4.0%' / 'unchanged'."""
    number = Decimal(str(change_pct))
    if number.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) == 0:
        return "unchanged"
    return f"{'up' if number > 0 else 'down'} {format_percent(abs(number))}"


def _one_row(frame: pl.DataFrame, what: str) -> Mapping[str, Any]:
    if frame.height != 1:
        raise ValueError(f"expected the one row of {what}, got {frame.height} rows")
    return frame.row(0, named=True)


def statement_heading(statement: Any, company: str, owner: str | None = None, currency: str = "USD") -> str:
    """A department statement's title and the line under it, as Markdown.

    ``statement`` is a :class:`finops.analyses.chargeback.DepartmentStatement`.
    """
    q = statement.quarter
    months = q.months()
    cost = "effective cost (commitments amortized)" if statement.basis == "effective" else "billed cost (as invoiced)"
    who = f" · owner {owner}" if owner else ""
    return (
        f"# {statement.department}: AI and cloud spend statement, {q.label}\n\n"
        f"{company} · billing months {months[0]:%B} to {months[-1]:%B %Y} · {cost}, {currency.upper()}{who}"
    )


def statement_summary(statement: Any, currency: str = "USD") -> str:
    """A department statement's first paragraph, as Markdown: total, its parts, the change, the
    largest pool share and the gateway usage.

    >>> import polars as pl
    >>> from types import SimpleNamespace
    >>> from finops.periods import Quarter
    >>> s = SimpleNamespace(department="Research", quarter=Quarter.parse("2026Q3"), basis="effective",
    ...     totals=pl.DataFrame({"total_cost": [Decimal("120")], "direct_cost": [Decimal("100")],
    ...         "shared_cost": [Decimal("20")], "previous_quarter_total": [Decimal("100")], "change_pct": [20.0]}),
    ...     shared=pl.DataFrame({"pool": ["GPU cluster"], "split": ["fixed"], "cost": [Decimal("20")],
    ...         "share_pct": [30.0]}),
    ...     gateway=pl.DataFrame({"requests": [1500], "input_tokens": [2_000_000], "output_tokens": [500_000],
    ...         "cost": [Decimal("12.5")]}))
    >>> print(statement_summary(s))
    **Research is charged \\$120.00 for 2026Q3**, up 20.0% from \\$100.00 the quarter before: \\$100.00 of its own spend and \\$20.00 of shared costs.
    <BLANKLINE>
    Its largest shared cost is GPU cluster: \\$20.00, 30.0% of the pool (split fixed).
    <BLANKLINE>
    Through the LLM gateway and model APIs it made 1,500 requests with 2.5M tokens, \\$12.50 at the providers' prices.
    """
    row = _one_row(statement.totals, "department statement totals")

    def money(value: Decimal | None) -> str:
        return markdown_text(format_money(value, currency))

    text = f"**{statement.department} is charged {money(row['total_cost'])} for {statement.quarter.label}**"
    if row.get("previous_quarter_total") is not None and row.get("change_pct") is not None:
        text += f", {_direction(row['change_pct'])} from {money(row['previous_quarter_total'])} the quarter before"
    text += f": {money(row['direct_cost'])} of its own spend and {money(row['shared_cost'])} of shared costs."
    placed, before = row.get("placed_by_gateway") or 0, row.get("previous_placed_by_gateway") or 0
    if placed and not before and row.get("previous_quarter_total") is not None:
        text += (
            f" {money(placed)} of it are model invoices without a team that the LLM gateway's token counts"
            " place on it; the quarter before had no gateway data for them, so they were Unallocated then."
        )
    parts = [text]
    if statement.shared.height:
        pool = statement.shared.sort("cost", descending=True).row(0, named=True)
        parts.append(
            f"Its largest shared cost is {pool['pool']}: {money(pool['cost'])}, "
            f"{format_percent(pool['share_pct'])} of the pool (split {pool['split']})."
        )
    gateway = statement.gateway
    if gateway.height:
        tokens = int((gateway["input_tokens"].fill_null(0) + gateway["output_tokens"].fill_null(0)).sum())
        parts.append(
            f"Through the LLM gateway and model APIs it made {int(gateway['requests'].sum()):,} requests with "
            f"{_tokens(tokens)} tokens, {money(gateway['cost'].sum())} at the providers' prices."
        )
    else:
        parts.append("No gateway or model-API usage is recorded for it this quarter.")
    return "\n\n".join(parts)


def _tokens(count: int) -> str:
    """``2.5M``, ``830k``, ``12``: token counts the way people say them."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:,.1f}".rstrip("0").rstrip(".") + suffix
    return str(count)


def statement_total_line(statement: Any, currency: str = "USD") -> str:
    """``Customer Support 2026Q3: $1.00 charged ($0.80 direct, $0.20 shared)``: the statement's
    checked output (nbval compares it), one deterministic line."""
    row = _one_row(statement.totals, "department statement totals")
    return (
        f"{statement.department} {statement.quarter.label}: {format_money(row['total_cost'], currency)} charged "
        f"({format_money(row['direct_cost'], currency)} direct, {format_money(row['shared_cost'], currency)} shared)"
    )


def outlook(forecast: pl.DataFrame, budgets: pl.DataFrame, currency: str = "USD") -> str:
    """The executive summary's forward look, as Markdown: next quarter's forecast with its
    interval, and where the budgets of the quarter stand.

    Parameters
    ----------
    forecast
        :func:`finops.analyses.forecast.quarter_forecast` of the next quarter: its ``Total`` row gives
        ``quarter``, ``forecast``, ``lo_95``, ``hi_95`` and ``quarter_mape``.
    budgets
        :func:`finops.analyses.budgets.budget_status` of the review's quarter (may be empty): each budget's
        ``department``, ``provider``, ``model``, ``projected_pct`` and ``alerts``.

    Examples
    --------
    >>> f = pl.DataFrame({"series": ["A", "Total"], "quarter": ["2026Q4"] * 2,
    ...     "forecast": [Decimal("90"), Decimal("100")], "lo_95": [None, Decimal("80")],
    ...     "hi_95": [None, Decimal("120")], "quarter_mape": [5.0, 4.2]})
    >>> b = pl.DataFrame({"department": ["A", "B"], "provider": [None, "AWS"], "model": [None, None],
    ...     "projected_pct": [106.0, 83.0], "alerts": ["80% spent; 100% spent", "80% spent"]})
    >>> print(outlook(f, b))
    **All spend in 2026Q4 is forecast at \\$100.00** (95% interval \\$80.00 to \\$120.00; the same method missed quarter totals by 4.2% on average in the backtest).
    <BLANKLINE>
    **Budgets:** 1 of 2 over budget: A (106.0% of budget). Past an alert: B on AWS (83.0%).
    """
    parts = []
    total = forecast.filter(pl.col("series") == "Total")
    if total.height:
        row = total.row(0, named=True)
        text = f"**All spend in {row['quarter']} is forecast at {markdown_text(format_money(row['forecast'], currency))}**"
        if row.get("lo_95") is not None and row.get("hi_95") is not None:
            text += (
                f" (95% interval {markdown_text(format_money(row['lo_95'], currency))} to "
                f"{markdown_text(format_money(row['hi_95'], currency))}"
            )
            mape = row.get("quarter_mape")
            text += f"; the same method missed quarter totals by {format_percent(mape)} on average in the backtest)." if mape is not None else ")."
        else:
            text += "."
        parts.append(text)
    if budgets.height == 0:
        parts.append("**Budgets:** none are set for this quarter in finops.toml.")
    else:
        named = budgets.with_columns(
            name=pl.concat_str(
                pl.col("department"),
                pl.when(pl.col("provider").is_not_null()).then(pl.lit(" on ") + pl.col("provider")).otherwise(pl.lit("")),
                pl.when(pl.col("model").is_not_null()).then(pl.lit(" / ") + pl.col("model")).otherwise(pl.lit("")),
            )
        )
        over = named.filter(pl.col("projected_pct") >= 100)
        warned = named.filter((pl.col("projected_pct") < 100) & (pl.col("alerts").fill_null("") != ""))
        text = f"**Budgets:** {over.height} of {named.height} over budget"
        if over.height:
            text += ": " + ", ".join(f"{n} ({format_percent(p)} of budget)" for n, p in over.select("name", "projected_pct").iter_rows())
        text += "."
        if warned.height:
            text += " Past an alert: " + ", ".join(f"{n} ({format_percent(p)})" for n, p in warned.select("name", "projected_pct").iter_rows()) + "."
        parts.append(text)
    return "\n\n".join(parts)


def anomaly_summary(cost: pl.DataFrame, agents: pl.DataFrame, currency: str = "USD") -> str:
    """The anomalies section's lead, as Markdown: how many days, their $ impact, the largest, and
    the runaway agent tasks with what they cost.

    ``cost`` is :func:`finops.analyses.anomalies.cost_anomalies` (date, department, service, impact, …),
    ``agents`` :func:`finops.analyses.anomalies.agent_anomalies` (agent_id, task_id, day, cost, …).

    >>> from datetime import date
    >>> cost = pl.DataFrame({"date": [date(2026, 8, 12)], "department": ["Support"], "service": ["Azure OpenAI"],
    ...     "impact": [Decimal("3373.94")]})
    >>> agents = pl.DataFrame({"agent_id": ["ticket-agent"] * 2, "task_id": ["a", "b"], "cost": [Decimal("300"), Decimal("100")]})
    >>> print(anomaly_summary(cost, agents))
    **1 day of unusual spend cost \\$3,373.94 above the expected.** The largest: Support on Azure OpenAI, 2026-08-12, +\\$3,373.94.
    <BLANKLINE>
    **2 runaway agent tasks** (far more model calls or tokens than their agent's typical task) cost \\$400.00: ticket-agent 2 (\\$400.00).
    """
    parts = []
    if cost.height:
        impact = cost["impact"].sum()
        top = cost.sort("impact", descending=True).row(0, named=True)
        days = "day" if cost.height == 1 else "days"
        parts.append(
            f"**{cost.height} {days} of unusual spend cost {markdown_text(format_money(impact, currency))} above the expected.**"
            f" The largest: {top['department']} on {top['service']}, {top['date']:%Y-%m-%d}, "
            f"+{markdown_text(format_money(top['impact'], currency))}"
            + (f", driven by {top['top_sku']}." if top.get("top_sku") else ".")
        )
    else:
        parts.append("**No day of the quarter had unusual spend** for any department and service.")
    if agents.height:
        per_agent = agents.group_by("agent_id").agg(pl.len().alias("tasks"), pl.col("cost").sum()).sort("cost", descending=True)
        listed = ", ".join(
            f"{a} {n} ({markdown_text(format_money(c, currency))})" for a, n, c in per_agent.select("agent_id", "tasks", "cost").iter_rows()
        )
        parts.append(
            f"**{agents.height} runaway agent tasks** (far more model calls or tokens than their agent's typical task) "
            f"cost {markdown_text(format_money(agents['cost'].sum(), currency))}: {listed}."
        )
    else:
        parts.append("No agent task ran away (calls and tokens per task stayed near each agent's norm).")
    return "\n\n".join(parts)


def coverage_summary(charged: pl.DataFrame, coverage: pl.DataFrame, unpriced: pl.DataFrame, currency: str = "USD") -> str:
    """The data-coverage section's lead, as Markdown: unallocated spend, how much AI spend a
    fallback rule classified, and model calls without a price.

    ``charged`` is :func:`finops.analyses.chargeback.quarter_chargeback`, ``coverage``
    :func:`finops.analyses.spend.classification_coverage`, ``unpriced`` :func:`finops.analyses.reconcile.unpriced_usage`.

    >>> charged = pl.DataFrame({"department": ["A", "Unallocated"], "total_cost": [Decimal("990"), Decimal("10")],
    ...     "share": [0.99, 0.01]})
    >>> coverage = pl.DataFrame({"ai_cost": [Decimal("500")], "fallback_cost": [Decimal("25")]})
    >>> unpriced = pl.DataFrame({"model": [], "total_tokens": []}, schema={"model": pl.String, "total_tokens": pl.Int64})
    >>> print(coverage_summary(charged, coverage, unpriced))
    **Unallocated: \\$10.00, 1.0% of the bill**, spend no account, tag, gateway team or rule places. **Classification:** 5.0% of AI spend (\\$25.00) was classified by a fallback rule, not a specific one. **Prices:** every model call has a price.
    """
    unallocated = charged.filter(pl.col("department") == UNALLOCATED)
    if unallocated.height:
        row = unallocated.row(0, named=True)
        text = (
            f"**Unallocated: {markdown_text(format_money(row['total_cost'], currency))}, {format_share(row['share'])} of the bill**, "
            "spend no account, tag, gateway team or rule places."
        )
    else:
        text = "**Unallocated: nothing**: every charge has a department."
    ai = coverage["ai_cost"].sum() if coverage.height else None
    if ai:
        fallback = coverage["fallback_cost"].sum()
        text += (
            f" **Classification:** {format_share(Decimal(fallback) / Decimal(ai))} of AI spend "
            f"({markdown_text(format_money(fallback, currency))}) was classified by a fallback rule, not a specific one."
        )
    if unpriced.height:
        models = ", ".join(sorted(set(unpriced["model"].drop_nulls().to_list())))
        text += f" **Prices:** {int(unpriced['total_tokens'].sum()):,} tokens of {models} have no price, so their cost is unknown (not zero)."
    else:
        text += " **Prices:** every model call has a price."
    return text


def savings_assumptions(savings: pl.DataFrame, currency: str = "USD") -> str:
    """Each savings opportunity's assumptions as a Markdown list, in the table's rank order.

    ``savings`` is :func:`finops.analyses.whatif.savings_opportunities` (``rank``, ``opportunity``,
    ``saving_per_quarter``, ``assumptions``): the table stays narrow, the reasoning stays next to it.

    >>> s = pl.DataFrame({"rank": [1], "opportunity": ["prompt caching"], "saving_per_quarter": [Decimal("12.5")],
    ...     "assumptions": ["cacheable share 0.4 (seed 002)"]})
    >>> print(savings_assumptions(s))
    **How each saving was estimated**
    <BLANKLINE>
    1. **prompt caching** (\\$12.50 a quarter): cacheable share 0.4 (seed 002)
    """
    lines = ["**How each saving was estimated**", ""]
    for rank, name, saving, assumptions in savings.select("rank", "opportunity", "saving_per_quarter", "assumptions").iter_rows():
        lines.append(f"{rank}. **{name}** ({markdown_text(format_money(saving, currency))} a quarter): {markdown_text(assumptions or '')}")
    return "\n".join(lines)

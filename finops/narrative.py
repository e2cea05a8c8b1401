"""Sentences with the numbers in them: what a CFO reads before the first chart.

The functions here turn the one-row and small frames that :mod:`finops.spend` returns into
Markdown or plain text. They format, they never compute spend: the numbers come from the
analysis functions, so the report, the CLI and the tests all show the same figure.

Money is formatted from :class:`~decimal.Decimal` exactly (half-up to the cent), never via
float, so ``$1,234,567.89`` in the review is the warehouse's number to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
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


def heading(quarter: Quarter | str, company: str, basis: str = "effective", currency: str = "USD") -> str:
    """The review's title and the line under it, as Markdown: which quarter, whose, which cost.

    >>> print(heading("2026Q3", "Example Corp"))
    # AI spend review, 2026Q3
    <BLANKLINE>
    Example Corp · billing months July to September 2026 · effective cost (commitments amortized), USD
    """
    from finops.periods import Quarter

    q = Quarter.parse(quarter)
    months = q.months()
    cost = "effective cost (commitments amortized)" if basis == "effective" else "billed cost (as invoiced)"
    return (
        f"# AI spend review, {q.label}\n\n"
        f"{company} · billing months {months[0]:%B} to {months[-1]:%B %Y} · {cost}, {currency.upper()}"
    )


def total_ai_spend_line(summary: pl.DataFrame, currency: str = "USD") -> str:
    """``Total AI spend 2026Q3: $1,234,567.89`` from a :func:`finops.spend.quarter_summary` row.

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
        The one row of :func:`finops.spend.quarter_summary` (``quarter``, ``total_cost``,
        ``ai_cost``, ``previous_ai_cost``, ``ai_change_pct``, ``year_ago_ai_cost``,
        ``ai_change_yoy_pct``, ``inference_cost``, ``inference_share``, ``training_cost``,
        ``training_share``). ``*_pct`` columns are in percent, ``*_share`` columns fractions.
    top
        :func:`finops.spend.top_departments`: ``department``, ``ai_cost``, ``share``, …
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

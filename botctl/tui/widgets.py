"""The dashboard's panels. Each one draws itself from a `Snapshot` (botctl.tui.data) with
`show(snap)`, on the UI thread, doing no I/O; an empty journal, a missing number or a halted
account each have a plain sentence, never an exception."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.message import Message
from textual.widgets import Static, Tab, Tabs
from textual_plotext import PlotextPlot

from botctl.tui.data import Snapshot
from botctl.tui.market import ny_date

STATUS_STYLE = {"healthy": "bold black on green", "degraded": "bold black on yellow",
                "unhealthy": "bold white on red", "halted": "bold white on red", "not running": "bold white on grey37"}
REASON_STYLE = {"unhealthy": "bold red", "halted": "bold red", "degraded": "yellow"}
GATE_STYLE = {"active": "green", "gated": "yellow", "empty": "dim"}
# Marks and bars older than this (calendar days, against the wall clock) are shown as stale:
# a long weekend is the longest a daily bot goes without one.
STALE_DAYS = 4
SEVERITY_STYLE = {"WARN": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


# --- formatting ----------------------------------------------------------------------------

def money(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    return f"{sign}${abs(value):,.2f}"


def pct(value: float | None, signed: bool = True, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"


def tone(value: float | None) -> str:
    if value is None or not math.isfinite(value) or abs(value) < 1e-12:
        return ""
    return "green" if value > 0 else "red"


def leverage_style(value: float | None) -> str:
    """Green under 1.0x, yellow up to 1.2x, red above."""
    if value is None:
        return ""
    return "green" if value < 1.0 else ("yellow" if value <= 1.2 else "bold red")


def stamp(ts: datetime | None) -> str:
    """A time with its date and year, in UTC (so "12-01" never passes for this December)."""
    if ts is None:
        return "-"
    return f"{ts.astimezone(timezone.utc):%Y-%m-%d %H:%M}Z"


def age(then: datetime | date | None, now: datetime) -> tuple[str, str]:
    """("342 days old", style) for a mark or a bar date against the wall clock: red once
    stale (older than STALE_DAYS), dim otherwise."""
    if then is None:
        return "", ""
    if isinstance(then, datetime):
        seconds = (now - then).total_seconds()
    else:
        seconds = (ny_date(now) - then).days * 86400.0  # bar dates are New York session days
    days = seconds / 86400
    if seconds < 0:  # newer than the clock (a frozen or skewed one): no age to tell
        return "", ""
    if not isinstance(then, datetime) and days < 2:
        text = "today" if days < 1 else "1 day old"
    elif days >= 2:
        text = f"{days:.0f} days old"
    elif seconds >= 3600:
        text = f"{seconds / 3600:.0f}h old"
    else:
        text = f"{max(seconds, 0) / 60:.0f}m old"
    return text, "bold red" if days > STALE_DAYS else "dim"


def qty(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def _table(*columns: str, right: tuple[int, ...] = (), flex: int | None = None, header: bool = True) -> Table:
    """A borderless table; every column keeps its natural width except `flex`, which takes
    what is left and wraps (so a narrow panel gets taller; no number is ever cut)."""
    table = Table(box=None, expand=True, pad_edge=False, padding=(0, 1), header_style="bold", show_header=header)
    for i, name in enumerate(columns):
        table.add_column(Text(name), justify="right" if i in right else "left", no_wrap=i != flex,
                         overflow="fold" if i == flex else "ellipsis", ratio=1 if i == flex else None,
                         min_width=8 if i == flex else None)
    return table


def _kv() -> Table:
    return _table("", "", right=(1,), header=False)


def _note(text: str) -> Text:
    return Text(text, style="dim italic")


class AccountTabs(Tabs):
    """The account selector. Tabs also announce activations made by the program (the first
    tab added, syncing to the account shown), so user choices get a message of their own."""

    class Chosen(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    async def _on_tab_clicked(self, event: Tab.Clicked) -> None:
        await super()._on_tab_clicked(event)
        self._chosen()

    def action_next_tab(self) -> None:
        super().action_next_tab()
        self._chosen()

    def action_previous_tab(self) -> None:
        super().action_previous_tab()
        self._chosen()

    def _chosen(self) -> None:
        if self.active.startswith("account-"):
            self.post_message(self.Chosen(int(self.active.rsplit("-", 1)[1])))


# --- panels --------------------------------------------------------------------------------

class Panel(Static):
    """A bordered panel with a title; subclasses turn a snapshot into a renderable."""

    TITLE = ""
    shown: RenderableType | None = None  # the last renderable drawn (tests read it back as text)

    def on_mount(self) -> None:
        self.border_title = self.TITLE
        self.update(_note("loading..."))

    def show(self, snap: Snapshot) -> None:
        shown = self.render_snapshot(snap)
        self.shown = shown
        self.update(shown)

    def render_snapshot(self, snap: Snapshot) -> RenderableType:
        raise NotImplementedError


class HeaderBar(Static):
    """What state the bot is in and why; the account's NAV and when it was marked; how old the
    bars are; the clock the market is read at (a replay's own); the heartbeat; each model's
    regime gate. Lines wrap rather than cut, so a narrow terminal still shows all of it."""

    shown: Text | None = None

    def show(self, snap: Snapshot) -> None:
        lines = [self._figures(snap)]
        if snap.status_reason and (snap.status not in ("not running", "healthy") or snap.problem):
            lines.append(Text(snap.status_reason, REASON_STYLE.get(snap.status, "dim")))
        lines.append(self._as_of(snap))
        lines.append(self._clock(snap))
        if snap.models:
            lines.append(self._regime(snap))
        self.shown = Text("\n").join(lines)
        self.update(self.shown)

    @staticmethod
    def _figures(snap: Snapshot) -> Text:
        line = Text()
        line.append(f" {snap.status.upper()} ", STATUS_STYLE.get(snap.status, "reverse"))
        line.append(f" {snap.account or 'no account'}", "bold")
        if len(snap.accounts) > 1 and snap.account in snap.accounts:
            line.append(f" ({snap.accounts.index(snap.account) + 1}/{len(snap.accounts)})", "dim")
        if snap.mode:
            line.append(f" {snap.mode}/{snap.broker}", "dim")
        view = snap.view
        if view is not None and view.nav is not None:
            line.append(" NAV ", "dim")  # single spaces: the line fits 80 columns with two accounts
            line.append(money(view.nav), "bold")
            day = view.day_pnl
            base = view.nav - day if day is not None else None
            line.append(" day ", "dim")
            line.append(f"{money(day, signed=True)} {pct(day / base if day is not None and base else None)}", tone(day))
        return line

    @staticmethod
    def _as_of(snap: Snapshot) -> Text:
        view = snap.view
        line = Text()
        for label, then in (("marked ", view.marked_at if view is not None else None), ("bars to ", snap.bars_end)):
            if then is None:
                continue
            text, style = age(then, snap.as_of)
            line.append(("  " if line else "") + label, "dim")
            line.append(stamp(then) if isinstance(then, datetime) else then.isoformat(),
                        "red" if style == "bold red" else "")
            line.append(f" ({text})" if text else "", style)
        return line or Text("nothing marked yet", "dim")

    @staticmethod
    def _clock(snap: Snapshot) -> Text:
        line = Text()
        replay, finished = snap.replay_now is not None, False
        acc_run = snap.account_run
        if replay:
            finished = acc_run is not None and acc_run.status != "running"
            line.append(f"{acc_run.kind if acc_run else 'replay'} clock ", "bold magenta")
            line.append(stamp(snap.replay_now), "magenta")
            if acc_run is not None and finished:
                same_run = snap.run if snap.run is not None and snap.run.run_id == acc_run.run_id else None
                run_ended = same_run.ended_at if same_run is not None else None
                line.append(f" ({acc_run.status} {stamp(run_ended)})" if run_ended else f" ({acc_run.status})", "dim")
            else:
                line.append("  ", "dim")
        if finished:
            pass  # no market clock to read after the replay's end
        elif snap.market is not None:
            line.append(snap.market.describe(snap.market_now), "green" if snap.market.is_open else "")
        else:
            line.append("market hours unknown", "dim")
        run = snap.run
        if run is not None and run.status == "running":
            beat_style = "" if snap.status == "healthy" else REASON_STYLE.get(snap.status, "")
            line.append("  heartbeat ", "dim")
            line.append(stamp(run.heartbeat_at), beat_style)
            if snap.heartbeat_age is not None:
                line.append(f" ({snap.heartbeat_age:.0f}s ago)", beat_style or "dim")
        elif snap.status == "not running" and snap.status_reason and not snap.problem and not (
                finished and run is not None and acc_run is not None and run.run_id == acc_run.run_id):
            ended = f" {stamp(run.ended_at)}" if run is not None and run.ended_at is not None else ""
            line.append(f"  {snap.status_reason}{ended}", "dim")
        if snap.health_note and snap.health_note != "health: bot not running":
            line.append(f"  {snap.health_note}", "yellow" if "unreachable" in snap.health_note else "dim")
        return line

    @staticmethod
    def _regime(snap: Snapshot) -> Text:
        line = Text("gates ", "dim")
        for i, m in enumerate(snap.models):
            if i:
                line.append(" · ", "dim")
            line.append(f"{m.name} ")
            line.append(m.state, GATE_STYLE.get(m.state, "red"))
        return line


class PositionsPanel(Panel):
    TITLE = "Positions"

    def render_snapshot(self, snap: Snapshot):
        view = snap.view
        if snap.problem or view is None:
            return _note(snap.problem or "no account in the journal yet")
        lev = view.leverage
        self.border_title = Text.assemble("Positions  ", ("leverage ", "dim"), (f"{lev:.2f}x" if lev is not None else "-",
                                                                              leverage_style(lev)))
        if view.nav is None:
            return _note("no NAV recorded yet for this account")
        if not view.positions:
            return _note(f"no positions (all cash: {money(view.cash)})")
        table = _table("Symbol", "Qty", "Price", "Value", "Weight", "Unreal. P&L", right=(1, 2, 3, 4, 5))
        for p in sorted(view.positions, key=lambda p: -abs(p.value)):
            table.add_row(p.symbol, qty(p.qty), f"{p.price:,.2f}", money(p.value), pct(p.weight, signed=False, digits=1),
                          Text(money(p.unrealized_pnl, signed=True), tone(p.unrealized_pnl)))
        gross = sum(abs(p.value) for p in view.positions)
        unreal = sum(p.unrealized_pnl for p in view.positions)
        table.add_row(Text("Total", "bold"), "", "", money(gross), Text(pct(lev, signed=False, digits=1), leverage_style(lev)),
                      Text(money(unreal, signed=True), tone(unreal)))
        if not view.book_positions:
            return table
        from rich.console import Group

        return Group(table, *_book_positions(view.book_positions))


def _book_positions(books) -> list[RenderableType]:
    """Each signal book's open positions as its journaled state says (the same as `botctl
    status`): age, entry price, the stop level in force, ladder stage and score; a waiting
    exit in yellow, with the session since which it waits."""
    out: list[RenderableType] = []
    for model in sorted({b.model for b in books}):
        rows = [b for b in books if b.model == model]
        as_of = next((b.as_of for b in rows if b.as_of), None)
        out.append(Text.assemble(("\nbook ", "dim"), (model, "bold"), (f"  as of {as_of}" if as_of else "", "dim")))
        table = _table("Symbol", "Age", "Entry", "Stop", "Stage", "Score", right=(1, 2, 3, 4, 5))
        for b in rows:
            def num(x: float | None, spec: str = ",.2f") -> str:
                return "-" if x is None else format(x, spec)

            table.add_row(Text(b.symbol, "yellow" if b.exit_waiting else ""), f"{b.age_days}d" if b.age_days is not None else "-",
                          num(b.entry_price), num(b.stop_level), "-" if b.ladder_stage is None else str(b.ladder_stage),
                          num(b.score, ".3f"))
        out.append(table)
        for b in rows:
            if b.exit_waiting is not None:
                waiting = b.exit_waiting
                why = ("its exits are not checked" if waiting.decided_on is None
                       else f"the {waiting.rule} sale decided on {waiting.decided_on} is not sent")
                out.append(Text(f"{b.symbol}: exit waiting since {waiting.since}, no price ({why})", "yellow"))
    return out


class PerformancePanel(Panel):
    TITLE = "Performance"

    def render_snapshot(self, snap: Snapshot):
        view = snap.view
        if view is None or view.nav is None:
            return _note("no NAV recorded yet")
        top = Text.assemble(("NAV ", "dim"), (money(view.nav), "bold"), ("  cash ", "dim"), money(view.cash))
        table = _table("", "Port.", snap.benchmark, "+/-", right=(1, 2, 3))
        for p in snap.perf.periods if snap.perf else []:
            table.add_row(p.label, Text(pct(p.portfolio), tone(p.portfolio)), Text(pct(p.benchmark), tone(p.benchmark)),
                          Text(pct(p.excess), tone(p.excess)))
        if snap.perf is not None:
            beta = f"beta {snap.perf.beta:.2f}" if snap.perf.beta is not None else ""
            table.add_row("Alpha", Text(pct(snap.perf.alpha, digits=1), tone(snap.perf.alpha)), beta, "")
        from rich.console import Group

        return Group(top, table)


class RiskPanel(Panel):
    TITLE = "Risk"

    def render_snapshot(self, snap: Snapshot):
        view = snap.view
        if view is None:
            return _note("no account")
        table = _kv()
        lev = view.leverage
        table.add_row("Gross leverage", Text(f"{lev:.2f}x" if lev is not None else "-", leverage_style(lev)))
        largest = max(view.positions, key=lambda p: abs(p.weight), default=None)
        table.add_row("Largest position", f"{largest.symbol} {largest.weight:.1%}" if largest else "-")
        perf = snap.perf
        dd = perf.drawdown if perf else None
        # Drawdowns are <= 0: shown unsigned, so the peak reads 0.00%, never "+0.00%".
        at_peak = " (at peak)" if dd is not None and dd > -5e-5 else ""
        table.add_row("Drawdown now", Text(pct(dd, signed=False) + at_peak, "red" if dd is not None and dd < -0.1 else tone(dd)))
        table.add_row("Max drawdown", pct(perf.max_drawdown, signed=False) if perf else "-")
        table.add_row("Open orders", str(len(view.open_orders)))
        if view.halted:
            table.add_row(Text("HALTED", "bold white on red"), Text(stamp(view.halted_since), "red"))
        else:
            table.add_row("Trading", Text("allowed", "green"))
        return table


class TradesPanel(Panel):
    TITLE = "Trade statistics"

    def render_snapshot(self, snap: Snapshot):
        t = snap.trades
        if snap.view is None or not t.trades:
            return _note("reading the fill history..." if snap.trades_partial else "no closed trades yet")
        table = _kv()
        table.add_row("Closed trades", f"{t.trades:,}" + (" ..." if snap.trades_partial else ""))
        table.add_row("Win rate", pct(t.win_rate, signed=False, digits=0))
        table.add_row("Avg hold", f"{t.avg_hold_days:.1f} days" if t.avg_hold_days is not None else "-")
        for label, trade in (("Best", t.best), ("Worst", t.worst)):
            if trade:
                table.add_row(label, Text(f"{trade[1]} {money(trade[0], signed=True)}", tone(trade[0])))
        return table


class ModelsPanel(Panel):
    TITLE = "Models"

    def render_snapshot(self, snap: Snapshot):
        if not snap.models:
            return _note(_no_config(snap) or snap.market_note or "loading...")
        from rich.console import Group

        # Models often share a universe: each distinct one is listed once under the table (it
        # wraps there), so the rows stay one line each at any width.
        universes: dict[tuple[str, ...], list[str]] = {}
        for m in snap.models:
            universes.setdefault(m.universe, []).append(m.name)
        labels = {u: chr(ord("A") + i) for i, u in enumerate(universes)} if len(universes) > 1 else {}
        table = _table("Model", "Budget", "State", "Next rebalance", "Universe", right=(1, 4))
        for m in snap.models:
            table.add_row(m.name, pct(m.budget, signed=False, digits=0), Text(m.state, GATE_STYLE.get(m.state, "red")),
                          stamp(m.next_rebalance), f"{labels.get(m.universe, '')} {len(m.universe)}".strip())
        lines = [Text.assemble((f"universe {labels[u]}: " if labels else "universe: ", "bold"), " ".join(u))
                 for u in universes]
        gated = [Text(f"{m.name}: {m.reason}", "dim") for m in snap.models if m.state != "active" and m.reason]
        return Group(table, *lines, *gated)


class OrdersPanel(Panel):
    TITLE = "Pending orders"

    def render_snapshot(self, snap: Snapshot):
        orders = snap.view.open_orders if snap.view is not None else []
        if not orders:
            return _note("no open orders")
        # The order wraps (at its spaces) when the panel is narrow; the status and the filled
        # share are never cut.
        table = _table("Order", "Filled", "Status", right=(1,), flex=0)
        for o in orders[-20:]:
            done = o.filled_qty / o.qty if o.qty else 0.0
            table.add_row(Text.assemble((o.side, "green" if o.side == "buy" else "red"), f" {qty(o.qty)} ", (o.symbol, "bold")),
                          f"{done:.0%}", o.status)
        return table


class ActivityPanel(Panel):
    TITLE = "Recent activity"

    def render_snapshot(self, snap: Snapshot):
        if not snap.activity:
            return _note("no orders or fills yet")
        table = _table("UTC", "Order @ as traded [status]", flex=1)
        for day, a in _by_day(snap.activity, lambda a: a.ts):
            if day is not None:
                table.add_row("", Text(day, "bold underline"))
            if a.fill_price is not None and a.filled_qty:
                part = "" if a.status == "filled" else f" [{a.status}: {qty(a.filled_qty)} filled]"
                done = Text.assemble(f" @ {a.fill_price:,.2f}", (" (journal)", "dim") if a.journal_price else "", part)
            else:
                done = Text(f" [{a.status}{f': {a.note}' if a.note else ''}]", "dim")
            table.add_row(f"{a.ts.astimezone(timezone.utc):%H:%M}", Text.assemble(
                (f"{a.side:<4}", "green" if a.side == "buy" else "red"), f" {qty(a.qty)} ", (a.symbol, "bold"), done))
        return table


class RankingsPanel(Panel):
    TITLE = "Universe momentum"

    def render_snapshot(self, snap: Snapshot):
        if not snap.rankings:
            return _note(_no_config(snap) or snap.market_note or "loading...")
        held = snap.held
        first = snap.rankings[0]
        others = snap.rankings[1:]
        table = _table("#", "Symbol", f"{first.lookback}d", *[f"{r.lookback}d" for r in others], right=tuple(range(2, 3 + len(others))))
        lookup = [dict(r.rows) for r in others]
        for i, (symbol, mom) in enumerate(first.rows, 1):
            style = "bold green" if symbol in held else ""
            cells = [pct(mom, digits=1)] + [pct(m.get(symbol), digits=1) for m in lookup]
            table.add_row(str(i), Text(("* " if symbol in held else "  ") + symbol, style), *[Text(c, style) for c in cells])
        if first.as_of is None:
            return table
        from rich.console import Group

        text, style = age(first.as_of, snap.as_of)  # in the panel, not its title: it wraps, never cut
        return Group(Text.assemble(("at the close of ", "dim"), first.as_of.isoformat(), (f" ({text})" if text else "", style)),
                     table)


class ErrorsPanel(Panel):
    TITLE = "Errors and warnings  (e: expand)"

    def render_snapshot(self, snap: Snapshot):
        if snap.problem:
            return _note(snap.problem)
        if not snap.events:
            return _note("no warnings or errors")
        table = _table("UTC", "Sev", "What", flex=2)
        for day, e in _by_day(snap.events[:30], lambda e: e.ts_event):
            if day is not None:
                table.add_row("", "", Text(day, "bold underline"))
            table.add_row(f"{e.ts_event.astimezone(timezone.utc):%H:%M}", Text(e.severity, SEVERITY_STYLE.get(e.severity, "")),
                          Text(f"{e.subsystem}/{e.type}: {e.message}"))
        return table


class SignalsPanel(Panel):
    """External signal feeds (docs/feeds.md): per source the last receipt, today's count and
    whether it is stale, then the newest rejections. Shown only when feeds.yaml exists, so a
    dashboard without feeds looks as it always did."""

    TITLE = "Signals"

    def show(self, snap: Snapshot) -> None:
        self.set_class(snap.feeds is not None, "-shown")
        super().show(snap)

    def render_snapshot(self, snap: Snapshot):
        from rich.console import Group

        if snap.feeds is None:
            return _note("no feeds.yaml")
        parts: list[RenderableType] = []
        if snap.feeds_problem:
            parts.append(_note(f"feeds.yaml: {snap.feeds_problem}"))
        if not snap.feeds:
            parts.append(_note("no signal sources yet"))
        else:
            table = _table("Source", "Last signal", "Today", "State", right=(2,), flex=3)
            for f in snap.feeds:
                state = (Text(f"STALE since {stamp(f.stale_since)}: no new entries", "bold red") if f.stale
                         else Text("ok", "green"))
                table.add_row(Text(f.source, "bold"), stamp(f.last_received_at), f"{f.today:,}", state)
            parts.append(table)
        if snap.rejections:
            rejected = _table("UTC", "Rejected", flex=1)
            for e in snap.rejections:
                why = f"{e.details.get('source', '?')}: {e.details.get('reason', '?')}"
                rejected.add_row(stamp(e.ts_event), Text.assemble((why, "yellow"), " ", e.message))
            parts.append(rejected)
        else:
            parts.append(_note("no signal rejected"))
        return Group(*parts)


def _by_day(items, ts_of):
    """(date heading or None, item) pairs: each UTC day (with its year) is named once, above
    its first item, so the rows only need the time."""
    last = None
    for item in items:
        day = f"{ts_of(item).astimezone(timezone.utc):%Y-%m-%d}"
        yield (day if day != last else None), item
        last = day


def _no_config(snap: Snapshot) -> str | None:
    """Why an account has no models or universe to show, when it is the config's fault."""
    if snap.config_problem:
        return f"config: {snap.config_problem}"
    if snap.account is not None and not snap.in_config:
        return f"{snap.account} is in the journal but not in accounts.yaml: no models or universe to show"
    if snap.account is None:
        return "no account"
    return None


# --- charts --------------------------------------------------------------------------------

def _points(days, values):
    pairs = [(d.isoformat(), v) for d, v in zip(days, values) if v is not None and math.isfinite(v)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class ChartPanel(PlotextPlot):
    """A line chart drawn in the terminal; `draw(snap)` plots it."""

    TITLE = ""

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = self.TITLE
        self.plt.date_form("Y-m-d")

    def show(self, snap: Snapshot) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.date_form("Y-m-d")
        self.draw(snap)
        self.refresh()

    def draw(self, snap: Snapshot) -> None:
        raise NotImplementedError


class NavChart(ChartPanel):
    TITLE = "NAV vs benchmark (rebased to 100)"

    def draw(self, snap: Snapshot) -> None:
        from botctl.tui.figures import rebased

        if len(snap.nav) < 2:
            self.plt.title("no NAV history yet")
            return
        x, y = _points(snap.days, rebased(snap.nav))
        self.plt.plot(x, y, label="NAV", color="cyan", marker="braille")
        bx, by = _points(snap.days, rebased(snap.bench))
        if by:
            self.plt.plot(bx, by, label=snap.benchmark, color="orange", marker="braille")


class DrawdownChart(ChartPanel):
    TITLE = "Drawdown from peak (%)"

    def draw(self, snap: Snapshot) -> None:
        from botctl.engine.metrics import drawdown_series

        if len(snap.nav) < 2:
            self.plt.title("no NAV history yet")
            return
        dd = [float(v) * 100 for v in drawdown_series(snap.nav)]
        x, y = _points(snap.days, dd)
        self.plt.plot(x, y, color="red", marker="braille", fillx=True)

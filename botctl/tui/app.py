"""`botctl tui`: a full-screen dashboard over the journal.

All reading happens in thread workers (`Source.snapshot`), so the interface never waits on
the database, the calendar or the bars; the UI thread only draws snapshots. Kill and resume
write the journal the way `botctl kill`/`resume` do, after a confirmation, also in a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.widgets import Footer, Tab
from textual.worker import get_current_worker

from botctl.tui import widgets as w
from botctl.tui.data import Snapshot, Source
from botctl.tui.screens import ConfirmScreen, ErrorsScreen, HelpScreen

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel


class Dashboard(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "botctl"
    ENABLE_COMMAND_PALETTE = False
    # Wide and tall terminals (160x40 and up) get the four-column layout that fits on one
    # screen; anything smaller stacks the panels in two columns that scroll (at 120 columns
    # four would cut the figures).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (160, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("a", "next_account", "account"),
        Binding("r", "refresh", "refresh"),
        Binding("e", "errors", "errors"),
        Binding("k", "kill(False)", "kill"),
        Binding("K", "kill(True)", "kill+flatten"),
        Binding("u", "resume", "resume"),
        Binding("question_mark", "help", "help"),
        # The panels scroll whatever has the focus (the account tabs take it first).
        Binding("down", "scroll_body('down')", show=False),
        Binding("up", "scroll_body('up')", show=False),
        Binding("pagedown", "scroll_body('page_down')", show=False),
        Binding("pageup", "scroll_body('page_up')", show=False),
        Binding("home", "scroll_body('home')", show=False),
        Binding("end", "scroll_body('end')", show=False),
    ]

    def __init__(self, source: Source, *, account: str | None = None, refresh: float | None = 5.0) -> None:
        super().__init__()
        self.source = source
        self.account = account
        self.refresh_seconds = refresh
        self.snapshot: Snapshot | None = None
        self._tab_accounts: list[str] = []
        self.on_action_done: Callable[[str], None] | None = None  # tests hook the outcome line

    def compose(self) -> ComposeResult:
        yield w.HeaderBar(id="header")
        yield w.AccountTabs(id="accounts")
        with ScrollableContainer(id="body"):
            yield w.PositionsPanel(id="positions", classes="panel")
            yield w.PerformancePanel(id="performance", classes="panel")
            yield w.RiskPanel(id="risk", classes="panel")
            yield w.NavChart(id="nav-chart", classes="panel chart")
            yield w.DrawdownChart(id="dd-chart", classes="panel chart")
            yield w.RankingsPanel(id="rankings", classes="panel")
            yield w.ModelsPanel(id="models", classes="panel")
            yield w.OrdersPanel(id="orders", classes="panel")
            yield w.TradesPanel(id="trades", classes="panel")
            yield w.ActivityPanel(id="activity", classes="panel")
            yield w.ErrorsPanel(id="errors", classes="panel")
            yield w.SignalsPanel(id="signals", classes="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(w.HeaderBar).update("loading the journal...")
        self.action_refresh()
        if self.refresh_seconds:
            self.set_interval(self.refresh_seconds, self.action_refresh)

    # --- loading ---------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self._load(self.account)

    @work(thread=True, exclusive=True, group="refresh")
    def _load(self, account: str | None) -> None:
        worker = get_current_worker()
        try:
            snap = self.source.snapshot(account)
        except Exception as exc:  # a bug must not take the dashboard (or a kill key) away
            self.call_from_thread(self._failed, exc)
            return
        if worker.is_cancelled:
            return
        self.call_from_thread(self._apply, snap)
        while snap.trades_partial and snap.account and not worker.is_cancelled:
            more = self.source.more_trades(snap.account)
            if more is None:
                break
            snap.trades, snap.trades_partial = more
            self.call_from_thread(self._apply_trades, snap)

    def _apply(self, snap: Snapshot) -> None:
        if self.account is not None and snap.account != self.account and self.account in snap.accounts:
            return  # a refresh of the account shown before the switch
        self.snapshot = snap
        self.account = snap.account
        self._sync_tabs(snap)
        self.query_one(w.HeaderBar).show(snap)
        for panel in self.query(".panel"):
            cast("w.Panel | w.ChartPanel", panel).show(snap)  # every .panel is one of the two

    def _failed(self, exc: Exception) -> None:
        message = f"refresh failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.notify(message, severity="error", timeout=8)
        if self.snapshot is None:
            self.query_one(w.HeaderBar).update(message)

    def _apply_trades(self, snap: Snapshot) -> None:
        if snap is self.snapshot:
            self.query_one(w.TradesPanel).show(snap)

    def _sync_tabs(self, snap: Snapshot) -> None:
        tabs = self.query_one(w.AccountTabs)
        if snap.accounts != self._tab_accounts:
            self._tab_accounts = list(snap.accounts)
            tabs.clear()
            for i, account in enumerate(snap.accounts):
                tabs.add_tab(Tab(account, id=f"account-{i}"))
        # Short terminals keep the rows for figures: the header names the account and `a` switches.
        tabs.set_class(len(snap.accounts) > 1, "-several")
        if snap.account in snap.accounts:
            wanted = f"account-{snap.accounts.index(snap.account)}"
            if tabs.active != wanted:
                self.call_after_refresh(setattr, tabs, "active", wanted)

    def on_account_tabs_chosen(self, event: w.AccountTabs.Chosen) -> None:
        if event.index < len(self._tab_accounts) and self._tab_accounts[event.index] != self.account:
            self.switch_to(self._tab_accounts[event.index])

    def switch_to(self, account: str) -> None:
        self.account = account
        self.action_refresh()

    # --- keys --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """While a dialog is open, only it answers keys (and q and r still work)."""
        if action in ("next_account", "errors", "kill", "resume", "help", "scroll_body") and len(self.screen_stack) > 1:
            return False
        return True

    def action_next_account(self) -> None:
        accounts = self.snapshot.accounts if self.snapshot else []
        if len(accounts) < 2:
            self.notify("only one account", timeout=2)
            return
        index = accounts.index(self.account) if self.account in accounts else -1
        self.switch_to(accounts[(index + 1) % len(accounts)])

    def action_errors(self) -> None:
        snap = self.snapshot
        self.push_screen(ErrorsScreen(snap.account if snap else None, snap.events if snap else []))

    def action_scroll_body(self, how: str) -> None:
        getattr(self.query_one("#body"), f"scroll_{how}")()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_kill(self, flatten: bool) -> None:
        account = self._target()
        if account is None:
            return
        body = (f"Halt trading on {account}: cancel its open orders"
                + (" and SELL EVERY POSITION at market." if flatten else "; positions are kept.")
                + "\nThe halt holds until resumed (u or `botctl resume`).")
        title = f"Kill{' and flatten' if flatten else ''} {account}?"

        def done(yes: bool | None) -> None:
            if yes:
                self._act("kill", account, flatten)
            else:
                self.notify("kill canceled", timeout=2)

        self.push_screen(ConfirmScreen(title, body, "Kill and flatten" if flatten else "Kill"), done)

    def action_resume(self) -> None:
        account = self._target()
        if account is None:
            return
        view = self.snapshot.view if self.snapshot else None
        if view is not None and not view.halted:
            self.notify(f"{account} is not halted", timeout=2)
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._act("resume", account, False)

        self.push_screen(ConfirmScreen(f"Resume {account}?", "Clear the halt: trading resumes at the next cycle.",
                                       "Resume"), done)

    def _target(self) -> str | None:
        snap = self.snapshot
        if snap is None or snap.account is None:
            self.notify("no account to act on", severity="warning", timeout=3)
            return None
        if snap.problem:
            self.notify(f"cannot write the journal: {snap.problem}", severity="error", timeout=5)
            return None
        return snap.account

    @work(thread=True, group="control")
    def _act(self, what: str, account: str, flatten: bool) -> None:
        from botctl.tui import actions

        try:
            if what == "kill":
                with self.source.lock:
                    plan = self.source.plan()[0]
                message = actions.kill(self.source.db, plan, account, flatten=flatten)
            else:
                message = actions.resume(self.source.db, account)
            severity = "information"
        except Exception as exc:  # shown, never raised into the interface
            message, severity = f"{what} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", "error"
        self.call_from_thread(self._acted, message, severity)

    def _acted(self, message: str, severity: SeverityLevel) -> None:
        self.notify(message, severity=severity, timeout=6)
        if self.on_action_done is not None:
            self.on_action_done(message)
        self.action_refresh()


def run_dashboard(source: Source, *, account: str | None, refresh: float) -> None:
    Dashboard(source, account=account, refresh=refresh).run()


__all__ = ["Dashboard", "run_dashboard"]

"""Modal screens: the kill/resume confirmation, the help, and the expanded errors list."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from botctl.records import Event
from botctl.tui.data import EVENTS_KEPT
from botctl.tui.widgets import SEVERITY_STYLE, stamp

KEYS = [
    ("q", "quit"),
    ("a", "next account"),
    ("r", "refresh now"),
    ("e", "expand errors and warnings"),
    ("k", "kill: halt the account, cancel its open orders"),
    ("K", "kill and flatten: also sell every position"),
    ("u", "resume: clear the account's halt"),
    ("?", "this help"),
    ("Up/Down, PgUp/PgDn", "scroll the panels (or the mouse wheel)"),
    ("Home/End", "top / bottom of the panels"),
]


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; dismisses with True only on an explicit yes (q, like n and Esc, is a no)."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape,q", "answer(False)", "no")]

    def __init__(self, title: str, body: str, yes: str) -> None:
        super().__init__()
        self.title_text, self.body, self.yes = title, body, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self.title_text, "bold"), id="dialog-title")
            yield Static(self.body, id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold cyan")
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical(id="dialog"):
            yield Static(Text("botctl tui: keys", "bold"), id="dialog-title")
            yield Static(table)
            yield Static(Text("Times are UTC, with their date. A mark or bar older than 4 days is red. "
                              "A replay's clock is its newest simulated time. Leverage: green under 1.0x, "
                              "yellow to 1.2x, red above. Held symbols are starred in the rankings.\n"
                              "Under 160x40 the panels stack in two columns: scroll to see them all. Esc closes.",
                              "dim"))


class ErrorsScreen(ModalScreen[None]):
    """Every recent WARN-or-worse event of the account (and of the bot), with full messages."""

    BINDINGS = [Binding("escape,e,q", "dismiss", "close")]

    def __init__(self, account: str | None, events: list[Event]) -> None:
        super().__init__()
        self.account, self.events = account, events

    def compose(self) -> ComposeResult:
        with Vertical(id="errors-dialog"):
            count = (f"the newest {len(self.events)} (older ones: botctl tail --kind events)"
                     if len(self.events) >= EVENTS_KEPT else f"all {len(self.events)}")
            yield Static(Text.assemble((f"Errors and warnings of {self.account or '-'}: {count}, newest first", "bold"),
                                       ("  esc closes", "dim")), id="dialog-title")
            with VerticalScroll():
                if not self.events:
                    yield Static(Text("no warnings or errors", "dim italic"))
                for e in self.events:
                    head = Text.assemble((stamp(e.ts_event), "dim"), " ", (e.severity, SEVERITY_STYLE.get(e.severity, "")),
                                         f" {e.subsystem}/{e.type}", (f" {e.symbol}" if e.symbol else "", "bold"))
                    yield Static(Text.assemble(head, "\n  ", e.message or "-", ("\n  " + str(e.details), "dim")
                                               if e.details else ""), classes="event")

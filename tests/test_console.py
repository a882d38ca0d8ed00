"""sigx's console: a message written to a log is one line, whatever its length; tables keep their layout."""
import io

from rich.table import Table

from sigx.console import log_console

LONG_PATH = "/tmp/" + "a-run-store-folder-" * 8 + "end"  # 160 characters, twice a log's 80 columns


def printed(console) -> list[str]:
    return console.file.getvalue().splitlines()


def test_a_message_in_a_log_is_one_line_however_long():
    console = log_console(file=io.StringIO(), width=80)
    console.print(f"resuming {LONG_PATH} from its checkpoint at step 25", highlight=False)
    assert printed(console) == [f"resuming {LONG_PATH} from its checkpoint at step 25"]


def test_a_table_in_a_log_still_wraps_its_cells_within_the_width():
    console = log_console(file=io.StringIO(), width=80)
    table = Table("cell", "note")
    table.add_row("baseline", "a long note " * 12)
    console.print(table)
    lines = printed(console)
    assert len(lines) > 5 and max(len(line) for line in lines) <= 80  # wrapped inside the cell, not one long row


def test_a_terminal_keeps_word_wrapping_and_an_explicit_choice_wins():
    terminal = log_console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    terminal.print("word " * 30, highlight=False)
    assert [len(line) <= 80 for line in printed(terminal)] == [True, True]
    log = log_console(file=io.StringIO(), width=80)
    log.print("word " * 30, highlight=False, soft_wrap=False)
    assert len(printed(log)) == 2

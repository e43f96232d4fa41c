"""Every subcommand refuses nonsense numbers where it reads them (issue 17 item 1): for each
option of every `insitu` subcommand that takes a typed value, values that are not a finite
number in range ("nan", "inf", "-inf", "1e999", "x", "", "99999999999999999999999") give
exit status 2 and one line on stderr naming the option, before anything runs — so nothing
is written. (A value a type accepts is checked by the command itself: tests per command.)"""

from __future__ import annotations

import argparse

import pytest

from insitu.cli.args import UsageError
from insitu.cli.main import build_parser, main

PARSER = build_parser()
SUB = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
# every (subcommand, option) whose value goes through a type or a set of choices
TYPED = sorted(
    (name, act.option_strings[-1])
    for name, sp in SUB.choices.items()
    for act in sp._actions
    if act.option_strings and act.nargs != 0
    and (act.type not in (None, str) or act.choices is not None)
)
NONSENSE = ["nan", "inf", "-inf", "1e999", "x", "", "99999999999999999999999", "0x10", "1,5"]


def test_the_fuzz_sees_every_subcommand_that_takes_numbers() -> None:
    names = {n for n, _ in TYPED}
    assert {"train", "solve", "demo", "calibrate", "gradcheck", "ports", "sweep"} <= names
    assert len(TYPED) > 40


def _refused_by_type(act: argparse.Action, value: str) -> bool:
    if act.type in (None, str):
        return False
    try:
        act.type(value)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return True
    return False


@pytest.mark.parametrize("value", NONSENSE)
@pytest.mark.parametrize("case", TYPED, ids=[f"{n}{f}" for n, f in TYPED])
def test_nonsense_values_are_one_line_exit_2(case: tuple[str, str], value: str) -> None:
    name, flag = case
    act = next(a for a in SUB.choices[name]._actions if flag in a.option_strings)
    if not _refused_by_type(act, value) and (act.choices is None or value in act.choices):
        pytest.skip(f"{flag} takes {value!r} as text; its command checks it")
    with pytest.raises(UsageError) as exc:  # main() prints it as one line, exit 2
        PARSER.parse_args([name, flag, value])
    lines = str(exc.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"insitu {name}: error:"), lines
    assert flag in lines[0], lines


def test_main_prints_a_usage_error_as_one_line_exit_2(capsys: pytest.CaptureFixture[str]):
    assert main(["train", "li-mao-2024", "--task", "iris", "--lr", "inf"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("insitu train: error: argument --lr: inf is not a finite "
                                 "number (insitu train --help)\n")  # fmt: skip

"""`kemu`'s command line as kubectl's: flags anywhere before `--`, the command after it untouched."""

from __future__ import annotations

import argparse

import pytest

from emu.cli.argv import UsageError, find_verb, normalize_bools, split_dashdash
from emu.cli.main import main, parse

pytestmark = pytest.mark.unit


def test_split_at_the_first_dashdash_only() -> None:
    assert split_dashdash(["exec", "p", "--", "sh", "-c", "a -- b", "--"]) == (["exec", "p"], ["sh", "-c", "a -- b", "--"])
    assert split_dashdash(["get", "pods"]) == (["get", "pods"], None)
    assert split_dashdash(["exec", "p", "--"]) == (["exec", "p"], [])


def test_find_verb_skips_global_options_and_their_values() -> None:
    assert find_verb(["-n", "x", "get", "pods"]) == 2
    assert find_verb(["--cluster", "c", "-v", "get"]) == 3
    assert find_verb(["--cluster=c", "get"]) == 1
    assert find_verb(["-v", "--help"]) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "toolbox", "-n", "tools", "-c", "shell", "--", "hostname", "-f"],
        ["exec", "-n", "tools", "toolbox", "-c", "shell", "--", "hostname", "-f"],
        ["-n", "tools", "exec", "toolbox", "--cluster", "q", "-c", "shell", "--", "hostname", "-f"],
        ["--cluster", "q", "exec", "-it", "toolbox", "-ntools", "-cshell", "-v", "--", "hostname", "-f"],
    ],
)
def test_exec_flags_anywhere_before_dashdash(argv: list[str]) -> None:
    args = parse(argv)
    assert args.cmd == "exec" and args.words == ["toolbox"] and args.namespace == "tools" and args.container == "shell"
    assert args.command == ["hostname", "-f"]  # after --: untouched, even what looks like a flag


def test_global_flags_after_the_verb() -> None:
    args = parse(["get", "pods", "-n", "x", "-o", "wide", "--cluster", "c", "-v"])
    assert (args.words, args.namespace, args.output, args.cluster, args.verbose) == (["pods"], "x", "wide", "c", True)
    args = parse(["-n", "x", "get", "pods", "a", "-l", "app=web", "b", "--show-labels", "--no-headers"])
    assert args.words == ["pods", "a", "b"] and args.selector == "app=web" and args.show_labels and args.no_headers
    args = parse(["get", "deploy,rs", "-A", "-o=json"])
    assert args.all_namespaces and args.output == "json"


def test_label_keeps_labels_after_options() -> None:
    args = parse(["label", "pod", "a", "x=1", "--overwrite", "y=2", "z-", "-n", "web"])
    assert args.labels == ["x=1", "y=2", "z-"] and args.targets == ["pod", "a"] and args.overwrite and args.namespace == "web"
    args = parse(["label", "pod/a", "b=", "--overwrite=true"])
    assert args.targets == ["pod/a"] and args.labels == ["b="] and args.overwrite


def test_bool_flags_take_kubectl_values() -> None:
    args = parse(["delete", "pod", "a", "--wait=false", "--grace-period", "0"])
    assert args.wait is False and args.grace_period == 0
    assert parse(["delete", "pod", "a"]).wait is True
    assert parse(["delete", "pod", "a", "--wait"]).wait is True
    assert parse(["delete", "pod", "a", "--ignore-not-found=true"]).ignore_not_found is True
    assert parse(["delete", "pod", "a", "--ignore-not-found=false"]).ignore_not_found is False
    p = argparse.ArgumentParser()
    p.add_argument("--x", action="store_true")
    with pytest.raises(UsageError):
        normalize_bools(p, ["--x=maybe"])


def test_several_filenames_and_recursive() -> None:
    args = parse(["apply", "-f", "a.yaml", "-R", "-f", "dir", "-f", "-"])
    assert args.filename == ["a.yaml", "dir", "-"] and args.recursive
    args = parse(["delete", "-f", "a.yaml", "--ignore-not-found"])
    assert args.filename == ["a.yaml"] and args.words == [] and args.ignore_not_found


def test_other_commands_parse() -> None:
    args = parse(["logs", "deploy/web", "-f", "--tail", "20", "-c", "web"])
    assert args.words == ["deploy/web"] and args.follow and args.tail == 20 and args.container == "web"
    args = parse(["scale", "deploy/web", "--replicas", "3"])
    assert args.words == ["deploy/web"] and args.replicas == 3
    args = parse(["rollout", "status", "deployment", "web", "--timeout", "30s", "-n", "x"])
    assert (args.action, args.words, args.timeout, args.namespace) == ("status", ["deployment", "web"], "30s", "x")
    args = parse(["describe", "svc", "web", "-n", "x"])
    assert args.words == ["svc", "web"]
    assert parse(["api-resources", "--namespaced", "false"]).namespaced == "false"


def test_bad_command_lines_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["get", "pods", "--bogus"], ["frobnicate"], [], ["-v"], ["get", "pods", "--", "x"], ["label", "pod", "a"]):
        with pytest.raises(SystemExit) as e:
            parse(argv)
        assert e.value.code == 2, argv
    assert main(["delete", "pod", "a", "--wait=perhaps"]) == 2
    assert 'invalid argument "perhaps" for "--wait" flag' in capsys.readouterr().err


def test_help_needs_no_root(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse(["get", "--help"])
    assert e.value.code == 0 and "KIND[,KIND]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        parse(["--help"])
    assert e.value.code == 0 and "api-resources" in capsys.readouterr().out

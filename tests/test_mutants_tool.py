"""`tools/mutants.py` itself: the instrument behind "every planted bug is caught" must be able to say "survived".

A bug that a selected test sees is reported caught, one that none sees SURVIVED, with two mutants tested at a time
(`--jobs 2`, each in its own copy of the tree), rows in the list's order, and an exit code that says not all were caught.
"""
import importlib.util, json, sys
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEES = 'tests/test_recipe.py::test_local_mnli_and_qqp_say_they_are_samples'   # checks each note's split, not its words

def load_tool(monkeypatch):
    spec = importlib.util.spec_from_file_location('fpt_mutants_tool', ROOT/'tools'/'mutants.py')
    tool = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, tool)   # (its dataclass looks its module up there)
    spec.loader.exec_module(tool)
    return tool

def test_the_mutation_tool_tells_caught_from_survived(tmp_path, monkeypatch):
    tool = load_tool(monkeypatch)
    M = tool.Mutant
    monkeypatch.setattr(tool, 'MUTANTS', [
        M('seen', 'tasks.py', 'validation="the local MNLI validation file', 'validation_x="the local MNLI validation file', (SEES,), 'a note unsaid'),
        M('unseen', 'tasks.py', 'stand in for its 40,430', 'stand in for its 40,431', (SEES,), 'a number in a note no test reads'),
        M('seen_too', 'tasks.py', 'validation="no QQP dev set', 'validation_x="no QQP dev set', (SEES,), 'a note unsaid')])
    out = tmp_path/'table'
    code = tool.main(['--jobs', '2', '--out', str(out)])
    rows = json.loads(out.with_suffix('.json').read_text())['mutants']
    assert [(r['name'], r['outcome']) for r in rows] == [('seen', 'caught'), ('unseen', 'SURVIVED'), ('seen_too', 'caught')], rows
    assert code == 1 and '2 of 3 mutants caught, 1 survived' in out.with_suffix('.md').read_text()
    assert 'stand in for its 40,430' in (ROOT/'fpt_nb'/'tasks.py').read_text()   # the checkout itself is never changed

def test_the_mutation_tool_refuses_no_jobs(monkeypatch, capsys):
    "`--jobs 0` (or less) would test nothing and call that a pass: refused, with the flag named."
    tool = load_tool(monkeypatch)
    with pytest.raises(SystemExit) as e: tool.main(['--jobs', '0', '--only', 'nothing'])
    assert e.value.code == 2 and '--jobs must be at least 1, got 0' in capsys.readouterr().err

def test_each_mutant_applies_and_the_tests_and_mutants_name_each_other(monkeypatch):
    """The table's "every planted bug is caught" stands on names: each mutant's pattern occurs once in its file and still
    compiles (`--check`), its test ids exist, and a test whose docstring opens with names (`name, name: the bug`) names
    mutants that exist and run it. Session 32 found 34 such names stale (mutants renamed, a `fast_` prefix dropped): a
    docstring pointing at no planted bug, or at one no longer run by that test, says the test catches what nobody checks."""
    import re
    tool = load_tool(monkeypatch)
    names = {m.name: m for m in tool.MUTANTS}
    assert len(names) == len(tool.MUTANTS), 'two mutants share a name'
    for m in tool.MUTANTS: tool.apply(m, (ROOT/'fpt_nb'/m.file).read_text())
    defs = {f.relative_to(ROOT).as_posix(): f.read_text() for f in (ROOT/'tests').glob('test_*.py')}
    missing = [(m.name, t) for m in tool.MUTANTS for t in m.tests
               if not (re.search(r'^\s*def ' + re.escape(t.split('::')[1].split('[')[0]) + r'\(', defs.get(t.split('::')[0], ''), re.M)
                       if '::' in t else t in defs)]
    assert not missing, f"mutants whose tests do not exist: {missing}"
    header = re.compile(r'^\s*def (test_\w+)\([^)]*\):\n\s+(?:"""|")([a-z0-9_]+(?:, [a-z0-9_]+)*):', re.M)
    wrong = [(f, t, n) for f, src in defs.items() for t, ns in header.findall(src) for n in ns.split(', ')
             if n not in names or not any(x == f or x.split('[')[0] == f'{f}::{t}' for x in names[n].tests)]
    assert not wrong, f"test docstrings naming a mutant that does not exist or does not run them: {wrong}"

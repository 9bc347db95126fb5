"""The layering rules of ``docs/architecture.md``, checked on the source (``ast``, nothing
imported but the registry):

- who may import whom (:data:`ALLOWED`, the graph documented in ``docs/architecture.md``):
  every internal import points to a lower tier, never upward or sideways;
- the framework-free units import no MMEngine / MMDetection / MMCV;
- nothing outside a method's own files names a method (keys, layer classes) in code, nor
  imports a method's module;
- no package file is longer than :data:`MAX_LINES` lines;
- docstrings are Google style with typed entries, and every exported function with
  arguments documents them (``Args:``).
"""
import ast
import os
import os.path as osp
import re
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(ROOT, 'lbc_mmdet')
DOC = osp.join(ROOT, 'docs', 'architecture.md')
MAX_LINES = 400
FRAMEWORKS = ('mmengine', 'mmdet', 'mmcv')

#: unit -> tier (a unit is a top-level module or subpackage of ``lbc_mmdet``; ``lbc_mmdet``
#: is the package's own ``__init__``). A unit imports only units of lower tiers.
TIERS: Dict[str, int] = {
    'errors': 0, '_warnings': 0, 'utils': 0, 'version': 0,
    'nm': 1,
    'layers': 2,
    'sparsify': 3, 'accounting': 3, 'deploy': 3, 'datasets': 3,
    'engine': 4,
    'apis': 5, 'lbc_mmdet': 5,
    'suite': 6, 'benchmark': 6,
    'cli': 7,
    'gpu_check': 8,
}
#: unit -> the units it may import: the graph of ``docs/architecture.md``. The entry
#: points (``cli``, ``gpu_check``) may import any lower unit.
ALLOWED: Dict[str, Set[str]] = {
    'errors': set(),
    '_warnings': set(),
    'utils': set(),
    'version': set(),
    'nm': {'errors'},
    'layers': {'errors', 'nm', 'utils'},
    'sparsify': {'layers', 'utils'},
    'accounting': set(),
    'deploy': {'errors', 'layers', 'nm', 'utils'},
    'datasets': set(),
    'engine': {'accounting', 'deploy', 'errors', 'layers', 'nm', 'sparsify', 'utils'},
    'apis': {'deploy', 'engine', 'errors', 'layers', 'nm', 'utils', 'version'},
    'lbc_mmdet': {'_warnings', 'engine', 'layers', 'nm', 'sparsify', 'version'},
    'suite': {'errors', 'layers', 'utils'},
    'benchmark': {'apis', 'layers', 'sparsify', 'utils'},
}
#: units that import no MMEngine / MMDetection / MMCV at all (plain python, torch, numpy)
FRAMEWORK_FREE = ('errors', '_warnings', 'utils', 'version', 'nm', 'accounting', 'deploy',
                  'datasets')
#: inside ``layers``, the one module that talks to mmdet (the registries)
LAYERS_FRAMEWORK_MODULES = ('lbc_mmdet.layers.registry', )


# --------------------------------------------------------------------------- source
def modules() -> Iterator[Tuple[str, str]]:
    """``(dotted module name, path)`` of every module of the package."""
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for name in sorted(files):
            if name.endswith('.py'):
                path = osp.join(folder, name)
                rel = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                yield (rel[:-len('.__init__')] if rel.endswith('.__init__') else rel), path


SOURCES = {mod: path for mod, path in modules()}
TREES = {mod: ast.parse(open(path).read(), path) for mod, path in SOURCES.items()}


def unit_of(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else parts[0]


def imports(module: str) -> List[Tuple[str, int]]:
    """``(imported module, line)`` of every import of ``module`` (relative ones resolved,
    function-level ones included). ``from X import y`` yields ``X.y`` too, so that an
    imported submodule is seen."""
    is_pkg = SOURCES[module].endswith('__init__.py')
    package = module if is_pkg else module.rsplit('.', 1)[0]
    out = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.append((target, node.lineno))
            out += [(f'{target}.{a.name}', node.lineno) for a in node.names]
    return out


def internal_edges() -> Dict[str, Dict[str, List[str]]]:
    """unit -> imported unit -> ``module:line`` of the imports."""
    edges: Dict[str, Dict[str, List[str]]] = {}
    for module in SOURCES:
        src = unit_of(module)
        for target, line in imports(module):
            if not (target == 'lbc_mmdet' or target.startswith('lbc_mmdet.')):
                continue
            if target.startswith('lbc_mmdet.') and target not in SOURCES and \
                    target.rsplit('.', 1)[0] in SOURCES:
                target = target.rsplit('.', 1)[0]  # `from pkg import name`: the package
            dst = unit_of(target)
            if dst != src:
                edges.setdefault(src, {}).setdefault(dst, []).append(f'{module}:{line}')
    return edges


# --------------------------------------------------------------------------- layering
def test_every_unit_has_a_tier():
    units = {unit_of(m) for m in SOURCES}
    assert units <= set(TIERS), f'add {sorted(units - set(TIERS))} to TIERS and the doc'


def test_allowed_graph_points_downward():
    for unit, deps in ALLOWED.items():
        for dep in deps:
            assert TIERS[dep] < TIERS[unit], f'{unit} -> {dep} is not downward'


def test_imports_follow_the_layering():
    bad = []
    for src, targets in internal_edges().items():
        for dst, where in targets.items():
            allowed = ALLOWED.get(src)
            ok = (TIERS[dst] < TIERS[src]) if allowed is None else dst in allowed
            if not ok:
                bad.append(f'{src} -> {dst} ({", ".join(where[:3])})')
    assert not bad, 'imports outside the documented layering:\n' + '\n'.join(bad)


def test_doc_lists_the_allowed_graph():
    """``docs/architecture.md`` has one row per unit: `unit` | tier | its allowed imports."""
    rows = {}
    for line in open(DOC).read().splitlines():
        match = re.match(r'^\| `(\w+)(?:\.py|/)?` \| (\d) \| ([^|]*) \|', line)
        if match:
            rows[match.group(1)] = (int(match.group(2)),
                                    set(re.findall(r'`(\w+)(?:\.py|/)?`', match.group(3))))
    assert set(rows) == set(TIERS)
    for unit, (tier, deps) in rows.items():
        assert tier == TIERS[unit], unit
        if unit in ALLOWED:
            assert deps == ALLOWED[unit], unit


@pytest.mark.parametrize('unit', FRAMEWORK_FREE)
def test_framework_free_units(unit):
    bad = [f'{m}:{line} imports {t}' for m in SOURCES if unit_of(m) == unit
           for t, line in imports(m) if t.split('.')[0] in FRAMEWORKS]
    assert not bad, bad


def test_layers_talk_to_mmdet_only_in_the_registry():
    bad = [f'{m}:{line} imports {t}' for m in SOURCES if unit_of(m) == 'layers'
           and m not in LAYERS_FRAMEWORK_MODULES
           for t, line in imports(m) if t.split('.')[0] in FRAMEWORKS]
    assert not bad, bad


def test_no_package_file_is_too_long():
    long = {m: n for m, path in SOURCES.items()
            if (n := sum(1 for _ in open(path))) > MAX_LINES}
    assert not long, f'over {MAX_LINES} lines: {long}'


# --------------------------------------------------------------------------- methods
def _registry():
    from lbc_mmdet.layers import get_method, method_names
    keys = method_names()
    classes = {cls for k in keys for cls in get_method(k).layers.values()}
    for k in keys:
        for variant in get_method(k).variants.values():
            classes |= set(variant.values())
    return keys, classes


METHOD_KEYS, METHOD_CLASSES = _registry()
#: the modules that define a method's layers ...
METHOD_MODULES = {cls.__module__ for cls in METHOD_CLASSES}
#: ... and the layers modules built on one of them (``lbc_official`` on ``lbc``)
METHOD_FILES = METHOD_MODULES | {
    m for m in SOURCES if unit_of(m) == 'layers'
    and any(t in METHOD_MODULES for t, _ in imports(m))}
#: names a method's own code uses: its key, its classes and their mixins
METHOD_NAMES = sorted({c.__name__ for cls in METHOD_CLASSES for c in cls.__mro__
                       if c.__module__ in METHOD_MODULES})
#: the package's name (``lbc_mmdet``) is not a method's
PACKAGE_NAMES = re.compile(r'lbc_mmdet', re.IGNORECASE)
_KEY_WORD = re.compile(r'(?<![A-Za-z0-9])(' + '|'.join(map(re.escape, METHOD_KEYS)) +
                       r')(?![A-Za-z0-9])')


def _docstring_ids(tree: ast.AST) -> Set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str):
            ids.add(id(node.value))  # docstrings and attribute docs (bare strings)
    return ids


def _method_match(text: str, identifier: bool) -> Optional[str]:
    """The part of ``text`` that names a method, or None."""
    text = PACKAGE_NAMES.sub('', text)
    for name in METHOD_NAMES:
        if name in text:
            return name
    if identifier:
        hit = [part for part in text.lower().split('_') if part in METHOD_KEYS]
        return text if hit else None
    if text.strip().lower() in METHOD_KEYS:
        return text
    match = _KEY_WORD.search(text)
    return text[max(match.start() - 30, 0):match.end() + 30] if match else None


def _names_a_method(text: str, identifier: bool) -> bool:
    return _method_match(text, identifier) is not None


def method_mentions(module: str) -> List[str]:
    """Where ``module``'s code (not its docstrings or comments) names a method."""
    tree = TREES[module]
    docs = _docstring_ids(tree)
    out = []
    for node in ast.walk(tree):
        texts = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docs:
            texts = [(node.value, False)]
        elif isinstance(node, ast.Name):
            texts = [(node.id, True)]
        elif isinstance(node, ast.Attribute):
            texts = [(node.attr, True)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            texts = [(node.name, True)]
        elif isinstance(node, ast.arg):
            texts = [(node.arg, True)]
        elif isinstance(node, ast.keyword) and node.arg:
            texts = [(node.arg, True)]
        elif isinstance(node, ast.alias):
            texts = [(node.name, True), (node.asname or '', True)]
        for text, identifier in texts:
            where = text and _method_match(text, identifier)
            if where:
                out.append(f'{module}:{getattr(node, "lineno", "?")}: ...{where!r}... in '
                           f'{text!r}')
    return out


#: Known mentions, to be fixed in files that are being changed elsewhere right now (issues
#: 12 and 14): module -> substrings of the reported mentions (``'*'``: all of the module's). Each
#: entry must still be found (remove it once fixed).
PENDING: Dict[str, Tuple[str, ...]] = {}


def test_registry_is_seen():
    assert {'lbc', 'srste', 'asp', 'bame'} <= set(METHOD_KEYS)
    assert 'lbc_mmdet.layers.lbc' in METHOD_MODULES
    assert 'lbc_mmdet.layers.lbc_official' in METHOD_FILES
    assert 'LBCConv2d' in METHOD_NAMES and 'LBCMixin' in METHOD_NAMES
    # the check itself
    assert _names_a_method('lbc', False) and _names_a_method("type='SRSTEConv2d'", False)
    assert _names_a_method('--method srste', False)
    assert not _names_a_method('lbc_mmdet.layers', False)
    assert not _names_a_method('the LBC paper', False)
    assert _names_a_method('lbc_layers', True) and not _names_a_method('lbc_mmdet', True)


def test_nothing_outside_a_method_names_it():
    found = []
    for module in SOURCES:
        if module in METHOD_FILES:
            continue
        mentions = method_mentions(module)
        pending = PENDING.get(module, ())
        found += [m for m in mentions if '*' not in pending and not any(p in m for p in pending)]
    assert not found, 'method names in code outside the method files:\n' + '\n'.join(found)


def test_pending_entries_are_still_needed():
    for module, pending in PENDING.items():
        mentions = method_mentions(module)
        for p in pending:
            assert any(p == '*' or p in m for m in mentions), f'{module}: {p!r} is fixed'


def test_no_module_imports_a_method_module():
    bad = []
    for module in SOURCES:
        if module in METHOD_FILES or module == 'lbc_mmdet.layers':
            continue
        bad += [f'{module}:{line} imports {t}' for t, line in imports(module)
                if t in METHOD_MODULES]
    assert not bad, bad


def test_layers_discovers_its_methods_without_naming_them():
    tree = TREES['lbc_mmdet.layers']
    assert not method_mentions('lbc_mmdet.layers')
    assert 'pkgutil' in {a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                         for a in n.names}


def test_atomic_writes_have_one_home():
    """``atomic_write``/``atomic_torch_save`` live in ``lbc_mmdet.utils.io``: nobody
    imports them through ``engine`` (which would pull MMEngine glue into suite, benchmark
    and the tools just to write a file)."""
    bad = [f'{m}:{line} imports {t}' for m in SOURCES for t, line in imports(m)
           if t.rsplit('.', 1)[-1] in ('atomic_write', 'atomic_torch_save')
           and not t.startswith('lbc_mmdet.utils')]
    assert not bad, bad
    assert 'lbc_mmdet.utils.io' in SOURCES


# --------------------------------------------------------------------------- docstrings
def _untyped_docstring_entries(module: str) -> List[str]:
    """``Args:`` entries without ``(type)`` and ``Returns:`` without a leading ``type:``
    in the docstrings of ``module`` (Google style as mmengine writes it)."""
    out = []
    for node in ast.walk(TREES[module]):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        doc = ast.get_docstring(node) or ''
        args = re.search(r'(?m)^Args:\n((?:(?: {4}.*)?\n?)+)', doc)
        for line in (args.group(1).splitlines() if args else []):
            entry = re.match(r'^ {4}(\w+)(\s*\([^)]*\))?:', line)
            if entry and not entry.group(2):
                out.append(f'{module}:{node.lineno} {node.name}: Args: {entry.group(1)}')
        returns = re.search(r'(?m)^Returns:\n +(\S.*)', doc)
        if returns and not re.match(r'^[\w\[\], .|\'"()]+:\s', returns.group(1)):
            out.append(f'{module}:{node.lineno} {node.name}: Returns: {returns.group(1)[:40]}')
    return out


def test_docstrings_are_google_style_with_types():
    bad = [e for m in SOURCES for e in _untyped_docstring_entries(m)]
    assert not bad, 'docstring entries without a type:\n' + '\n'.join(bad)


#: the packages whose ``__all__`` is the public API documented as mmengine documents its own
PUBLIC_PACKAGES = ('apis', 'nm', 'deploy', 'suite', 'accounting', 'utils', 'benchmark')


def _definition(module: str, name: str) -> Optional[ast.stmt]:
    """The top-level statement of the package that defines ``name`` as seen from ``module``
    (a ``def``, ``class`` or assignment), following ``from .x import name`` re-exports;
    None when there is none."""
    body = TREES[module].body
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                node.name == name:
            return node
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node
    is_pkg = SOURCES[module].endswith('__init__.py')
    package = module if is_pkg else module.rsplit('.', 1)[0]
    for node in body:
        if not isinstance(node, ast.ImportFrom):
            continue
        for alias in node.names:
            if (alias.asname or alias.name) != name:
                continue
            base = package.split('.')[:len(package.split('.')) - node.level + 1] \
                if node.level else []
            target = '.'.join(base + ([node.module] if node.module else []))
            return _definition(target, alias.name) if target in SOURCES else None
    return None


def public_functions() -> List[Tuple[str, ast.FunctionDef]]:
    """``(package.name, def)`` of every function in the ``__all__`` of
    :data:`PUBLIC_PACKAGES` (read from the source, nothing imported)."""
    out = []
    for unit in PUBLIC_PACKAGES:
        package = f'lbc_mmdet.{unit}'
        exported = [ast.literal_eval(node.value) for node in TREES[package].body
                    if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == '__all__'
                            for t in node.targets)]
        assert exported, f'{package} has no __all__'
        for name in exported[0]:
            node = _definition(package, name)
            assert node is not None, f'{package}.{name}: definition not found'
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f'{package}.{name}', node))
    return out


def test_public_functions_document_their_arguments():
    """Every exported function that takes arguments has an ``Args:`` section (Google
    style, as mmengine's functions do; the entries' types: the test above)."""
    functions = public_functions()
    assert len(functions) > 100 and 'lbc_mmdet.nm.topn_magnitude_mask' in dict(functions)
    bad = []
    for qualname, node in functions:
        a = node.args
        params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs
                  + [p for p in (a.vararg, a.kwarg) if p is not None]
                  if p.arg not in ('self', 'cls')]
        doc = ast.get_docstring(node) or ''
        if params and not re.search(r'(?m)^Args:$', doc):
            bad.append(f'{qualname}({", ".join(params)})')
    assert not bad, 'public functions without an Args: section:\n' + '\n'.join(bad)

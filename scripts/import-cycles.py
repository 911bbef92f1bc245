"""Fails if the source files of a crate import each other in a cycle.

    python3 scripts/import-cycles.py crates/*/src

Each `use crate::a::b`, `super::...` and `crate::...` path (outside `#[cfg(test)] mod
tests`) is resolved to the file of the longest module it names; a file that uses its
own parent module (`use super::*` in a child) is not counted, since a parent declares
its children. Files that reach each other through such imports (a strongly connected
component of more than one file) are printed, and the exit code is 1."""
import os, re, sys
from collections import defaultdict

def module_files(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'): continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
            mods[tuple(rel)] = path
    return mods

def resolve(mods, parts):
    # longest prefix that names a file
    for n in range(len(parts), -1, -1):
        if tuple(parts[:n]) in mods: return tuple(parts[:n])
    return None

def imports(text):
    text = re.sub(r'//[^\n]*', '', text)
    # cut test modules
    text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
    paths = []
    for m in re.finditer(r'\buse\s+([^;]+);', text):
        body = m.group(1).replace('\n', ' ')
        def expand(prefix, b):
            b = b.strip()
            if '{' in b:
                i = b.index('{'); head = b[:i].rstrip(':').strip()
                inner = b[i+1:b.rindex('}')]
                depth = 0; cur = ''; parts = []
                for ch in inner:
                    if ch == '{': depth += 1
                    if ch == '}': depth -= 1
                    if ch == ',' and depth == 0: parts.append(cur); cur = ''
                    else: cur += ch
                parts.append(cur)
                out = []
                for p in parts:
                    if p.strip(): out += expand(prefix + ([x for x in head.split('::') if x] if head else []), p)
                return out
            return [prefix + [x.strip() for x in b.split(' as ')[0].split('::') if x.strip()]]
        paths += expand([], body)
    for m in re.finditer(r'\b(crate|super)::([A-Za-z_][A-Za-z0-9_:]*)', text):
        paths.append([m.group(1)] + m.group(2).split('::'))
    return paths

def crate_cycles(src):
    mods = module_files(src)
    graph = defaultdict(set)
    for mod, path in mods.items():
        text = open(path).read()
        for p in imports(text):
            if not p: continue
            if p[0] == 'crate': target = p[1:]
            elif p[0] == 'super':
                base = list(mod) if os.path.basename(path) == 'mod.rs' else list(mod)
                base = base[:-1]
                rest = p[1:]
                while rest and rest[0] == 'super': base = base[:-1]; rest = rest[1:]
                target = base + rest
            elif p[0] == 'self':
                target = list(mod) + p[1:]
            else: continue
            t = resolve(mods, target)
            if t is not None and t != mod and not (len(t) < len(mod) and mod[:len(t)] == t):
                graph[mod].add(t)
    # Tarjan
    index = {}; low = {}; stack = []; on = set(); out = []; counter = [0]
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index: strong(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(comp)
    sys.setrecursionlimit(10000)
    for v in list(mods): 
        if v not in index: strong(v)
    return [[mods[c] for c in comp] for comp in out]

found = 0
for src in sys.argv[1:]:
    for comp in crate_cycles(src):
        found += 1
        print('cycle:', ' <-> '.join(sorted(comp)))
sys.exit(1 if found else 0)

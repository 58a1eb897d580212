#!/usr/bin/env python3
"""Checks that the crate's top-level modules depend on each other one way only.

Reads every `src/**/*.rs` (a file under `src/x/` belongs to module `x`; `lib.rs` and
`main.rs` are the roots and may use everything), collects the modules each one names with
`crate::<module>`, and fails if the graph has a cycle. Prints the modules in dependency
order (leaves first) with what each uses.

Usage: python3 .ci/module-graph.py [SRC_DIR]
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "src"
modules = {}
for dirpath, _, files in os.walk(src):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, src)
        module = rel.split(os.sep)[0].removesuffix(".rs")
        if module in ("lib", "main"):
            continue
        text = open(path, encoding="utf-8").read()
        text = text.split("#[cfg(test)]")[0]  # unit tests may use anything
        used = set(re.findall(r"\bcrate::([a-z_]+)", text))
        modules.setdefault(module, set()).update(used - {module})

graph = {m: sorted(u for u in used if u in modules) for m, used in modules.items()}
order, state = [], {}


def visit(module, stack):
    if state.get(module) == "done":
        return
    if state.get(module) == "open":
        cycle = stack[stack.index(module):] + [module]
        sys.exit("module cycle: " + " -> ".join(cycle))
    state[module] = "open"
    for dep in graph[module]:
        visit(dep, stack + [module])
    state[module] = "done"
    order.append(module)


for module in sorted(graph):
    visit(module, [])
for module in order:
    print(f"{module}: {', '.join(graph[module]) or '(leaf)'}")
print(f"no cycles among {len(order)} modules")

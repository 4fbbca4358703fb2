#!/usr/bin/env python3
"""Prints the target graph of Package.swift and checks it against the code and the README.

    python3 tools/check_layers.py [--graph]

Checks, and exits 1 naming what differs:
  1. every target in the README's layer table ("How it is built") exists, in an order where each
     one uses only targets listed before it (no upward edge, so no cycle);
  2. the table's "uses" column is exactly each target's dependencies in Package.swift;
  3. each library target imports exactly the targets it declares (no unused dependency, and no
     module reached only transitively).
The compiler already refuses an import of a target that is not declared below; this keeps the
declared graph, the imports and the README the same picture.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_targets():
    out = subprocess.run(["swift", "package", "describe", "--type", "json"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    described = json.loads(out[out.index("{"):])
    return {t["name"]: t for t in described["targets"]}


def readme_layers():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## How it is built"):]
    end = section.find("\n## ", 5)
    section = section if end < 0 else section[:end]
    rows = []
    for line in section.splitlines():
        m = re.match(r"^\| `(\w[\w-]*)` \| ([^|]*) \|", line)
        if m:
            uses = re.findall(r"`([\w-]+)`", m.group(2))
            rows.append((m.group(1), uses))
    return rows


def imports_of(path):
    found = set()
    for dirpath, _, files in os.walk(os.path.join(ROOT, path)):
        for f in files:
            if f.endswith(".swift"):
                for line in open(os.path.join(dirpath, f), encoding="utf-8"):
                    m = re.match(r"^(?:@testable )?import (\w+)\s*$", line)
                    if m:
                        found.add(m.group(1))
    return found


def main():
    targets = package_targets()
    ours = {n: t for n, t in targets.items() if t["type"] != "test"}
    layers = readme_layers()
    problems = []
    if True:  # the graph is the first thing a reader wants
        print("target graph (Package.swift), bottom to top:")
        for name, _ in layers:
            if name in ours:
                deps = ours[name].get("target_dependencies", []) + ours[name].get("product_dependencies", [])
                print(f"  {name:18} -> {', '.join(deps) if deps else '(nothing)'}")
    seen = set()
    for name, uses in layers:
        if name not in ours:
            problems.append(f"README lists `{name}`, which Package.swift does not have")
            continue
        declared = ours[name].get("target_dependencies", []) + ours[name].get("product_dependencies", [])
        if sorted(uses) != sorted(declared):
            problems.append(f"{name}: README says it uses {sorted(uses)}, Package.swift {sorted(declared)}")
        upward = [d for d in declared if d in ours and d not in seen]
        if upward:
            problems.append(f"{name} uses {upward}, listed above it in the README (an upward edge)")
        seen.add(name)
        local = [d for d in ours[name].get("target_dependencies", [])]
        modules = {d for d in local} | {p for p in ours[name].get("product_dependencies", [])}
        imported = imports_of(ours[name]["path"]) & (set(ours) | modules)
        if ours[name].get("module_type") == "SwiftTarget":
            if imported != modules:
                unused, undeclared = sorted(modules - imported), sorted(imported - modules)
                problems.append(f"{name}: declared but not imported {unused}; imported but not declared {undeclared}")
    missing = sorted(set(ours) - {n for n, _ in layers})
    if missing:
        problems.append(f"README's layer table lacks {missing}")
    for p in problems:
        print("error: " + p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"ok: {len(layers)} targets, every edge points down, README and imports agree")


if __name__ == "__main__":
    main()

"""Fails if a library crate under the facade reads wall time outside its tests.

The facade owns the clock (issue 27): the core, the stores and the HTTP transport take
`now` or a clock from it. A file's `#[cfg(test)]` module (from that line on) and
comments are not searched.
"""
import pathlib
import re
import sys

READS = re.compile(r"\b(Utc::now|SystemTime::now|Instant::now|Date::now|Date::new_0)\b")
CRATES = ["headwater-core", "headwater-memory", "headwater-sqlite", "headwater-indexeddb",
          "headwater-http"]

found = []
for crate in CRATES:
    for path in sorted(pathlib.Path("crates", crate, "src").rglob("*.rs")):
        if path.name == "tests.rs" or "testing" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("#[cfg(test)]"):
                break
            code = line.split("//", 1)[0]
            if READS.search(code):
                found.append(f"{path}:{number}: {line.strip()}")
if found:
    print("wall time read outside the facade (take it from the facade's clock):")
    print("\n".join(found))
    sys.exit(1)
print(f"no wall-clock read in {', '.join(CRATES)}")

"""Writes the apps that docs/ describe, from the docs' own snippets, into a folder.

A fenced block preceded by `<!-- doc-app: NAME FILE -->` becomes FILE of app NAME;
a Cargo.toml gets a [package] section of its own in front (the docs give what an app
adds to its manifest). Usage: python3 scripts/doc-apps.py OUT_DIR (prints each app's dir).
"""
import pathlib
import re
import sys

MARK = re.compile(r"<!-- doc-app: (\S+) (\S+) -->\n```[^\n]*\n(.*?)\n```", re.S)
out = pathlib.Path(sys.argv[1])
apps = {}
for page in sorted(pathlib.Path("docs").glob("*.md")) + [pathlib.Path("README.md")]:
    for name, file, body in MARK.findall(page.read_text()):
        apps.setdefault(name, {})[file] = (body + "\n", page)
if not apps:
    sys.exit("no <!-- doc-app: ... --> blocks found in docs/")
for name, files in sorted(apps.items()):
    root = out / name
    for file, (body, page) in files.items():
        if file == "Cargo.toml":
            body = (
                f'[package]\nname = "doc-app-{name}"\nversion = "0.1.0"\nedition = "2024"\n'
                f"publish = false\n\n# from {page}\n" + body
            )
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    if "Cargo.toml" not in files:
        sys.exit(f"doc app {name} has no Cargo.toml block")
    print(root)

"""Puts a conformance table (argv[1]) into a page (argv[2]) between its markers, or with
--check, exits 1 if the page's table differs from it."""
import sys

BEGIN, END = "<!-- conformance:begin -->\n", "<!-- conformance:end -->\n"
args = [a for a in sys.argv[1:] if a != "--check"]
table, page_path = open(args[0]).read(), args[1]
page = open(page_path).read()
start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
if "--check" in sys.argv:
    if page[start:end] != table:
        print(f"{page_path}: the conformance table is not the one this run produced; "
              "run `bash scripts/conformance-table.sh`", file=sys.stderr)
        sys.exit(1)
else:
    open(page_path, "w").write(page[:start] + table + page[end:])

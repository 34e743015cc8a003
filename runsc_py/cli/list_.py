"""List the containers in the root."""

from .params import Opt

OPTIONS = (
    Opt(("--format", "-f"), "format", default="table", choices=("table", "json"), help="table or json"),
    Opt(("--quiet", "-q"), "quiet", flag=True, help="print ids only"),
)
ARGS = ()


def run(g, format, quiet):
    from .. import jsonio
    import sys
    from ..container import Container
    from ..state_file import list_records
    rows = []
    for cid, sf, record in sorted(list_records(g.root), key=lambda r: r[0]):
        if isinstance(record, Exception):
            sys.stderr.write(f"runsc-py: {record}\n")
            continue
        rows.append(Container(sf, record).oci_state())
    if quiet:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif format == "json":
        sys.stdout.write(jsonio.dumps(rows) + "\n")
    else:
        sys.stdout.write(_table(rows))


def _table(rows):
    header = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")
    lines = [header] + [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"])
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n" for line in lines)
